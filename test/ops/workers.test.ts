/**
 * `fieldseal serve --workers 2`: real processes (a primary and its node:cluster workers) on one port.
 * Calls go over fresh HTTP/1.1 connections, one per call, so the primary's round-robin hands consecutive
 * calls to alternating workers.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, PushMode } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { parseEnvelope } from "../../src/engine/envelope.js";
import { bearer } from "../support/bearer.js";
import { startCognigySimulator } from "../support/cognigy-simulator.js";
import { FIELDSEAL_BIN, type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { grpc, grpcJsClient, unary } from "../support/grpc-js.js";

const SEAL_BLOCK = 65_536;
/** Values sealed in the first test: an odd number, so the two workers' counters differ. */
const VALUES = 21;
/** Fields per drain-test call: a request body that arrives in one segment (see the drain test). */
const FIELDS = 40;
const scope = { id: { case: "sessionId" as const, value: "s-workers" } };

/** A client whose every call opens its own connection (so calls are spread over the workers). */
function freshClient(url: string, token: string | undefined) {
  return createClient(
    FieldsealService,
    createConnectTransport({
      baseUrl: url,
      httpVersion: "1.1",
      nodeOptions: { agent: false },
      interceptors: [bearer(token)],
    }),
  );
}

/** One worker's sealed and opened field counters, from GET /metrics over a new connection. */
function scrape(url: string): Promise<{ sealed: number; opened: number }> {
  return new Promise((resolve, reject) => {
    get(`${url}/metrics`, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        text += d;
      });
      res.on("end", () => {
        const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
        resolve({
          sealed: value(/^fieldseal_fields_sealed_total (\d+)/m),
          opened: value(/^fieldseal_fields_opened_total\{outcome="ok"\} (\d+)/m),
        });
      });
    }).on("error", reject);
  });
}

