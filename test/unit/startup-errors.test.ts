/**
 * Start-up errors a person can act on: the real `fieldseal serve` command is started against a busy port,
 * config files it cannot use and TLS files it cannot use. Each must exit non-zero with one line that
 * says what to change, never a stack trace, and never quote config text.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/auth/principals.js";
import { createTestPki, type TestPki } from "../support/certs.js";
import { FIELDSEAL_BIN, startFieldsealProcess } from "../support/fieldseal-process.js";

let dir: string;
let pki: TestPki;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-startup-"));
  pki = createTestPki();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.remove();
});

const PRINCIPALS = [{ name: "admin", tokenSha256: hashToken("fsk_x"), scopes: ["admin"] }];
const SECRET = "SECRET-CANARY-0123456789abcdefghijklmnopqrstuvwxyz";

/** Runs `fieldseal serve ARGS` with a fresh data directory; resolves with its exit code and output. */
function serve(
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; out: string; err: string }> {
  const dataDir = mkdtempSync(join(dir, "data-"));
  const child = spawn(process.execPath, [FIELDSEAL_BIN, "serve", ...args], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dataDir,
      FIELDSEAL_DATA_DIR: dataDir,
      FIELDSEAL_HOST: "127.0.0.1",
      FIELDSEAL_PORT: "0",
      FIELDSEAL_LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  return new Promise((resolve) => {
    // A server that did start is not what these tests expect: stop it so the test fails, not hangs.
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** A config file with the given content and mode. */
function configFile(name: string, content: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

/** The error is one line, names what to change, and shows no stack. */
function expectOneLine(result: { code: number | null; err: string }, pattern: RegExp): void {
  expect(result.code).toBe(1);
  const lines = result.err.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^fieldseal: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.err).not.toMatch(/\n\s+at /);
}

describe("start-up errors", () => {
  let busy: net.Server;
  let busyPort: number;
  beforeAll(async () => {
    busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    busyPort = (busy.address() as net.AddressInfo).port;
  });
  afterAll(() => {
    busy.close();
  });

  it("names FIELDSEAL_PORT and --port when the port is busy", async () => {
    const config = configFile("busy.json", JSON.stringify({ principals: PRINCIPALS }));
    for (const run of [
      () => serve({ FIELDSEAL_CONFIG: config, FIELDSEAL_PORT: String(busyPort) }),
      () => serve({ FIELDSEAL_CONFIG: config }, ["--port", String(busyPort)]),
    ]) {
      const r = await run();
      expectOneLine(r, new RegExp(`127\\.0\\.0\\.1 port ${busyPort}: another process is using it`));
      expect(r.err).toMatch(/FIELDSEAL_PORT or --port \(EADDRINUSE\)/);
    }
  });

  it("says when a named config file is missing or is not a file", async () => {
    expectOneLine(
      await serve({ FIELDSEAL_CONFIG: join(dir, "nowhere.json") }),
      /cannot read config file .*nowhere\.json: no such file \(ENOENT\)/,
    );
    const aDirectory = join(dir, "config-dir");
    mkdirSync(aDirectory);
    expectOneLine(
      await serve({ FIELDSEAL_CONFIG: aDirectory }),
      /cannot read config file .*config-dir: it is a directory \(EISDIR\)/,
    );
  });

  it("names the line and column of a config syntax error without quoting the file", async () => {
    const broken = `{\n  "principals": [],\n  "webhook": { "hmacSecrets": { "bot": "${SECRET}" x } }\n}\n`;
    const r = await serve({ FIELDSEAL_CONFIG: configFile("broken.json", broken) });
    expectOneLine(r, /config file .*broken\.json is not valid JSON at line 3 column \d+/);
    expect(r.err + r.out).not.toContain("CANARY");
    expect(r.err + r.out).not.toContain("hmacSecrets");
  });

  it("refuses a group- or other-readable config file that holds webhook secrets", async () => {
    const withSecret = JSON.stringify({ principals: PRINCIPALS, webhook: { hmacSecrets: { bot: SECRET } } });
    const r = await serve({ FIELDSEAL_CONFIG: configFile("open.json", withSecret, 0o644) });
    expectOneLine(r, /holds webhook\.hmacSecrets but its mode 0644 .*chmod 600/);
    expect(r.err).not.toContain("CANARY");
  });

  it("accepts a 0600 config holding secrets, and a 0644 config holding only token hashes", async () => {
    const withSecret = JSON.stringify({ principals: PRINCIPALS, webhook: { hmacSecrets: { bot: SECRET } } });
    for (const [name, content, mode] of [
      ["private.json", withSecret, 0o600],
      ["hashes-only.json", JSON.stringify({ principals: PRINCIPALS }), 0o644],
    ] as const) {
      const proc = await startFieldsealProcess({
        env: { FIELDSEAL_CONFIG: configFile(name, content, mode) },
      });
      expect(proc.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(await proc.stop()).toBe(0);
    }
  });

  it("stops gracefully on a SIGTERM sent the moment the listening line appears", async () => {
    // The handlers used to be installed just after that line: a supervisor quick enough met the
    // default action (killed by SIGTERM) about four times in five.
    const config = configFile("sigterm.json", JSON.stringify({ principals: PRINCIPALS }));
    for (let i = 0; i < 5; i++) {
      const proc = await startFieldsealProcess({ env: { FIELDSEAL_CONFIG: config } });
      expect(await proc.stop()).toBe(0);
      expect(proc.stdout()).toMatch(/SIGTERM: finishing in-flight calls/);
    }
  });

  it("refuses a seal budget below one seal block at start-up, before anything else", async () => {
    const config = configFile("budget.json", JSON.stringify({ principals: PRINCIPALS }));
    expectOneLine(
      await serve({ FIELDSEAL_CONFIG: config, FIELDSEAL_SEAL_BUDGET: "1000" }),
      /FIELDSEAL_SEAL_BUDGET .*must be at least 65536 .*got 1000/,
    );
  });

  it("names the TLS file that cannot be read, or the files OpenSSL refuses", async () => {
    const config = configFile("tls.json", JSON.stringify({ principals: PRINCIPALS }));
    const notPem = configFile("not-a-cert.pem", "hello\n");
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        { FIELDSEAL_TLS_CERT_FILE: join(dir, "missing.crt"), FIELDSEAL_TLS_KEY_FILE: pki.server.keyFile },
        /cannot read the TLS certificate file .*missing\.crt: no such file \(ENOENT\)/,
      ],
      [
        { FIELDSEAL_TLS_CERT_FILE: pki.server.certFile, FIELDSEAL_TLS_KEY_FILE: join(dir, "missing.key") },
        /cannot read the TLS private key file .*missing\.key: no such file/,
      ],
      [
        { FIELDSEAL_TLS_CERT_FILE: notPem, FIELDSEAL_TLS_KEY_FILE: pki.server.keyFile },
        /the TLS files cannot be used \(certificate .*not-a-cert\.pem, key .*server\.key\): /,
      ],
      [
        // The billing client's key does not belong to the server's certificate.
        { FIELDSEAL_TLS_CERT_FILE: pki.server.certFile, FIELDSEAL_TLS_KEY_FILE: pki.billing.keyFile },
        /the TLS files cannot be used .*: .*key values mismatch/,
      ],
    ];
    for (const [env, pattern] of cases)
      expectOneLine(await serve({ FIELDSEAL_CONFIG: config, ...env }), pattern);
  });
});
