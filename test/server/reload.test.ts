import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { reloadAccess } from "../../src/server/reload.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const token = generateToken();
const configWith = (entry: object) =>
  `${JSON.stringify({ principals: [{ name: "svc", tokenSha256: hashToken(token), ...entry }] }, null, 2)}\n`;
/** Rule 1 of the second principal names an operation that does not exist (line 17 of the file). */
const BROKEN = `${JSON.stringify(
  {
    principals: [
      { name: "svc", tokenSha256: hashToken(token), scopes: ["rotate"] },
      { name: "other", tokenSha256: hashToken(generateToken()), allow: [{ ops: ["decrypt", "decrpyt"] }] },
    ],
  },
  null,
  2,
)}\n`;

function clientAt(url: string) {
  return createClient(
    FieldsealService,
    createConnectTransport({
      baseUrl: url,
      httpVersion: "2",
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ],
    }),
  );
}

describe("reloading access rules in process", () => {
  let fs: TestFieldseal;
  let dir: string;
  const logs: string[] = [];
  const log = createLogger("info", (line) => logs.push(line));
  const load = () => loadConfig({ FIELDSEAL_CONFIG: join(dir, "config.json"), FIELDSEAL_DATA_DIR: dir }, dir);

  beforeAll(async () => {
    fs = await startTestFieldseal({ principals: [] });
    dir = fs.dataDir;
  });
  afterAll(async () => {
    await fs?.close();
  });

  it("takes new grants, and keeps the old ones when the file is bad", async () => {
    const client = clientAt(fs.url);
    await expect(client.listKeyrings({})).rejects.toMatchObject({ code: Code.Unauthenticated });

    writeFileSync(join(dir, "config.json"), configWith({ scopes: ["encrypt"] }));
    expect(reloadAccess(fs.server.access, load, log)).toBe(true);
    await expect(client.listKeyrings({})).rejects.toMatchObject({ code: Code.PermissionDenied });

    writeFileSync(join(dir, "config.json"), configWith({ allow: [{ ops: ["describe"] }] }));
    expect(reloadAccess(fs.server.access, load, log)).toBe(true);
    expect((await client.listKeyrings({})).keyrings).toEqual(["default"]);

    writeFileSync(join(dir, "config.json"), BROKEN);
    expect(reloadAccess(fs.server.access, load, log)).toBe(false);
    const failure = JSON.parse(logs.at(-1) ?? "{}");
    expect(failure.msg).toBe("access reload failed; keeping the previous rules");
    expect(failure.error).toContain('principals[1].allow[0].ops[1]: unknown operation "decrpyt"');
    expect(failure.error).toContain("config.json line 17");
    expect((await client.listKeyrings({})).keyrings).toEqual(["default"]);

    writeFileSync(join(dir, "config.json"), "{ not json");
    expect(reloadAccess(fs.server.access, load, log)).toBe(false);
    expect((await client.listKeyrings({})).keyrings).toEqual(["default"]);
  });

  it("drops no call while the rules are swapped back and forth", async () => {
    const a = configWith({ allow: [{ ops: ["describe"] }] });
    const b = configWith({ scopes: ["rotate"] });
    const client = clientAt(fs.url);
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      calls.push(client.listKeyrings({}));
      writeFileSync(join(dir, "config.json"), i % 2 === 0 ? a : b);
      expect(reloadAccess(fs.server.access, load, log)).toBe(true);
    }
    const settled = await Promise.allSettled(calls);
    expect(settled.filter((s) => s.status === "rejected")).toEqual([]);
  });
});

describe("SIGHUP to a real fieldseal serve process", () => {
  let child: ChildProcess | undefined;
  let dir: string;
  let url: string;
  const stderr: string[] = [];
  const lineWaiters: Array<{ pattern: RegExp; resolve: (m: RegExpExecArray) => void }> = [];

  /** Resolves with the first output line matching `pattern` from now on; the test's timeout bounds it. */
  const nextLine = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve) => lineWaiters.push({ pattern, resolve }));
  const onLine = (line: string) => {
    for (const [i, w] of lineWaiters.entries()) {
      const m = w.pattern.exec(line);
      if (m !== null) {
        lineWaiters.splice(i, 1);
        w.resolve(m);
        return;
      }
    }
  };

  beforeAll(async () => {
    const root = resolve(import.meta.dirname, "../..");
    execFileSync(
      process.execPath,
      [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      {
        cwd: root,
      },
    );
    dir = mkdtempSync(join(tmpdir(), "fieldseal-sighup-"));
    writeFileSync(join(dir, "config.json"), configWith({ scopes: ["encrypt"] }), { mode: 0o600 });
    const listening = nextLine(/^fieldseal listening on (\S+)/);
    child = spawn(process.execPath, [join(root, "bin/fieldseal.js"), "serve"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        FIELDSEAL_DATA_DIR: dir,
        FIELDSEAL_CONFIG: join(dir, "config.json"),
        FIELDSEAL_PORT: "0",
        FIELDSEAL_HOST: "127.0.0.1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const [stream, sink] of [
      [child.stdout, undefined],
      [child.stderr, stderr],
    ] as const) {
      let buffered = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          sink?.push(line);
          onLine(line);
        }
      });
    }
    url = (await listening)[1] ?? "";
  });
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child?.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("reloads grants on SIGHUP and keeps them when the new file is bad", async () => {
    const client = clientAt(url);
    await expect(client.listKeyrings({})).rejects.toMatchObject({ code: Code.PermissionDenied });

    writeFileSync(join(dir, "config.json"), configWith({ allow: [{ ops: ["describe"] }] }));
    let logged = nextLine(/"msg":"access rules reloaded"/);
    child?.kill("SIGHUP");
    await logged;
    expect((await client.listKeyrings({})).keyrings).toEqual(["default"]);

    writeFileSync(join(dir, "config.json"), BROKEN);
    logged = nextLine(/"msg":"access reload failed; keeping the previous rules"/);
    child?.kill("SIGHUP");
    const failure = await logged;
    expect(failure.input).toContain("principals[1].allow[0].ops[1]");
    expect((await client.listKeyrings({})).keyrings).toEqual(["default"]);
    expect(child?.exitCode).toBeNull();
  });

  it("says which settings a SIGHUP did not apply: legacyEnabled needs a restart", async () => {
    const next = JSON.parse(configWith({ allow: [{ ops: ["describe"] }] }));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...next, legacyEnabled: false }));
    const warned = nextLine(/"msg":"settings changed in the config take effect only on restart"/);
    child?.kill("SIGHUP");
    const line = JSON.parse((await warned).input) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "warn", settings: ["legacyEnabled"] });
    // Principals were still taken.
    expect((await clientAt(url).listKeyrings({})).keyrings).toEqual(["default"]);
  });

  it("says so for field formats too (they are Maps, which plain JSON would show as always equal)", async () => {
    const next = JSON.parse(configWith({ allow: [{ ops: ["describe"] }] }));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({
        ...next,
        fields: { credit_card: { format: "card" } },
        keyringFields: { default: { email: { format: "email" } } },
      }),
    );
    const warned = nextLine(/"msg":"settings changed in the config take effect only on restart"/);
    child?.kill("SIGHUP");
    const line = JSON.parse((await warned).input) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "warn", settings: ["fields", "keyringFields"] });
  });
});
