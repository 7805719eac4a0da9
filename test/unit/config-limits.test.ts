import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, parseConfig, SETTINGS } from "../../src/config.js";
import { FieldsealError } from "../../src/errors.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };
const SECRET = "SECRET-CANARY-0123456789abcdefghijklmnopqrstuvwxyz";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-config-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(name: string, content: string, mode = 0o600) {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return () => loadConfig({ FIELDSEAL_CONFIG: path }, dir);
}

describe("connection limits", () => {
  it("have safe defaults", () => {
    expect(parseConfig({}, {}, where).limits).toEqual({
      firstBytesTimeoutMs: 10_000,
      headTimeoutMs: 20_000,
      bodyTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      h2IdleTimeoutMs: 120_000,
      h2MaxConcurrentStreams: 100,
      maxConnections: 1000,
      maxConnectionsPerPeer: 128,
    });
  });

  it("are read from the file's limits object and from the environment, which wins", () => {
    const c = parseConfig(
      { limits: { h2MaxConcurrentStreams: 50, maxConnectionsPerPeer: 10 } },
      { FIELDSEAL_MAX_CONNECTIONS_PER_PEER: "20", FIELDSEAL_FIRST_BYTES_TIMEOUT_MS: "500" },
      where,
    );
    expect(c.limits).toMatchObject({
      h2MaxConcurrentStreams: 50,
      maxConnectionsPerPeer: 20,
      firstBytesTimeoutMs: 500,
    });
  });

  it("refuse values out of range, naming the variable and the file key", () => {
    expect(() => parseConfig({}, { FIELDSEAL_H2_MAX_STREAMS: "0" }, where)).toThrow(
      /FIELDSEAL_H2_MAX_STREAMS \(file key "limits\.h2MaxConcurrentStreams"\) must be a whole number from 1 to/,
    );
    expect(() => parseConfig({ limits: { bodyTimeoutMs: "soon" } }, {}, where)).toThrow(
      /FIELDSEAL_BODY_TIMEOUT_MS \(file key "limits\.bodyTimeoutMs"\)/,
    );
  });

  it("are each declared once and listed for --help", () => {
    const limits = SETTINGS.filter((s) => s.file.startsWith("limits."));
    expect(limits.map((s) => s.file).sort()).toEqual(
      Object.keys(parseConfig({}, {}, where).limits)
        .map((k) => `limits.${k}`)
        .sort(),
    );
    const envs = SETTINGS.map((s) => s.env).filter((e) => e !== "-");
    expect(new Set(envs).size).toBe(envs.length);
  });
});

describe("seal budget", () => {
  it("is refused below one seal block when the config is parsed", () => {
    expect(() => parseConfig({}, { FIELDSEAL_SEAL_BUDGET: "65535" }, where)).toThrow(
      /FIELDSEAL_SEAL_BUDGET .*must be at least 65536 \(the seals a server reserves at a time\), got 65535/,
    );
    expect(() => parseConfig({ rotation: { sealBudget: 1 } }, {}, where)).toThrow(FieldsealError);
    expect(parseConfig({}, { FIELDSEAL_SEAL_BUDGET: "65536" }, where).rotation.sealBudget).toBe(65_536);
  });
});

describe("config file", () => {
  it("names the line and column of a syntax error and quotes none of the text", () => {
    const text = `{\n  "webhook": {\n    "hmacSecrets": { "bot": "${SECRET}" oops }\n  }\n}\n`;
    const run = load("syntax.json", text);
    expect(run).toThrow(/syntax\.json is not valid JSON at line 3 column \d+$/);
    try {
      run();
    } catch (err) {
      expect(String((err as Error).message)).not.toContain("CANARY");
      expect((err as Error).cause).toBeUndefined();
    }
  });

  it("points at the end of a truncated file", () => {
    expect(load("truncated.json", `{\n  "webhook": { "hmacSecrets": { "bot": "${SECRET}`)).toThrow(
      /truncated\.json is not valid JSON at line 2 column \d+$/,
    );
  });

  it("must be private when it holds secrets", () => {
    const hmac = JSON.stringify({ webhook: { hmacSecrets: { bot: SECRET } } });
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      expect(load(`hmac-${mode.toString(8)}.json`, hmac, mode)).toThrow(
        /holds webhook\.hmacSecrets but its mode 0\d{3} lets group or others access it: chmod 600/,
      );
    }
    expect(load("cognigy.json", JSON.stringify({ cognigy: { apiKey: "k" } }), 0o644)).toThrow(
      /holds cognigy\.apiKey/,
    );
    expect(load("hmac-600.json", hmac, 0o600)().webhook.hmacSecrets).toEqual({ bot: SECRET });
    expect(load("hmac-400.json", hmac, 0o400)().webhook.hmacSecrets).toEqual({ bot: SECRET });
  });

  it("may be readable by others when it holds no secret (token hashes only)", () => {
    const hashes = JSON.stringify({
      principals: [{ name: "a", tokenSha256: "a".repeat(64), scopes: ["admin"] }],
    });
    expect(load("public.json", hashes, 0o644)().principals).toHaveLength(1);
  });
});