/** Pids of the live child processes of `parent`, from /proc. */
function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name, which is in parentheses and may hold spaces.
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === parent && state !== "Z") pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids.sort((a, b) => a - b);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean, boundMs = 15_000): Promise<void> {
  for (let waited = 0; !condition(); waited += 25) {
    if (waited > boundMs) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function startWorkers(env: Record<string, string> = {}): Promise<FieldsealProcess> {
  return startFieldsealProcess({
    args: ["--workers", "2"],
    env: { FIELDSEAL_SHUTDOWN_GRACE_MS: "10000", ...env },
    startTimeoutMs: 30_000,
  });
}

describe("serve --workers 2", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startWorkers();
  });
  afterAll(async () => {
    await proc.stop(5_000);
  });

  it("runs two worker processes on one port; a value sealed by either opens through the other", async () => {
    const pid = proc.child.pid ?? 0;
    expect(childPids(pid)).toHaveLength(2);
    expect(proc.stdout()).toMatch(/with 2 workers/);
    const bot = freshClient(proc.url, proc.tokens.bot);
    const billing = freshClient(proc.url, proc.tokens.billing);
    const admin = freshClient(proc.url, proc.tokens.admin);
    const sealed: string[] = [];
    for (let i = 0; i < VALUES; i++) {
      const res = await bot.encryptFields({
        scope,
        fields: { credit_card: { kind: { case: "stringValue", value: `41111111111111${10 + i}` } } },
      });
      sealed.push(res.sealed.credit_card ?? "");
    }
    // Each worker reserved its own block with a compare-and-swap on the store: two blocks, none shared.
    // (A shared reservation would show one block; a lost one would let two workers count the same seals.)
    const described = await admin.describeKey({});
    const primary = described.key?.versions.find((v) => v.version === described.key?.primaryVersion);
    expect(primary?.sealsReserved).toBe(BigInt(2 * SEAL_BLOCK));
    // Every value opens on two consecutive connections, which round-robin gives to different workers.
    for (const [i, value] of sealed.entries()) {
      for (let k = 0; k < 2; k++) {
        const opened = await billing.decryptField({ scope, field: "credit_card", sealed: value });
        expect(opened.value?.kind).toEqual({ case: "stringValue", value: `41111111111111${10 + i}` });
      }
    }
    // Nonces come from each process's own CSPRNG: a worker started from a copy of another's memory would
    // repeat its nonce pool. Two more calls (one per worker), 500 fields each: every nonce differs.
    for (let call = 0; call < 2; call++) {
      const res = await bot.encryptFields({
        scope,
        fields: Object.fromEntries(
          Array.from({ length: 500 }, (_, i) => [
            `n${i}`,
            { kind: { case: "numberValue" as const, value: i } },
          ]),
        ),
      });
      sealed.push(...Object.values(res.sealed));
    }
    const nonces = sealed.map((text) => Buffer.from(parseEnvelope(text).nonce).toString("hex"));
    expect(new Set(nonces).size).toBe(VALUES + 1000);
    // Each worker's own counters (a scrape reaches one worker): one sealed 11 of the 21 values, the other
    // 10, and each opened all 21.
    const seen = new Map<string, { sealed: number; opened: number }>();
    for (let i = 0; i < 6; i++) {
      const m = await scrape(proc.url);
      seen.set(`${m.sealed}/${m.opened}`, m);
    }
    expect([...seen.values()].sort((a, b) => a.sealed - b.sealed)).toEqual([
      { sealed: 10 + 500, opened: VALUES },
      { sealed: 11 + 500, opened: VALUES },
    ]);
  });

  it("SIGHUP to the primary reloads the principals in every worker", async () => {
    const config = JSON.parse(readFileSync(join(proc.dataDir, "config.json"), "utf8"));
    const token = generateToken();
    config.principals.push({ name: "late", tokenSha256: hashToken(token), scopes: ["encrypt"] });
    writeFileSync(join(proc.dataDir, "config.json"), JSON.stringify(config), { mode: 0o600 });
    const late = freshClient(proc.url, token);
    await expect(late.listKeyrings({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    const before = proc.stderr().split("access rules reloaded").length;
    proc.child.kill("SIGHUP");
    await waitFor(() => proc.stderr().split("access rules reloaded").length - before === 2);
    for (let i = 0; i < 6; i++) {
      const res = await late.encryptFields({
        scope,
        fields: { f: { kind: { case: "numberValue", value: i } } },
      });
      expect(res.keyVersion).toBeGreaterThan(0);
    }
  });

  it("restarts a SIGKILLed worker; only calls in flight on it fail", async () => {
    const pid = proc.child.pid ?? 0;
    const [victim, survivor] = childPids(pid);
    if (victim === undefined || survivor === undefined) throw new Error("expected two workers");
    const bot = freshClient(proc.url, proc.tokens.bot);
    let killedAt = Number.POSITIVE_INFINITY;
    let noticedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    const failures: { startedAt: number; message: string }[] = [];
    let ok = 0;
    let okAfterRestart = 0;
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const startedAt = performance.now();
        try {
          await bot.encryptFields(
            { scope, fields: { v: { kind: { case: "numberValue", value: 1 } } } },
            { signal: AbortSignal.timeout(5_000) },
          );
          ok++;
          if (startedAt > noticedAt) okAfterRestart++;
        } catch (err) {
          failures.push({ startedAt, message: err instanceof ConnectError ? err.rawMessage : String(err) });
        }
      }
    });
    await waitFor(() => ok > 50);
    const noticedBefore = proc.stderr().split("starting another").length;
    process.kill(victim, "SIGKILL");
    killedAt = performance.now();
    await waitFor(() => proc.stderr().split("starting another").length > noticedBefore);
    noticedAt = performance.now();
    await waitFor(() => childPids(pid).length === 2 && /worker \d+ listening/.test(proc.stdout()));
    await waitFor(() => okAfterRestart > 50);
    stop = true;
    await Promise.all(loops);
    const workers = childPids(pid);
    console.log(
      `worker restart: ${ok} calls ok, ${failures.length} failed (all started before the primary noticed the death, ${(noticedAt - killedAt).toFixed(0)} ms after the kill): ${[...new Set(failures.map((f) => f.message))].join("; ")}`,
    );
    expect(alive(victim)).toBe(false);
    expect(workers).toContain(survivor);
    expect(workers).toHaveLength(2);
    // Failed calls are those that were in flight on the dead worker: at most one per loop, each started
    // before the primary saw the worker die (a connection handed to it in that moment dies with it).
    expect(failures.length).toBeLessThanOrEqual(8);
    for (const f of failures) expect(f.startedAt).toBeLessThan(noticedAt);
  });

  it("kills and replaces a hung worker (alive, not answering): calls are served again", async () => {
    const pid = proc.child.pid ?? 0;
    const [hung, other] = childPids(pid);
    if (hung === undefined || other === undefined) throw new Error("expected two workers");
    const listeningBefore = proc.stdout().split(/worker \d+ listening/).length;
    // Stopped, not dead: no exit event, the IPC channel stays open, connections handed to it hang.
    process.kill(hung, "SIGSTOP");
    try {
      await waitFor(() => proc.stderr().includes(`worker ${hung} has not answered`), 20_000);
      await waitFor(() => !alive(hung) && childPids(pid).length === 2, 10_000);
      await waitFor(() => proc.stdout().split(/worker \d+ listening/).length > listeningBefore, 20_000);
      expect(childPids(pid)).toContain(other);
      // Each call on a new connection: round-robin gives them to both workers, none to the hung one.
      const bot = freshClient(proc.url, proc.tokens.bot);
      for (let i = 0; i < 6; i++) {
        const res = await bot.encryptFields(
          { scope, fields: { v: { kind: { case: "numberValue", value: i } } } },
          { signal: AbortSignal.timeout(5_000) },
        );
        expect(Object.keys(res.sealed)).toEqual(["v"]);
      }
    } finally {
      if (alive(hung)) process.kill(hung, "SIGKILL");
    }
  }, 60_000);
});

