/**
 * The Helm chart with TLS and a client CA (mTLS principals): the kubelet's HTTPS probes connect without a
 * client certificate and without verifying the server's, so Fieldseal must not require client
 * certificates there, whatever the config Secret's config.json says. The chart's environment is rendered
 * by the pinned helm, the server started on it (TLS files and config mapped under a temporary root), and
 * every probe the chart declares is made as the kubelet makes it.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { loadConfig } from "../../src/config.js";
import { keyStoreFromConfig } from "../../src/keys/store-from-config.js";
import { createLogger } from "../../src/log.js";
import { type RunningServer, startServer } from "../../src/server/app.js";
import { createTestPki, type TestPki } from "../support/certs.js";
import { literalEnv, renderDeploymentYaml } from "../support/helm.js";

interface Probe {
  readonly kind: string;
  readonly path: string;
  readonly scheme: string;
}

/** The fieldseal container's env and HTTP probes as the chart renders them with TLS and a client CA. */
function render(): { env: Record<string, string>; probes: Probe[] } {
  const yaml = renderDeploymentYaml({
    valuesFile: "ci/local-trial-values.yaml",
    set: ["tls.clientCaKey=ca.crt"],
  });
  const env = literalEnv(yaml);
  const probes = [
    ...yaml.matchAll(
      /^\s+(readinessProbe|livenessProbe|startupProbe):\n\s+httpGet:\n\s+path: (\S+)\n\s+port: service\n\s+scheme: (\S+)$/gm,
    ),
  ].map(([, kind, path, scheme]) => ({ kind: kind ?? "", path: path ?? "", scheme: scheme ?? "" }));
  return { env, probes };
}

/** A GET as the kubelet's HTTPS probe makes it: no client certificate, the server's not verified. */
function kubeletGet(port: number, path: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "GET", rejectUnauthorized: false, timeout: 5_000 },
      (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy(new Error("probe timed out")));
    req.on("error", fail);
    req.end();
  });
}

describe("the chart's HTTPS probes with TLS and a client CA", () => {
  let pki: TestPki;
  let root: string;
  let rendered: ReturnType<typeof render>;
  /** The chart's env with its paths under `root`, on loopback and a free port. */
  let env: Record<string, string>;
  const servers: RunningServer[] = [];
  const quiet = createLogger("error", () => {});

  beforeAll(() => {
    pki = createTestPki();
    root = mkdtempSync(join(tmpdir(), "fieldseal-chart-tls-"));
    rendered = render();
    env = { ...rendered.env };
    for (const [k, v] of Object.entries(env))
      if (k.startsWith("FIELDSEAL_") && v.startsWith("/")) env[k] = join(root, v);
    env.FIELDSEAL_HOST = "127.0.0.1";
    env.FIELDSEAL_PORT = "0";
    const tlsDir = resolve(env.FIELDSEAL_TLS_CERT_FILE ?? "", "..");
    mkdirSync(tlsDir, { recursive: true });
    copyFileSync(pki.server.certFile, join(tlsDir, "tls.crt"));
    copyFileSync(pki.server.keyFile, join(tlsDir, "tls.key"));
    copyFileSync(pki.ca.certFile, join(tlsDir, "ca.crt"));
    mkdirSync(env.FIELDSEAL_DATA_DIR ?? "", { recursive: true });
    // The config Secret asks for required client certificates.
    const configFile = env.FIELDSEAL_CONFIG ?? "";
    mkdirSync(resolve(configFile, ".."), { recursive: true });
    writeFileSync(
      configFile,
      JSON.stringify({
        principals: [{ name: "bot", tokenSha256: hashToken(generateToken()), scopes: ["encrypt"] }],
        tls: { requireClientCert: true },
      }),
    );
    chmodSync(configFile, 0o400);
  });

  afterAll(async () => {
    for (const s of servers) await s.shutdown(1_000);
    rmSync(root, { recursive: true, force: true });
    pki?.remove();
  });

  it("renders HTTPS probes, a client CA, and client certificates kept optional", () => {
    expect(rendered.probes.map((p) => p.kind).sort()).toEqual([
      "livenessProbe",
      "readinessProbe",
      "startupProbe",
    ]);
    for (const p of rendered.probes) expect(p.scheme).toBe("HTTPS");
    expect(rendered.env.FIELDSEAL_TLS_CLIENT_CA_FILE).toBe("/etc/fieldseal/tls/ca.crt");
    expect(rendered.env.FIELDSEAL_TLS_REQUIRE_CLIENT_CERT).toBe("false");
  });

  it("passes every probe as the kubelet makes it, though config.json requires client certificates", async () => {
    const config = loadConfig(env, root);
    expect(config.tls?.requireClientCert).toBe(false);
    const server = await startServer(config, await keyStoreFromConfig(config), { log: quiet });
    servers.push(server);
    for (const probe of rendered.probes) {
      expect([probe.kind, await kubeletGet(server.port, probe.path)]).toEqual([probe.kind, 200]);
    }
  });

  it("would fail every probe without the chart's FIELDSEAL_TLS_REQUIRE_CLIENT_CERT=false (the attack)", async () => {
    const { FIELDSEAL_TLS_REQUIRE_CLIENT_CERT: _, ...without } = env;
    const config = loadConfig(without, root);
    expect(config.tls?.requireClientCert).toBe(true);
    const server = await startServer(config, await keyStoreFromConfig(config), { log: quiet });
    servers.push(server);
    for (const probe of rendered.probes) {
      await expect(kubeletGet(server.port, probe.path)).rejects.toThrow();
    }
  });
});
