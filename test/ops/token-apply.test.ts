import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { FIELDSEAL_BIN, type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";

const run = promisify(execFile);
const session = create(ScopeSchema, { id: { case: "sessionId", value: "s-apply" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

/** `fieldseal token create --apply` as a separate process against the server's data directory. */
async function applyToken(fs: FieldsealProcess, name: string, scopes = "encrypt") {
  const result = await run(
    process.execPath,
    [FIELDSEAL_BIN, "token", "create", "--name", name, "--scopes", scopes, "--apply"],
    {
      cwd: fs.dataDir,
      env: {
        PATH: process.env.PATH ?? "",
        FIELDSEAL_DATA_DIR: fs.dataDir,
        FIELDSEAL_CONFIG: join(fs.dataDir, "config.json"),
        FIELDSEAL_LOG_LEVEL: "silent",
      },
      timeout: 30_000,
    },
  );
  const token = /^\s+(fsk_[A-Za-z0-9_-]+)$/m.exec(result.stdout)?.[1];
  expect(token, result.stdout).toBeDefined();
  return { token: token as string, stdout: result.stdout };
}

function encryptAs(url: string, token: string) {
  const client = createClient(
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
  return client.encryptFields({ scope: session, fields: { card: text("4111111111111111") } });
}

describe("fieldseal token create --apply", () => {
  let fs: FieldsealProcess;
  beforeAll(async () => {
    fs = await startFieldsealProcess({ principals: [{ name: "admin", scopes: ["admin"] }] });
  }, 30_000);
  afterAll(async () => {
    await fs?.stop();
  });

  it("adds the principal to the 0600 config file and the running server takes it before the command ends", async () => {
    const { token, stdout } = await applyToken(fs, "svc-one");
    expect(stdout).toContain(`server ${fs.child.pid} reloaded`);
    // No wait: the command returned after the server confirmed its reload.
    const sealed = await encryptAs(fs.url, token);
    expect(Object.keys(sealed.sealed)).toEqual(["card"]);
    const configFile = join(fs.dataDir, "config.json");
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    const config = JSON.parse(readFileSync(configFile, "utf8")) as { principals: { name: string }[] };
    expect(config.principals.map((p) => p.name)).toEqual(["admin", "svc-one"]);
    // The token itself is never written: only its SHA-256.
    expect(readFileSync(configFile, "utf8")).not.toContain(token);
    // No temp or lock file is left beside it.
    expect(readdirSync(fs.dataDir).filter((n) => n.includes("tmp") || n.endsWith(".lock"))).toEqual([]);
  }, 60_000);

  it("loses neither of two concurrent --apply runs", async () => {
    const [a, b] = await Promise.all([applyToken(fs, "svc-a"), applyToken(fs, "svc-b")]);
    const config = JSON.parse(readFileSync(join(fs.dataDir, "config.json"), "utf8")) as {
      principals: { name: string }[];
    };
    expect(config.principals.map((p) => p.name).sort()).toEqual(["admin", "svc-a", "svc-b", "svc-one"]);
    await expect(encryptAs(fs.url, a.token)).resolves.toBeDefined();
    await expect(encryptAs(fs.url, b.token)).resolves.toBeDefined();
  }, 60_000);

  it("refuses a name already in use, and leaves the file as it was", async () => {
    const before = readFileSync(join(fs.dataDir, "config.json"), "utf8");
    const failed = await applyToken(fs, "svc-one").then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/principal "svc-one" already exists/);
    expect(readFileSync(join(fs.dataDir, "config.json"), "utf8")).toBe(before);
  }, 60_000);

  it("never signals a process whose run record is stale or whose pid was reused", async () => {
    const runDir = join(fs.dataDir, "run");
    // A record of a process that has exited.
    const gone = spawn(process.execPath, ["-e", "0"]);
    await new Promise((resolve) => gone.once("exit", resolve));
    const configFile = join(fs.dataDir, "config.json");
    const record = (pid: number, startTicks: string) =>
      JSON.stringify({ pid, configFile, startTicks, reloads: 0, lastReloadOk: true });
    writeFileSync(join(runDir, `${gone.pid}.json`), record(gone.pid as number, "1"));
    // A live process (no SIGHUP handler: the signal would kill it) holding a pid a dead server had.
    const bystander = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
    writeFileSync(join(runDir, `${bystander.pid}.json`), record(bystander.pid as number, "1"));
    try {
      const { stdout } = await applyToken(fs, "svc-stale");
      expect(stdout).toContain(`server ${fs.child.pid} reloaded`);
      expect(stdout).not.toContain(`server ${gone.pid} `);
      expect(stdout).not.toContain(`server ${bystander.pid} `);
      expect(bystander.exitCode).toBeNull();
      expect(bystander.signalCode).toBeNull();
      expect(existsSync(join(runDir, `${gone.pid}.json`))).toBe(false);
      expect(existsSync(join(runDir, `${bystander.pid}.json`))).toBe(false);
    } finally {
      bystander.kill("SIGKILL");
    }
  }, 60_000);

  it("removes the server's run record when it stops", async () => {
    const record = join(fs.dataDir, "run", `${fs.child.pid}.json`);
    expect(existsSync(record)).toBe(true);
    fs.child.kill("SIGTERM");
    await fs.exited;
    expect(existsSync(record)).toBe(false);
    // With no server running, --apply still writes the principal and says it takes effect on start.
    const { stdout } = await applyToken(fs, "svc-offline");
    expect(stdout).toContain("no running server reads this config file");
  }, 60_000);

  it("refuses an unknown scope before touching the file", async () => {
    const before = readFileSync(join(fs.dataDir, "config.json"), "utf8");
    const failed = await applyToken(fs, "svc-bad", "decrpyt:x").then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.stderr).toMatch(/unknown scope "decrpyt:x"/);
    expect(readFileSync(join(fs.dataDir, "config.json"), "utf8")).toBe(before);
  }, 60_000);

  it("serves all the same when it cannot write its run record", async () => {
    // A data directory where run/ cannot be created (a file holds its name), as on a read-only volume.
    const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-norun-"));
    writeFileSync(join(dataDir, "run"), "not a directory");
    const other = await startFieldsealProcess({
      principals: [{ name: "admin", scopes: ["admin"] }],
      env: { FIELDSEAL_DATA_DIR: dataDir },
    });
    try {
      const res = await fetch(`${other.url}/healthz`);
      expect(res.status).toBe(200);
      expect(other.stderr()).toContain("token create --apply will not find this server");
    } finally {
      await other.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