describe("serve --workers 2 stopping", () => {
  it("SIGTERM during load drains every worker and the primary exits 0", async () => {
    const proc = await startWorkers();
    try {
      const pid = proc.child.pid ?? 0;
      const workers = childPids(pid);
      expect(workers).toHaveLength(2);
      const token = proc.tokens.bot ?? "";
      let sigterm = false;
      /** Outcome of each call, by whether it started before SIGTERM. */
      const before: string[] = [];
      const after: string[] = [];
      const fields = Object.fromEntries(
        Array.from({ length: FIELDS }, (_, i) => [
          `f${i}`,
          { kind: { case: "numberValue" as const, value: i } },
        ]),
      );
      // HTTP/2 (grpc-js), 16 clients with a connection each, spread over the workers by round-robin.
      // (HTTP/1.1 with a new connection per call: test/ops/drain-http1-new-connections.test.ts.)
      const clients = Array.from({ length: 16 }, () =>
        grpcJsClient(FieldsealService, `127.0.0.1:${proc.port}`, undefined, {
          "grpc.use_local_subchannel_pool": 1,
        }),
      );
      const loops = clients.map(async (client) => {
        for (;;) {
          const startedAfter = sigterm;
          let outcome: string;
          try {
            const res = await unary(client, FieldsealService.method.encryptFields, { scope, fields }, token);
            outcome = Object.keys(res.sealed).length === FIELDS ? "ok" : "partial";
          } catch (err) {
            const e = err as grpc.ServiceError;
            const unavailable = e.code === grpc.status.UNAVAILABLE;
            // The server's own refusal of a call that arrived while draining; or grpc-js's "No connection
            // established": the call was never sent (a stream above GOAWAY's last stream id, RFC 9113 6.8,
            // REFUSED_STREAM, RFC 9113 8.7, which grpc-js reports as "Stream refused by server", or the port
            // already closed). The audit check below proves no such call was processed.
            if (unavailable && /shutting down/.test(e.details)) outcome = "refused";
            else if (
              unavailable &&
              /No connection established|NGHTTP2_REFUSED_STREAM|Stream refused by server/.test(e.details)
            )
              outcome = "not started";
            else outcome = `other: ${e.code} ${e.details}`;
          }
          (startedAfter ? after : before).push(outcome);
          if (startedAfter || (sigterm && outcome !== "ok")) return;
        }
      });
      await new Promise((r) => setTimeout(r, 800));
      const okBefore = before.filter((o) => o === "ok").length;
      proc.child.kill("SIGTERM");
      sigterm = true;
      await Promise.all(loops);
      const exit = await Promise.race([
        proc.exited,
        new Promise<string>((r) => setTimeout(() => r("still running"), 20_000)),
      ]);
      const stdout = proc.stdout();
      await proc.stop();
      const tally = (list: string[]) => {
        const counts: Record<string, number> = {};
        for (const o of list) counts[o] = (counts[o] ?? 0) + 1;
        return counts;
      };
      const inFlightDone = before.filter((o) => o === "ok").length - okBefore;
      console.log(
        `workers SIGTERM under load: started before ${JSON.stringify(tally(before))} (${inFlightDone} completed after SIGTERM), started after ${JSON.stringify(tally(after))}`,
      );
      // Calls already sent finish whole or are refused untouched; later ones never get half an answer.
      for (const c of clients) c.close();
      for (const o of [...before, ...after]) expect(["ok", "refused", "not started"]).toContain(o);
      expect(inFlightDone).toBeGreaterThan(0);
      // Every sealing the workers did was answered: no reset call was processed.
      const audited = stdout
        .split("\n")
        .filter((l) => l.includes('"action":"encrypt"') && l.includes('"outcome":"ok"'));
      expect(audited.length).toBe([...before, ...after].filter((o) => o === "ok").length);
      expect(exit).toBe(0);
      expect(stdout.match(/worker \d+: SIGTERM: finishing in-flight calls/g)).toHaveLength(2);
      for (const w of workers) expect(alive(w)).toBe(false);
    } finally {
      await proc.stop();
    }
  });

  it("stops with exit code 1 when workers keep dying", async () => {
    const proc = await startWorkers();
    const pid = proc.child.pid ?? 0;
    try {
      for (let kill = 0; kill < 6 && proc.child.exitCode === null; kill++) {
        await waitFor(() => childPids(pid).length === 2 || proc.child.exitCode !== null);
        const [victim] = childPids(pid);
        if (victim !== undefined) process.kill(victim, "SIGKILL");
        await waitFor(
          () => proc.stderr().split("stopped (SIGKILL)").length > kill + 1 || proc.child.exitCode !== null,
        );
        // Wait for the replacement to listen before the next kill (a death before listening counts too).
        if (kill < 5) await waitFor(() => (proc.stdout().match(/worker \d+ listening/g) ?? []).length > kill);
      }
      expect(await proc.exited).toBe(1);
      expect(proc.stderr()).toMatch(/5 restarts within 60 s already, stopping/);
      await waitFor(() => childPids(pid).length === 0);
    } finally {
      await proc.stop();
    }
  });

  it("two workers appending to one audit file write whole lines, one per call", async () => {
    const proc = await startWorkers({ FIELDSEAL_AUDIT_FILE: "audit.log" });
    try {
      const bot = freshClient(proc.url, proc.tokens.bot);
      // Many long field names make long audit lines (about 6 KB), so interleaved writes would show.
      const fields = Object.fromEntries(
        Array.from({ length: 30 }, (_, i) => [
          `${"x".repeat(200)}${i}`,
          { kind: { case: "numberValue" as const, value: i } },
        ]),
      );
      await Promise.all(
        Array.from({ length: 16 }, async (_, loop) => {
          for (let i = 0; i < 20; i++) {
            const res = await bot.encryptFields({
              scope: { id: { case: "sessionId", value: `s-audit-${loop}-${i}` } },
              fields,
            });
            expect(Object.keys(res.sealed)).toHaveLength(30);
          }
        }),
      );
      const lines = readFileSync(join(proc.dataDir, "audit.log"), "utf8")
        .split("\n")
        .filter((l) => l !== "");
      const events = lines.map(
        (l) => JSON.parse(l) as { action: string; outcome: string; fields?: string[] },
      );
      const sealing = events.filter((e) => e.action === "encrypt" && e.outcome === "ok");
      expect(sealing).toHaveLength(16 * 20);
      for (const e of sealing) expect(e.fields).toHaveLength(30);
    } finally {
      await proc.stop();
    }
  });

  it("enforces connection limits per worker: two workers admit twice one worker's per-peer limit", async () => {
    const proc = await startWorkers({
      FIELDSEAL_MAX_CONNECTIONS_PER_PEER: "4",
      FIELDSEAL_FIRST_BYTES_TIMEOUT_MS: "20000",
    });
    const sockets: Socket[] = [];
    try {
      const closed: number[] = [];
      for (let i = 0; i < 12; i++) {
        const socket = connect(proc.port, "127.0.0.1");
        socket.on("error", () => {});
        socket.once("close", () => closed.push(i));
        sockets.push(socket);
        await new Promise((r) => socket.once("connect", r));
      }
      // Each worker keeps at most 4 of the silent connections it is handed and closes the rest at once. The
      // primary hands connections round-robin to workers that are free, so on a busy machine one worker may
      // get more than 6: at least 4 of the 12 are closed (never more than 8 kept), and more than one worker's
      // limit is kept (the limit is per worker, not shared).
      await waitFor(() => closed.length >= 4);
      await new Promise((r) => setTimeout(r, 500));
      const kept = sockets.length - closed.length;
      expect(kept).toBeLessThanOrEqual(8);
      expect(kept).toBeGreaterThan(4);
    } finally {
      for (const s of sockets) s.destroy();
      await proc.stop();
    }
  });

  it("stops its workers when the primary is SIGKILLed: no worker outlives it", async () => {
    const proc = await startWorkers();
    const pid = proc.child.pid ?? 0;
    const workers = childPids(pid);
    expect(workers).toHaveLength(2);
    try {
      proc.child.kill("SIGKILL");
      await proc.exited;
      // Each worker sees its IPC channel close ("disconnect"), drains and exits.
      await waitFor(() => workers.every((w) => !alive(w)), 20_000);
    } finally {
      for (const w of workers) if (alive(w)) process.kill(w, "SIGKILL");
      await proc.stop();
    }
  });

  it("SIGTERM while the workers start: every worker stops, and the primary exits 0", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-workers-"));
    const child = spawn(process.execPath, [FIELDSEAL_BIN, "serve", "--workers", "2"], {
      cwd: dataDir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dataDir,
        FIELDSEAL_DATA_DIR: dataDir,
        FIELDSEAL_PORT: "0",
        FIELDSEAL_HOST: "127.0.0.1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    const exited = new Promise<number | string>((r) =>
      child.once("exit", (code, signal) => r(code ?? signal ?? "unknown")),
    );
    const pid = child.pid ?? 0;
    let workers: number[] = [];
    try {
      // As soon as both workers exist, before they listen.
      await waitFor(() => childPids(pid).length === 2, 30_000);
      workers = childPids(pid);
      child.kill("SIGTERM");
      const exit = await Promise.race([
        exited,
        new Promise<string>((r) => setTimeout(() => r("still running"), 20_000)),
      ]);
      expect(exit).toBe(0);
      for (const w of workers) expect(alive(w)).toBe(false);
    } finally {
      for (const w of workers) if (alive(w)) process.kill(w, "SIGKILL");
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("exits 1 with one line saying why when the port is taken or the worker count is not a number", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as AddressInfo).port;
    try {
      for (const [args, why] of [
        [
          ["--workers", "2", "--port", String(port)],
          /cannot listen on 127\.0\.0\.1 port \d+: another process is using it/,
        ],
        [
          ["--workers", "0"],
          /FIELDSEAL_WORKERS \(file key "workers"\) must be a whole number from 1 to 256 or auto/,
        ],
      ] as const) {
        const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-workers-"));
        const child = spawn(process.execPath, [FIELDSEAL_BIN, "serve", ...args], {
          cwd: dataDir,
          env: { PATH: process.env.PATH ?? "", HOME: dataDir, FIELDSEAL_DATA_DIR: dataDir },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let err = "";
        child.stderr.setEncoding("utf8").on("data", (d: string) => {
          err += d;
        });
        const code = await new Promise((r) => child.once("exit", r));
        rmSync(dataDir, { recursive: true, force: true });
        expect(code).toBe(1);
        expect(err).toMatch(why);
        expect(err).not.toMatch(/\n\s+at /);
      }
    } finally {
      busy.close();
    }
  });

  it("splits the Cognigy rate limit over the workers: the host sends no more than FIELDSEAL_COGNIGY_RATE_LIMIT", async () => {
    // Cognigy counts requests per client IP, and both workers push from this host's.
    const sim = await startCognigySimulator({ rateLimit: { limit: 100, windowSec: 300 } });
    const proc = await startFieldsealProcess({
      args: ["--workers", "2"],
      env: { FIELDSEAL_SHUTDOWN_GRACE_MS: "10000" },
      settings: {
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, mode: "context_inject", rateLimit: 6 },
      },
      startTimeoutMs: 30_000,
    });
    try {
      const outcomes: string[] = [];
      // One connection per call: round-robin hands them to the two workers in turn.
      for (let i = 0; i < 16; i++) {
        try {
          await freshClient(proc.url, proc.tokens.bot).pushSession({
            sessionId: `rl-${i}`,
            userId: "user-1",
            mode: PushMode.CONTEXT_INJECT,
            context: { __enc_card: { kind: { case: "stringValue", value: `fs1.sealed-${i}` } } },
          });
          outcomes.push("ok");
        } catch (err) {
          outcomes.push(ConnectError.from(err).metadata.get("fieldseal-reason") ?? "other");
        }
      }
      // Each worker allows 3; without the split each would allow 6, 12 in all.
      expect(sim.requests).toHaveLength(6);
      expect(outcomes.filter((o) => o === "ok")).toHaveLength(6);
      expect(outcomes.filter((o) => o === "cognigy_rate_limited")).toHaveLength(10);
    } finally {
      await proc.stop();
      await sim.close();
    }
  });

  it("prints the first start's admin token once, not once per worker", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-workers-"));
    const child = spawn(process.execPath, [FIELDSEAL_BIN, "serve", "--workers", "2"], {
      cwd: dataDir,
      env: { PATH: process.env.PATH ?? "", HOME: dataDir, FIELDSEAL_DATA_DIR: dataDir, FIELDSEAL_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    const exited = new Promise((r) => child.once("exit", r));
    try {
      await waitFor(() => /fieldseal listening on (\S+)/.test(out), 30_000);
      const url = /fieldseal listening on (\S+)/.exec(out)?.[1] ?? "";
      expect(out.match(/created an admin token/g)).toHaveLength(1);
      const token = /\n {2}(fsk_\S+)\n/.exec(out)?.[1];
      const admin = freshClient(url, token);
      for (let i = 0; i < 4; i++) expect((await admin.listKeyrings({})).keyrings).toContain("default");
    } finally {
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
