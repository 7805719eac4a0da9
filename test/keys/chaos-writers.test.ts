/**
 * Many real processes rotating and sealing one local keyring at once, stopped (SIGSTOP/SIGCONT) and killed
 * (SIGKILL) at random moments: afterwards the versions are contiguous, every process saw the same material
 * for every version it saw, and every value any process sealed opens. Readers loading all the while, as
 * revision files are pruned under them, never fail and never see a version's material change.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Keyrings } from "../../src/keys/keyrings.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { Sealer } from "../../src/sealer.js";
import { tempStore } from "./support.js";

const WRITER = fileURLToPath(new URL("./fixtures/chaos-writer.mjs", import.meta.url));
const NAME = "shared";
const SCOPE = { kind: "session", id: "s1" } as const;
const PROCESSES = 6;
const ROTATIONS = 30;
/** Replacements started for killed processes, each with fewer rotations. */
const KILLS = 4;
/** Bound on the whole run; the writers normally finish well within it. */
const RUN_MS = 40_000;

interface Seen {
  type: "seen";
  hashes: Record<string, string>;
}
interface Sealed {
  type: "sealed";
  value: string;
  sealed: string;
  version: number;
  hash: string;
}
type Message = Seen | Sealed | { type: "ready" | "done" };

class ChaosWriter {
  readonly child: ChildProcessWithoutNullStreams;
  readonly messages: Message[] = [];
  stderr = "";
  readonly exited: Promise<number | string>;
  stopped = false;

  constructor(dir: string, rotations: number) {
    this.child = spawn(process.execPath, [WRITER, dir, NAME, String(rotations)], { stdio: "pipe" });
    // Only complete lines: a line cut short by SIGKILL never reaches "line".
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      this.messages.push(JSON.parse(line) as Message);
    });
    this.child.stderr.on("data", (d) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(name: NodeJS.Signals): void {
    if (this.running) this.child.kill(name);
  }
}

describe("LocalFileKeyStore under many stopped and killed writer processes", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let writers: ChaosWriter[];

  beforeEach(async () => {
    let store: LocalFileKeyStore;
    ({ store, dir, cleanup } = await tempStore());
    const setup = new Keyrings(store);
    await setup.ensure(NAME);
    await setup.close();
    writers = [];
  });
  afterEach(async () => {
    for (const w of writers) {
      w.signal("SIGCONT");
      w.signal("SIGKILL");
    }
    await Promise.all(writers.map((w) => w.exited));
    await cleanup();
  });

  it("loses no version, changes no material, and every sealed value opens", { timeout: 90_000 }, async () => {
    for (let i = 0; i < PROCESSES; i++) writers.push(new ChaosWriter(dir, ROTATIONS));
    // A seeded generator, so a failure can be replayed.
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    let kills = 0;
    let stops = 0;
    let ticks = 0;
    const deadline = Date.now() + RUN_MS;
    while (writers.some((w) => w.running) && Date.now() < deadline) {
      await sleep(20 + random() * 60);
      const live = writers.filter((w) => w.running && w.messages.length > 0);
      const victim = live[Math.floor(random() * live.length)];
      if (!victim) continue;
      ticks++;
      // The first kill and the first stop come early and for certain; the rest at random.
      const roll = ticks === 3 ? 0 : ticks === 1 ? 0.3 : random();
      if (roll < 0.06 && kills < KILLS) {
        kills++;
        victim.signal("SIGKILL");
        writers.push(new ChaosWriter(dir, 5));
      } else if (roll < 0.5) {
        stops++;
        victim.signal("SIGSTOP");
        await sleep(30 + random() * 300);
        victim.signal("SIGCONT");
      }
    }
    for (const w of writers) w.signal("SIGCONT");
    const codes = await Promise.all(writers.map((w) => w.exited));
    const unfinished = writers.filter((_, i) => codes[i] !== "SIGKILL" && codes[i] !== 0);
    expect(unfinished.map((w) => w.stderr)).toEqual([]);
    expect(kills).toBeGreaterThan(0);
    expect(stops).toBeGreaterThan(0);

    const final = await new LocalFileKeyStore(dir).load(NAME);
    const versions = final?.versions ?? [];
    expect(versions.map((v) => v.version)).toEqual(versions.map((_, i) => i + 1));
    const finalHash = new Map(
      versions.map((v) => [v.version, createHash("sha256").update(v.material).digest("hex")]),
    );
    expect(new Set(finalHash.values()).size).toBe(versions.length);

    const messages = writers.flatMap((w) => w.messages);
    const seen = messages.filter((m): m is Seen => m.type === "seen");
    const sealed = messages.filter((m): m is Sealed => m.type === "sealed");
    // Every rotation that finished in a process that lived to finish it: at least that many versions.
    expect(versions.length).toBeGreaterThanOrEqual(1 + writers.filter((_, i) => codes[i] === 0).length * 5);
    for (const m of seen) {
      for (const [version, hash] of Object.entries(m.hashes)) {
        expect(finalHash.get(Number(version)), `version ${version}`).toBe(hash);
      }
    }
    const reader = new Keyrings(new LocalFileKeyStore(dir));
    const opener = new Sealer(reader, { legacyKeyring: NAME });
    try {
      for (const m of sealed) {
        expect(finalHash.get(m.version)).toBe(m.hash);
        expect((await opener.open({ scope: SCOPE, field: "card" }, m.sealed)).value).toBe(m.value);
      }
    } finally {
      await reader.close();
    }
    expect(sealed.length).toBeGreaterThanOrEqual(PROCESSES);
  });

  it("lets readers load throughout while writers migrate an earlier release's file, rotate and prune", {
    timeout: 90_000,
  }, async () => {
    // The keyring as an earlier release stored it: all three writers migrate it at once.
    await rename(join(dir, `${NAME}.1.json`), join(dir, `${NAME}.json`));
    const legacy = await new LocalFileKeyStore(dir).load(NAME);
    for (let i = 0; i < 3; i++) writers.push(new ChaosWriter(dir, ROTATIONS));
    const materialSeen = new Map<number, string>();
    const failures: string[] = [];
    let loads = 0;
    const deadline = Date.now() + RUN_MS;
    const reading = async () => {
      while (writers.some((w) => w.running) && Date.now() < deadline) {
        // A fresh store each time: no cache, every load lists the directory and reads the newest file.
        const reader = new LocalFileKeyStore(dir);
        try {
          const state = await reader.load(NAME);
          await reader.revision(NAME);
          loads++;
          for (const v of state?.versions ?? []) {
            const hash = createHash("sha256").update(v.material).digest("hex");
            const before = materialSeen.get(v.version);
            if (before === undefined) materialSeen.set(v.version, hash);
            else if (before !== hash) failures.push(`version ${v.version} changed`);
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    await Promise.all([reading(), reading(), reading()]);
    expect(await Promise.all(writers.map((w) => w.exited))).toEqual([0, 0, 0]);
    expect(failures).toEqual([]);
    expect(loads).toBeGreaterThan(0);
    const final = await new LocalFileKeyStore(dir).load(NAME);
    expect(final?.versions.length).toBeGreaterThanOrEqual(1 + ROTATIONS);
    expect(final?.versions[0]?.material).toEqual(legacy?.versions[0]?.material);
    // Migrated: only revision files are left.
    expect((await readdir(dir)).filter((f) => !/^shared\.[0-9]+\.json$/.test(f))).toEqual([]);
    for (const v of final?.versions ?? []) {
      const hash = createHash("sha256").update(v.material).digest("hex");
      expect(materialSeen.get(v.version) ?? hash).toBe(hash);
    }
  });
});
