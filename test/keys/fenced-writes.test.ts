/**
 * The local store with real processes stalled or killed in the middle of a keyring write: no key version
 * is ever lost or replaced, and every value sealed by any process opens.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { Keyrings } from "../../src/keys/keyrings.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { Sealer } from "../../src/sealer.js";
import { tempStore } from "./support.js";

const WRITER = fileURLToPath(new URL("./fixtures/stalling-writer.mjs", import.meta.url));
const NAME = "shared";
const SCOPE = { kind: "session", id: "s1" } as const;
/** The writer process's stale-lock age; every stall below lasts several times longer. */
const STALE_MS = 200;

interface Message {
  type: string;
  pid?: number;
  target?: string;
  primary?: number;
  rotated?: number[];
  version?: number;
  sealed?: string;
}

class Writer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly #messages: Message[] = [];
  readonly #waiting: Array<() => void> = [];
  #stderr = "";
  readonly exited: Promise<number | null>;

  constructor(dir: string, stall: "STALL_AT_COMMIT" | "STALL_AFTER_LINK" = "STALL_AT_COMMIT") {
    this.child = spawn(process.execPath, [WRITER, dir, NAME], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, [stall]: "1" },
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      this.#messages.push(JSON.parse(line) as Message);
      for (const wake of this.#waiting.splice(0)) wake();
    });
    this.child.stderr.on("data", (d) => {
      this.#stderr += d;
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    void this.exited.then(() => {
      for (const wake of this.#waiting.splice(0)) wake();
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** The next message of `type`; fails if the process exits first or nothing comes within 20 s. */
  async next(type: string): Promise<Message> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const i = this.#messages.findIndex((m) => m.type === type);
      if (i >= 0) return this.#messages.splice(i, 1)[0] as Message;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`writer exited before "${type}": ${this.#stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`no "${type}" from the writer: ${this.#stderr}`);
      await Promise.race([new Promise<void>((wake) => this.#waiting.push(wake)), sleep(200)]);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGCONT");
      this.child.kill("SIGKILL");
    }
  }
}

describe("LocalFileKeyStore with a writer stalled or killed mid-write", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let writers: Writer[];
  let open: Keyrings[];

  beforeEach(async () => {
    let store: LocalFileKeyStore;
    ({ store, dir, cleanup } = await tempStore());
    const setup = new Keyrings(store);
    await setup.ensure(NAME);
    await setup.close();
    writers = [];
    open = [];
  });
  afterEach(async () => {
    for (const w of writers) w.kill();
    await Promise.all(writers.map((w) => w.exited));
    await Promise.all(open.map((k) => k.close()));
    await cleanup();
  });

  /** A second process's view: this test process, with its own store instance and cache. */
  function otherProcess(options: { staleLockMs: number; lockTimeoutMs: number }) {
    const rotated: number[] = [];
    const keyrings = new Keyrings(new LocalFileKeyStore(dir, options), {
      onEvent: (e) => {
        if (e.type === "rotated") rotated.push(e.version);
      },
    });
    open.push(keyrings);
    return { keyrings, sealer: new Sealer(keyrings, { legacyKeyring: NAME }), rotated };
  }

  /** A writer process stopped at the commit point of its rotation, holding the keyring's lock. */
  async function stoppedWriter(): Promise<Writer> {
    const writer = new Writer(dir);
    writers.push(writer);
    await writer.next("ready");
    writer.send("rotate");
    expect((await writer.next("at-commit")).target).toBe(`${NAME}.2.json`);
    writer.child.kill("SIGSTOP");
    await sleep(3 * STALE_MS);
    return writer;
  }

  /** Opens every sealed value with a fresh process view, as a downstream reader would. */
  async function openAll(values: Array<{ sealed: string; value: string }>): Promise<void> {
    const reader = otherProcess({ staleLockMs: 10_000, lockTimeoutMs: 10_000 }).sealer;
    for (const { sealed, value } of values) {
      expect((await reader.open({ scope: SCOPE, field: "card" }, sealed)).value).toBe(value);
    }
  }

  async function materialOf(version: number): Promise<string> {
    const state = await new LocalFileKeyStore(dir).load(NAME);
    const found = state?.versions[version - 1];
    return Buffer.from(found?.material ?? new Uint8Array()).toString("hex");
  }

  it("never breaks the lock of a stopped, live writer; the other process waits and adopts its version", async () => {
    const a = await stoppedWriter();
    const b = otherProcess({ staleLockMs: STALE_MS, lockTimeoutMs: 30_000 });
    let bDone = false;
    const bRotation = b.keyrings.rotate(NAME).finally(() => {
      bDone = true;
    });
    await sleep(5 * STALE_MS);
    // Far past the stale age, the lock is still the stopped writer's and the other rotation still waits.
    expect(bDone).toBe(false);
    const lock = JSON.parse(await readFile(join(dir, `${NAME}.lock`), "utf8"));
    expect(lock.pid).toBe(a.pid);
    // On Linux the lock names its owner by boot id and start time too, so a reused pid cannot pass for it.
    if (process.platform === "linux") expect(lock.start).toMatch(/^[0-9a-f-]{36}:[0-9]+$/);

    a.child.kill("SIGCONT");
    a.send("resume");
    const aDone = await a.next("done");
    const bState = await bRotation;
    const bSealed = await b.sealer.sealFields(NAME, SCOPE, [["card", "sealed by b"]]);

    expect(aDone.rotated).toEqual([2]); // the stopped writer's write landed, once it resumed
    expect(b.rotated).toEqual([]); // the waiting one adopted it rather than adding a version
    expect(bState.primary).toBe(2);
    expect(aDone.version).toBe(2);
    expect(bSealed.version).toBe(2);
    const state = await new LocalFileKeyStore(dir).load(NAME);
    expect(state?.versions.map((v) => v.version)).toEqual([1, 2]);
    await openAll([
      { sealed: aDone.sealed as string, value: `sealed by ${a.pid}` },
      { sealed: bSealed.sealed.get("card") as string, value: "sealed by b" },
    ]);
    a.send("exit");
    expect(await a.exited).toBe(0);
  });

  for (const bSeals of ["before", "after"] as const) {
    it(`refuses the commit of a writer whose lock was removed while it was stopped; it adopts (other seals ${bSeals} it resumes)`, async () => {
      const a = await stoppedWriter();
      // The lock disappears under the stopped writer, as the previous release's 10 s rule removed it (or an
      // operator might). From here on only the revision files stand between the two writers.
      await unlink(join(dir, `${NAME}.lock`));
      const b = otherProcess({ staleLockMs: STALE_MS, lockTimeoutMs: 30_000 });
      const bState = await b.keyrings.rotate(NAME);
      const seal = () => b.sealer.sealFields(NAME, SCOPE, [["card", "sealed by b"]]);
      const bEarly = bSeals === "before" ? await seal() : undefined;
      expect(b.rotated).toEqual([2]);
      expect(bState.primary).toBe(2);
      const v2 = await materialOf(2);

      a.child.kill("SIGCONT");
      a.send("resume");
      const aDone = await a.next("done");
      const bSealed = bEarly ?? (await seal());

      expect(aDone.rotated).toEqual([]); // its compare-and-swap was refused...
      expect(aDone.primary).toBe(2); // ...and it adopted the other process's version 2
      expect(aDone.version).toBe(2);
      expect(bSealed.version).toBe(2);
      expect(await materialOf(2)).toBe(v2); // version 2's material never changed
      const state = await new LocalFileKeyStore(dir).load(NAME);
      expect(state?.versions.map((v) => v.version)).toEqual([1, 2]);
      await openAll([
        { sealed: bSealed.sealed.get("card") as string, value: "sealed by b" },
        { sealed: aDone.sealed as string, value: `sealed by ${a.pid}` },
      ]);
      a.send("exit");
      expect(await a.exited).toBe(0);
    });
  }

  it("refuses a stopped writer's commit even after its revision number was pruned", async () => {
    const a = await stoppedWriter();
    await unlink(join(dir, `${NAME}.lock`));
    const b = otherProcess({ staleLockMs: STALE_MS, lockTimeoutMs: 30_000 });
    // Four rotations: revisions 2 to 5; only the last three revision files are kept, so `shared.2.json`,
    // the name the stopped writer is about to create, is free again.
    for (let i = 0; i < 4; i++) await b.keyrings.rotate(NAME);
    expect(b.rotated).toEqual([2, 3, 4, 5]);
    expect(await readdir(dir)).not.toContain(`${NAME}.2.json`);
    const before = await Promise.all([1, 2, 3, 4, 5].map(materialOf));
    const bSealed = await b.sealer.sealFields(NAME, SCOPE, [["card", "sealed by b"]]);

    a.child.kill("SIGCONT");
    a.send("resume");
    const aDone = await a.next("done");

    expect(aDone.rotated).toEqual([]);
    expect(aDone.version).toBe(5);
    expect(await Promise.all([1, 2, 3, 4, 5].map(materialOf))).toEqual(before);
    expect(await readdir(dir)).not.toContain(`${NAME}.2.json`);
    await openAll([
      { sealed: bSealed.sealed.get("card") as string, value: "sealed by b" },
      { sealed: aDone.sealed as string, value: `sealed by ${a.pid}` },
    ]);
    a.send("exit");
    expect(await a.exited).toBe(0);
  });

  it("recovers at once from a writer killed with SIGKILL between its temp file and its commit", async () => {
    const a = await stoppedWriter();
    a.child.kill("SIGKILL");
    await a.exited;
    const left = await readdir(dir);
    expect(left).toContain(`${NAME}.lock`);
    expect(left.some((f) => f.startsWith(`.${NAME}.${a.pid}.`) && f.endsWith(".tmp"))).toBe(true);

    // A stale age far beyond the test: only the owner's death may free the lock.
    const b = otherProcess({ staleLockMs: 600_000, lockTimeoutMs: 10_000 });
    const started = Date.now();
    const bState = await b.keyrings.rotate(NAME);
    expect(Date.now() - started).toBeLessThan(10_000);
    const bSealed = await b.sealer.sealFields(NAME, SCOPE, [["card", "sealed by b"]]);
    expect(b.rotated).toEqual([2]);
    expect(bState.versions.map((v) => v.version)).toEqual([1, 2]);
    // The dead writer's lock and temp file are gone; only revision files remain.
    expect((await readdir(dir)).sort()).toEqual([`${NAME}.1.json`, `${NAME}.2.json`, `${NAME}.3.json`]);
    await openAll([{ sealed: bSealed.sealed.get("card") as string, value: "sealed by b" }]);
  });

  for (const migrating of [false, true]) {
    it(`keeps the version of a writer killed right after its link, before its listing and pruning${migrating ? ", while migrating from an earlier release's file" : ""}`, async () => {
      let expectedTarget = `${NAME}.2.json`;
      if (migrating) {
        // The keyring as an earlier release left it: one `<name>.json`, revision 4, no revision files.
        const current = await new LocalFileKeyStore(dir).load(NAME);
        await unlink(join(dir, `${NAME}.1.json`));
        const old = { ...(current as NonNullable<typeof current>), revision: 4 };
        await writeFile(join(dir, `${NAME}.json`), encodeKeyring(old), { mode: 0o600 });
        expectedTarget = `${NAME}.5.json`;
      }
      const a = new Writer(dir, "STALL_AFTER_LINK");
      writers.push(a);
      await a.next("ready");
      a.send("rotate");
      expect((await a.next("at-linked")).target).toBe(expectedTarget);
      const linked = await materialOf(2);
      a.child.kill("SIGKILL");
      await a.exited;
      if (migrating) expect(await readdir(dir)).toContain(`${NAME}.json`);

      const b = otherProcess({ staleLockMs: 600_000, lockTimeoutMs: 10_000 });
      const bState = await b.keyrings.rotate(NAME);
      const bSealed = await b.sealer.sealFields(NAME, SCOPE, [["card", "sealed by b"]]);
      // The dead writer's version 2 stands, unchanged; the next writer built on it.
      expect(bState.versions.map((v) => v.version)).toEqual([1, 2, 3]);
      expect(await materialOf(2)).toBe(linked);
      const left = await readdir(dir);
      expect(left.filter((f) => !/^shared\.[0-9]+\.json$/.test(f))).toEqual([]);
      await openAll([{ sealed: bSealed.sealed.get("card") as string, value: "sealed by b" }]);
    });
  }
});
