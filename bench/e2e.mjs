/**
 * Part 4 (end to end): Fieldseal's webhook adapter against a faithful re-implementation of the tutorial's
 * Python middleware (bench/tutorial_middleware.py), both on the same moto Secrets Manager server and the
 * same Cognigy simulator, driven by the same load generator (its own process) with the same payloads and
 * concurrency, interleaved. A third, bare design (bench/bare-webhook.mjs: parse, seal, PUT, answer, nothing
 * else) shows the ceiling the machine, simulator and load generator allow for the flow.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { fmt, freePort, median, startChild } from "./lib.mjs";
import { runLoadgen, startFieldseal } from "./servers.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const AWS_ENV = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing", AWS_REGION: "us-east-1" };

async function startMoto() {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const moto = startChild(resolve(ROOT, ".venv/bin/moto_server"), ["-H", "127.0.0.1", "-p", String(port)], {
    ready: /never/,
    timeoutMs: 60_000,
  });
  moto.catch(() => {});
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) })).ok) return endpoint;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("moto_server did not start (run bash bench/setup.sh)");
}

export async function runE2e({
  rounds = 3,
  durationMs = 3000,
  concurrencies = [1, 16],
  log = console.log,
} = {}) {
  const moto = await startMoto();
  const sm = new SecretsManagerClient({
    endpoint: moto,
    region: AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  });
  // Deviation 1 of the tutorial: 32 ASCII characters, because it UTF-8-decodes the key.
  const asciiKey = randomBytes(24).toString("base64").slice(0, 32);
  await sm.send(
    new CreateSecretCommand({
      Name: "cognigy-session-key",
      SecretString: JSON.stringify({ key: Buffer.from(asciiKey).toString("base64"), version: "v1" }),
    }),
  );
  sm.destroy();
  const sim = await startChild(process.execPath, [resolve(ROOT, "bench/cognigy-simulator.mjs")], {
    ready: /cognigy simulator listening on (\S+) (\S+)/,
  });
  const [, simUrl, simBearer] = sim.match;
  const fieldseal = await startFieldseal({
    ...AWS_ENV,
    FIELDSEAL_KEY_STORE: "aws",
    FIELDSEAL_AWS_ENDPOINT: moto,
    FIELDSEAL_AWS_REGION: "us-east-1",
    FIELDSEAL_COGNIGY_BASE_URL: simUrl,
    FIELDSEAL_COGNIGY_MODE: "variables_put",
    FIELDSEAL_COGNIGY_BEARER_TOKEN: simBearer,
    // Pushing from the webhook is off by default; the comparison with the tutorial needs it on.
    FIELDSEAL_COGNIGY_PUSH: "true",
  });
  const tutorialPort = await freePort();
  await startChild(
    resolve(ROOT, ".venv-tutorial/bin/python"),
    [resolve(ROOT, "bench/tutorial_middleware.py"), String(tutorialPort)],
    {
      env: { ...AWS_ENV, AWS_ENDPOINT_URL: moto, COGNIGY_DOMAIN: simUrl, COGNIGY_API_TOKEN: simBearer },
      ready: /tutorial middleware listening/,
    },
  );
  const bare = await startChild(
    process.execPath,
    [resolve(ROOT, "bench/bare-webhook.mjs"), simUrl, simBearer],
    {
      ready: /bare webhook listening on (\d+)/,
    },
  );
  const targets = {
    fieldseal: { url: fieldseal.url, token: fieldseal.token },
    tutorial: { url: `http://127.0.0.1:${tutorialPort}`, token: "unused" },
    bare: { url: `http://127.0.0.1:${bare.match[1]}`, token: "unused" },
  };
  const designs = Object.keys(targets);
  const results = [];
  try {
    for (const concurrency of concurrencies) {
      const samples = Object.fromEntries(designs.map((d) => [d, []]));
      for (let r = 0; r < rounds; r++) {
        for (const name of r % 2 === 0 ? designs : [...designs].reverse()) {
          const res = await runLoadgen({
            ...targets[name],
            kind: "webhook",
            concurrency,
            durationMs,
            warmupMs: 500,
          }).catch((err) => {
            throw new Error(`${name} at ${concurrency} in flight: ${err.message}`);
          });
          if (res.errors > 0) log(`    ${name} c=${concurrency}: ${res.errors} errors: ${res.firstError}`);
          samples[name].push(res);
        }
      }
      for (const name of designs) {
        const s = samples[name];
        const row = {
          design: name,
          concurrency,
          webhooksPerSec: median(s.map((x) => x.callsPerSec)),
          p50Ms: median(s.map((x) => x.p50Ms)),
          p99Ms: median(s.map((x) => x.p99Ms)),
          vsTutorial: median(s.map((x, i) => x.callsPerSec / samples.tutorial[i].callsPerSec)),
          vsBare: median(s.map((x, i) => x.callsPerSec / samples.bare[i].callsPerSec)),
          errors: s.reduce((a, x) => a + x.errors, 0),
        };
        results.push(row);
        log(
          `  c=${String(concurrency).padEnd(2)} ${name.padEnd(9)} ${fmt(row.webhooksPerSec, 1).padStart(8)} webhooks/s ` +
            `p50 ${fmt(row.p50Ms, 2)} ms p99 ${fmt(row.p99Ms, 2)} ms (x${fmt(row.vsTutorial, 1)} the tutorial, ` +
            `${fmt(row.vsBare * 100, 0)}% of bare)`,
        );
      }
    }
  } finally {
    await fieldseal.stop();
    await bare.stop();
  }
  return results;
}
