/**
 * Part 3 (RPC): EncryptFields (1 and 10 fields), DecryptField and ComputeIndex over gRPC (@grpc/grpc-js) and the Connect
 * protocol (connect-node, HTTP/2), at 1, 16 and 64 calls in flight, against a `fieldseal serve` child
 * process; the load generator is a separate process. References, interleaved with the Fieldseal calls:
 * grpc.health.v1 Check on the same server, protocol and concurrency (our RPC stack without auth or keys),
 * and the same calls against a bare node:http2 responder in its own process (bench/bare-responder.mjs: the
 * ceiling this machine and load generator allow, whatever the server does).
 * Also part 5's fields-per-call half (1, 10, 100 fields, gRPC, 16 in flight).
 */
import { join } from "node:path";
import { fmt, median, startChild } from "./lib.mjs";
import { runLoadgen, startFieldseal } from "./servers.mjs";

const KINDS = [
  { name: "encrypt1", kind: "encrypt", fields: 1 },
  { name: "encrypt10", kind: "encrypt", fields: 10 },
  { name: "decrypt", kind: "decrypt" },
  { name: "index", kind: "index" },
  { name: "health", kind: "health" },
];

export async function runRpc({
  rounds = 3,
  durationMs = 1500,
  log = console.log,
  concurrencies = [1, 16, 64],
} = {}) {
  const server = await startFieldseal();
  const bare = await startChild(process.execPath, [join(import.meta.dirname, "bare-responder.mjs")], {
    ready: /bare responder listening on (\d+)/,
  });
  const bareUrl = `http://127.0.0.1:${bare.match[1]}`;
  const results = [];
  try {
    for (const protocol of ["grpc", "connect"]) {
      for (const concurrency of concurrencies) {
        const samples = Object.fromEntries(KINDS.map((k) => [k.name, []]));
        const bareSamples = Object.fromEntries(KINDS.map((k) => [k.name, []]));
        for (let r = 0; r < rounds; r++) {
          const order = r % 2 === 0 ? KINDS : [...KINDS].reverse();
          for (const k of order) {
            const targets = [
              [server.url, samples],
              [bareUrl, bareSamples],
            ];
            for (const [url, into] of r % 2 === 0 ? targets : targets.reverse()) {
              const res = await runLoadgen({
                url,
                token: server.token,
                kind: k.kind,
                fields: k.fields,
                protocol,
                concurrency,
                durationMs,
              });
              if (res.errors > 0)
                log(`    ${k.name} ${protocol} c=${concurrency}: ${res.errors} errors: ${res.firstError}`);
              into[k.name].push(res);
            }
          }
        }
        for (const k of KINDS) {
          const s = samples[k.name];
          const row = {
            rpc: k.name,
            protocol,
            concurrency,
            callsPerSec: median(s.map((x) => x.callsPerSec)),
            p50Ms: median(s.map((x) => x.p50Ms)),
            p99Ms: median(s.map((x) => x.p99Ms)),
            vsHealth: median(s.map((x, i) => x.callsPerSec / samples.health[i].callsPerSec)),
            bareCallsPerSec: median(bareSamples[k.name].map((x) => x.callsPerSec)),
            bareP99Ms: median(bareSamples[k.name].map((x) => x.p99Ms)),
            vsBare: median(s.map((x, i) => x.callsPerSec / bareSamples[k.name][i].callsPerSec)),
            errors: s.reduce((a, x) => a + x.errors, 0),
            runs: s.length,
          };
          results.push(row);
          log(
            `  ${protocol.padEnd(7)} c=${String(concurrency).padEnd(2)} ${k.name.padEnd(9)} ${fmt(row.callsPerSec).padStart(7)}/s ` +
              `p50 ${fmt(row.p50Ms, 2)} ms p99 ${fmt(row.p99Ms, 2)} ms (${fmt(row.vsHealth * 100, 0)}% of health check; ` +
              `bare responder ${fmt(row.bareCallsPerSec)}/s p99 ${fmt(row.bareP99Ms, 2)} ms: ${fmt(row.vsBare * 100, 0)}%)`,
          );
        }
      }
    }
  } finally {
    await server.stop();
    await bare.stop();
  }
  return results;
}

/** Cost per call and per field as the number of fields per EncryptFields call grows (gRPC, 16 in flight). */
export async function runFieldScaling({ rounds = 3, durationMs = 1500, log = console.log } = {}) {
  const server = await startFieldseal();
  const counts = [1, 10, 100];
  const samples = Object.fromEntries(counts.map((c) => [c, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const fields of r % 2 === 0 ? counts : [...counts].reverse()) {
        samples[fields].push(
          await runLoadgen({
            url: server.url,
            token: server.token,
            kind: "encrypt",
            fields,
            protocol: "grpc",
            concurrency: 16,
            durationMs,
          }),
        );
      }
    }
  } finally {
    await server.stop();
  }
  return counts.map((fields) => {
    const s = samples[fields];
    const callsPerSec = median(s.map((x) => x.callsPerSec));
    const point = {
      fields,
      callsPerSec,
      fieldsPerSec: callsPerSec * fields,
      usPerField: 1e6 / (callsPerSec * fields),
      p99Ms: median(s.map((x) => x.p99Ms)),
      vsOneField: median(s.map((x, i) => (x.callsPerSec * fields) / samples[1][i].callsPerSec)),
    };
    log(
      `  ${String(fields).padStart(3)} fields/call: ${fmt(callsPerSec)} calls/s, ${fmt(point.fieldsPerSec)} fields/s, ` +
        `${fmt(point.usPerField, 1)} us/field, p99 ${fmt(point.p99Ms, 2)} ms`,
    );
    return point;
  });
}
