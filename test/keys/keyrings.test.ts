import { readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { isFieldsealError } from "../../src/errors.js";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { type KeyEvent, Keyrings, type KeyringsOptions } from "../../src/keys/keyrings.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import type { KeyringState } from "../../src/keys/types.js";
import { keyringState } from "./key-store-contract.js";
import { ObservedStore, tempStore } from "./support.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function expectContiguous(state: KeyringState | undefined, count: number): void {
  expect(state?.versions.map((v) => v.version)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  expect(state?.primary).toBe(count);
  expect(new Set(state?.versions.map((v) => hex(v.material))).size).toBe(count);
}

describe("Keyrings", () => {
  let store: LocalFileKeyStore;
  let cleanup: () => Promise<void>;
  const open: Keyrings[] = [];
  const keyrings = (options?: KeyringsOptions, over: ObservedStore | LocalFileKeyStore = store) => {
    const k = new Keyrings(over, options);
    open.push(k);
    return k;
  };

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore());
  });
  afterEach(async () => {
    for (const k of open.splice(0)) await k.close();
    await cleanup();
  });

  it("creates a keyring only when asked, with version 1, and opens with the same key", async () => {
    const k = keyrings();
    await expect(k.sealingKey("payments")).rejects.toMatchObject({ code: "keyring_not_found" });
    expect(await store.list()).toEqual([]);
    expect((await k.create("payments")).primary).toBe(1);
    const sealing = await k.sealingKey("payments");
    expect(sealing.version).toBe(1);
    expect(sealing.material).toHaveLength(32);
    expect(hex((await k.openingKey("payments", 1)).material)).toBe(hex(sealing.material));
    expectContiguous(await store.load("payments"), 1);
    await expect(keyrings().create("payments")).rejects.toMatchObject({ code: "failed_precondition" });
    expectContiguous(await store.load("payments"), 1);
  });

  it("creates on first sealing use only when autoCreate is on", async () => {
    const k = keyrings({ autoCreate: true });
    expect((await k.sealingKey("payments")).version).toBe(1);
    expect(await store.list()).toEqual(["payments"]);
  });

  it("refuses invalid keyring names, versions and counts", async () => {
    const k = keyrings();
    for (const name of ["", "Payments", "../x", "a b", "-lead", "x".repeat(64)]) {
      await expect(k.sealingKey(name)).rejects.toMatchObject({ code: "invalid_argument" });
    }
    await expect(k.openingKey("payments", 0)).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(k.openingKey("payments", 1.5)).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(k.sealingKey("payments", 0)).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("reports an unknown keyring and an unknown version", async () => {
    const k = keyrings();
    await expect(k.openingKey("nothing", 1)).rejects.toMatchObject({ code: "keyring_not_found" });
    await k.ensure("payments");
    await expect(k.openingKey("payments", 2)).rejects.toMatchObject({ code: "key_version_not_found" });
    await expect(k.rotate("nothing")).rejects.toMatchObject({ code: "keyring_not_found" });
  });

  it("keeps every old version opening after rotations", async () => {
    const k = keyrings();
    await k.ensure("payments");
    const materials = [hex((await k.sealingKey("payments")).material)];
    for (let i = 0; i < 5; i++) {
      const state = await k.rotate("payments");
      const sealing = await k.sealingKey("payments");
      expect(sealing.version).toBe(state.primary);
      materials.push(hex(sealing.material));
    }
    expectContiguous(await store.load("payments"), 6);
    const fresh = keyrings();
    for (let v = 1; v <= 6; v++) {
      expect(hex((await k.openingKey("payments", v)).material)).toBe(materials[v - 1]);
      expect(hex((await fresh.openingKey("payments", v)).material)).toBe(materials[v - 1]);
    }
  });

  it("hands out the one cached copy of a version's material, never a scattered duplicate", async () => {
    const k = keyrings();
    await k.ensure("payments");
    const first = await k.sealingKey("payments");
    const again = await k.openingKey("payments", 1);
    expect(again.material).toBe(first.material);
    expect(first.material).toHaveLength(32);
  });

  it("refuses retired versions and keeps the rules of retirement", async () => {
    const k = keyrings();
    await k.ensure("payments");
    await k.rotate("payments");
    await k.rotate("payments");
    const state = await k.retire("payments", 2);
    expect(state.minDecryptVersion).toBe(2);
    const err = await k.openingKey("payments", 1).catch((e: unknown) => e);
    expect(isFieldsealError(err, "key_version_retired")).toBe(true);
    expect((await k.openingKey("payments", 2)).version).toBe(2);
    await expect(k.retire("payments", 4)).rejects.toMatchObject({ code: "failed_precondition" });
    await expect(k.retire("payments", 1)).rejects.toMatchObject({ code: "failed_precondition" });
    expect((await k.retire("payments", 2)).revision).toBe(state.revision);
    // Another process learns of the retirement from the store.
    await expect(keyrings().openingKey("payments", 1)).rejects.toMatchObject({ code: "key_version_retired" });
  });

  it("rotates with expectedPrimary only when the primary matches", async () => {
    const k = keyrings();
    await k.ensure("payments");
    expect((await k.rotate("payments", { expectedPrimary: 1 })).primary).toBe(2);
    const err = await k.rotate("payments", { expectedPrimary: 1 }).catch((e: unknown) => e);
    expect(isFieldsealError(err, "conflict")).toBe(true);
    expectContiguous(await store.load("payments"), 2);
  });

  it("lets exactly one of many rotations with the same expectedPrimary win, across instances", async () => {
    const a = keyrings();
    const b = keyrings();
    await a.ensure("payments");
    for (let round = 1; round <= 4; round++) {
      const calls = [a, b, a, b, a, b].map((k) => k.rotate("payments", { expectedPrimary: round }));
      const outcomes = await Promise.allSettled(calls);
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
      for (const o of outcomes)
        if (o.status === "rejected") expect(o.reason).toMatchObject({ code: "conflict" });
    }
    expectContiguous(await store.load("payments"), 5);
  });

  it("turns concurrent rotations in one instance into one new version per round", async () => {
    const k = keyrings();
    await k.ensure("payments");
    for (let round = 1; round <= 4; round++) {
      const results = await Promise.all(Array.from({ length: 8 }, () => k.rotate("payments")));
      expect(new Set(results.map((r) => r.primary))).toEqual(new Set([round + 1]));
    }
    expectContiguous(await store.load("payments"), 5);
  });

  it("turns concurrent rotations in two instances into one new version per round by adopting the winner", async () => {
    const observed = new ObservedStore(store);
    const a = keyrings({}, observed);
    const b = keyrings({}, observed);
    await a.ensure("payments");
    for (let round = 1; round <= 4; round++) {
      // Both instances read the same primary before either writes, so both really race to replace it.
      observed.holdLoadsUntil(2);
      const results = await Promise.all([a.rotate("payments"), b.rotate("payments"), a.rotate("payments")]);
      expect(results.map((r) => r.primary)).toEqual([round + 1, round + 1, round + 1]);
      const fromA = await a.openingKey("payments", round + 1);
      const fromB = await b.openingKey("payments", round + 1);
      expect(hex(fromA.material)).toBe(hex(fromB.material));
    }
    expectContiguous(await store.load("payments"), 5);
  });

  it("loads an uncached version once for many concurrent callers", async () => {
    const observed = new ObservedStore(store);
    const a = keyrings({}, observed);
    await a.ensure("payments");
    const rotated = await keyrings().rotate("payments");
    const expected = hex(rotated.versions[1]?.material ?? new Uint8Array());
    observed.loads = 0;
    const keys = await Promise.all(Array.from({ length: 20 }, () => a.openingKey("payments", 2)));
    expect(observed.loads).toBe(1);
    for (const key of keys) expect(hex(key.material)).toBe(expected);
  });

  it("serves sealing keys from memory while the reserved block has room", async () => {
    const observed = new ObservedStore(store);
    const events: KeyEvent[] = [];
    const k = keyrings({ onEvent: (e) => events.push(e) }, observed);
    await k.ensure("payments");
    await k.sealingKey("payments");
    observed.loads = 0;
    observed.cases = 0;
    for (let i = 0; i < 200; i++) await k.sealingKey("payments");
    expect([observed.loads, observed.cases]).toEqual([0, 0]);
    expect(events.filter((e) => e.type === "seal_block_reserved")).toHaveLength(1);
    expect((await store.load("payments"))?.versions[0]?.sealsReserved).toBe(65_536);
  });

  it("keeps serving cached keys while the store is down, fails uncached ones clearly, and heals", async () => {
    const observed = new ObservedStore(store);
    const a = keyrings({}, observed);
    await a.ensure("payments");
    const first = await a.sealingKey("payments");
    await keyrings().rotate("payments");
    observed.down = true;
    expect(hex((await a.openingKey("payments", 1)).material)).toBe(hex(first.material));
    expect((await a.sealingKey("payments")).version).toBe(1);
    const err = await a.openingKey("payments", 2).catch((e: unknown) => e);
    expect(isFieldsealError(err, "store_unavailable")).toBe(true);
    expect((err as Error).message).toContain('"payments"');
    expect((err as Error).message).toContain("version 2");
    expect((await a.describe("payments")).primary).toBe(1);
    observed.down = false;
    expect((await a.openingKey("payments", 2)).version).toBe(2);
  });

  it("refreshes the primary in the background without holding up sealing", async () => {
    let now = Date.parse("2026-03-01T00:00:00Z");
    const observed = new ObservedStore(store);
    const a = keyrings({ now: () => now, primaryRefreshMs: 10_000 }, observed);
    await a.ensure("payments");
    expect((await a.sealingKey("payments")).version).toBe(1);
    await keyrings().rotate("payments");
    now += 10_000;
    observed.loads = 0;
    observed.holdLoadsUntil(1_000);
    try {
      // The refresh is stuck in the store, yet sealing answers from memory.
      expect((await a.sealingKey("payments")).version).toBe(1);
      expect((await a.sealingKey("payments")).version).toBe(1);
      expect(observed.loads).toBe(1);
    } finally {
      observed.releaseLoads();
    }
    await vi.waitFor(async () => expect((await a.sealingKey("payments")).version).toBe(2));
  });

  it("rotates a primary older than maxAgeMs", async () => {
    let now = Date.parse("2026-03-01T00:00:00Z");
    const events: KeyEvent[] = [];
    const k = keyrings({ now: () => now, policy: { maxAgeMs: 3_600_000 }, onEvent: (e) => events.push(e) });
    await k.ensure("payments");
    const first = await k.sealingKey("payments");
    expect((await k.describe("payments")).rotateBy).toBe("2026-03-01T01:00:00.000Z");
    now += 3_599_999;
    expect((await k.sealingKey("payments")).version).toBe(1);
    now += 1;
    expect((await k.sealingKey("payments")).version).toBe(2);
    expect(events).toContainEqual({ type: "rotated", keyring: "payments", version: 2, reason: "age" });
    expect(hex((await k.openingKey("payments", 1)).material)).toBe(hex(first.material));
    expectContiguous(await store.load("payments"), 2);
  });

  it("keeps sealing under an over-age primary while the store is down", async () => {
    let now = Date.parse("2026-03-01T00:00:00Z");
    const observed = new ObservedStore(store);
    const k = keyrings({ now: () => now, policy: { maxAgeMs: 1_000 } }, observed);
    await k.ensure("payments");
    await k.sealingKey("payments");
    now += 5_000;
    observed.down = true;
    expect((await k.sealingKey("payments")).version).toBe(1);
    observed.down = false;
    now += 60_000;
    expect((await k.sealingKey("payments")).version).toBe(2);
  });

  it("rotates before the reserved seals would pass the budget, and never hands out more than reserved", async () => {
    const events: KeyEvent[] = [];
    const k = keyrings({ policy: { sealBudget: 10 }, sealBlockSize: 4, onEvent: (e) => events.push(e) });
    await k.ensure("payments");
    const used = new Map<number, number>();
    for (let i = 0; i < 30; i++) {
      const { version } = await k.sealingKey("payments");
      used.set(version, (used.get(version) ?? 0) + 1);
    }
    // A block of 4, then one sized to the seal rate (at most half the budget: 5); no third fits in 10.
    expect(used.get(1)).toBe(9);
    const state = await store.load("payments");
    for (const [version, count] of used) {
      const reserved = state?.versions[version - 1]?.sealsReserved ?? 0;
      expect(count).toBeLessThanOrEqual(reserved);
      expect(reserved).toBeLessThanOrEqual(10);
    }
    expect(events.filter((e) => e.type === "rotated" && e.reason === "usage").length).toBeGreaterThanOrEqual(
      3,
    );
    expectContiguous(state, state?.versions.length ?? 0);
  });

  it("keeps the seals of all replicas together within each version's budget", async () => {
    const replicas = [0, 1, 2].map(() => keyrings({ policy: { sealBudget: 12 }, sealBlockSize: 4 }));
    await replicas[0]?.ensure("payments");
    const used = new Map<number, number>();
    for (let round = 0; round < 20; round++) {
      const keys = await Promise.all(
        replicas.flatMap((k) => [k.sealingKey("payments"), k.sealingKey("payments")]),
      );
      for (const { version } of keys) used.set(version, (used.get(version) ?? 0) + 1);
    }
    const state = await store.load("payments");
    expect(used.size).toBeGreaterThan(1);
    for (const [version, count] of used) {
      const reserved = state?.versions[version - 1]?.sealsReserved ?? 0;
      expect(count).toBeLessThanOrEqual(reserved);
      expect(reserved).toBeLessThanOrEqual(12);
    }
    expectContiguous(state, state?.versions.length ?? 0);
  });

  it("opens the version adopted from a legacy secret by its label", async () => {
    const legacy = keyringState("tutorial", 1, 2);
    await store.compareAndSwap(0, {
      ...legacy,
      versions: legacy.versions.map((v) => (v.version === 1 ? { ...v, legacyLabel: "v1" } : v)),
    });
    const k = keyrings();
    const key = await k.openingKeyByLegacyLabel("tutorial", "v1");
    expect(key.version).toBe(1);
    expect(hex(key.material)).toBe(hex(legacy.versions[0]?.material ?? new Uint8Array()));
    await expect(k.openingKeyByLegacyLabel("tutorial", "v9")).rejects.toMatchObject({
      code: "key_version_not_found",
    });
  });

  it("describes a keyring with its policy and lists keyrings", async () => {
    const k = keyrings({ policy: { sealBudget: 1_000_000 } });
    await k.ensure("b-ring");
    await k.ensure("a-ring");
    const description = await k.describe("a-ring");
    expect(description).toMatchObject({
      name: "a-ring",
      primary: 1,
      minDecryptVersion: 1,
      sealBudget: 1_000_000,
    });
    expect(description.rotateBy).toBeUndefined();
    expect(await k.list()).toEqual(["a-ring", "b-ring"]);
    await expect(k.describe("c-ring")).rejects.toMatchObject({ code: "keyring_not_found" });
  });

  it("never puts key material into error messages", async () => {
    const k = keyrings();
    await k.ensure("payments");
    const { material } = await k.sealingKey("payments");
    await k.retire("payments", 1);
    const errors = await Promise.all([
      k.openingKey("payments", 9).catch((e: unknown) => e),
      k.rotate("payments", { expectedPrimary: 7 }).catch((e: unknown) => e),
      k.retire("payments", 3).catch((e: unknown) => e),
    ]);
    for (const err of errors) {
      expect(err).toBeInstanceOf(Error);
      const text = `${(err as Error).message}`;
      expect(text).not.toContain(hex(material));
      expect(text).not.toContain(Buffer.from(material).toString("base64"));
    }
  });

  describe("after the store's files are restored from an older backup", () => {
    /** Rotates twice past a backup taken after the first seal, then restores the backup over the directory. */
    async function restoredUnder(server: Keyrings): Promise<Map<number, string>> {
      await server.create("payments");
      await server.sealingKey("payments");
      const backup = await readdir(store.directory);
      const saved = await Promise.all(backup.map((f) => readFile(join(store.directory, f))));
      await server.rotate("payments");
      await server.rotate("payments");
      const known = new Map<number, string>();
      for (const v of [1, 2, 3]) known.set(v, hex((await server.openingKey("payments", v)).material));
      for (const file of await readdir(store.directory)) await unlink(join(store.directory, file));
      for (const [i, file] of backup.entries()) {
        await writeFile(join(store.directory, file), saved[i] as Buffer);
      }
      return known;
    }

    /** Every version the store holds has the material the server knew for it. */
    async function expectNoVersionChanged(known: Map<number, string>): Promise<void> {
      const stored = await new LocalFileKeyStore(store.directory).load("payments");
      for (const v of stored?.versions ?? []) {
        const before = known.get(v.version);
        if (before !== undefined) expect(hex(v.material), `version ${v.version}`).toBe(before);
      }
    }

    it("never writes a new version 2 over the restored state; a rotation is refused as a store conflict", async () => {
      const events: KeyEvent[] = [];
      const server = keyrings({ onEvent: (e) => events.push(e) });
      const known = await restoredUnder(server);
      const files = (await readdir(store.directory)).sort();
      await expect(server.rotate("payments")).rejects.toMatchObject({
        code: "key_store_conflict",
        message: expect.stringMatching(/older than revision \d+ seen before/),
      });
      await expect(server.rotate("payments", { expectedPrimary: 3 })).rejects.toMatchObject({
        code: "key_store_conflict",
      });
      expect((await readdir(store.directory)).sort()).toEqual(files);
      await expectNoVersionChanged(known);
      expect(events.some((e) => e.type === "store_conflict" && e.kind === "store")).toBe(true);
      expect(hex((await server.openingKey("payments", 3)).material)).toBe(known.get(3));
    });

    it("never writes over it through a store that cannot tell its revision either (it may read stale)", async () => {
      const server = keyrings({}, new ObservedStore(new LocalFileKeyStore(store.directory)));
      const known = await restoredUnder(server);
      const files = (await readdir(store.directory)).sort();
      await expect(server.rotate("payments")).rejects.toMatchObject({ code: "conflict" });
      await expect(server.sealingKey("payments", 60_000)).rejects.toBeDefined();
      expect((await readdir(store.directory)).sort()).toEqual(files);
      await expectNoVersionChanged(known);
    });
  });

  describe("with a store that tells its revision cheaply (another process's rotation)", () => {
    let clock: number;
    const now = () => clock;
    beforeEach(() => {
      clock = Date.parse("2026-12-04T12:00:00Z");
    });

    it("does not re-read, re-log and re-count a refused or malformed newest revision before every seal", async () => {
      for (const planted of ["foreign", "malformed"] as const) {
        const events: KeyEvent[] = [];
        const server = keyrings({ now, revisionCheckMs: 250, onEvent: (e) => events.push(e) });
        const name = `ring-${planted}`;
        await server.create(name);
        await server.sealingKey(name);
        const plant = async () => {
          const next = (await store.revision(name)) + 1;
          const text = planted === "foreign" ? encodeKeyring(keyringState(name, next, 3)) : "{";
          await writeFile(join(store.directory, `${name}.${next}.json`), text, { mode: 0o600 });
        };
        const loads = () => events.filter((e) => e.type === "store_call" && e.op === "load").length;
        await plant();
        const before = loads();
        for (let i = 0; i < 20; i++) {
          clock += 300;
          expect((await server.sealingKey(name)).version).toBe(1);
        }
        expect(loads() - before, planted).toBe(1);
        // A newer revision is looked at again.
        await plant();
        clock += 300;
        await server.sealingKey(name);
        expect(loads() - before, planted).toBe(2);
      }
    });

    it("checks at most every revisionCheckMs before sealing, and seals under the new primary after", async () => {
      const server = keyrings({ now, revisionCheckMs: 250 });
      const cli = keyrings({}, new LocalFileKeyStore(store.directory));
      await cli.ensure("payments");
      expect((await server.sealingKey("payments")).version).toBe(1);
      await cli.rotate("payments");
      clock += 100;
      // Within the interval: the cached primary, no store access.
      expect((await server.sealingKey("payments")).version).toBe(1);
      clock += 200;
      expect((await server.sealingKey("payments")).version).toBe(2);
      const described = await server.describe("payments");
      expect(described.sealingVersion).toBe(2);
      expect(described.primary).toBe(2);
    });

    it("describes the sealing version beside the store's primary while they differ", async () => {
      const server = keyrings({ now });
      const cli = keyrings({}, new LocalFileKeyStore(store.directory));
      expect((await server.describe("payments").catch((e: unknown) => e)) instanceof Error).toBe(true);
      await cli.ensure("payments");
      // The server's miss for "payments" is trusted for its TTL (5 s).
      clock += 5_001;
      await server.sealingKey("payments");
      await cli.rotate("payments");
      const described = await server.describe("payments");
      expect(described.primary).toBe(2);
      expect(described.sealingVersion).toBe(1);
    });

    it("keeps sealing from its cache when the revision check fails", async () => {
      const failing = new LocalFileKeyStore(store.directory);
      const server = keyrings({ now, revisionCheckMs: 250 }, failing);
      await server.ensure("payments");
      expect((await server.sealingKey("payments")).version).toBe(1);
      failing.revision = () => Promise.reject(new Error("disk gone"));
      clock += 1_000;
      expect((await server.sealingKey("payments")).version).toBe(1);
    });

    it("waits at most a moment for a revision check that hangs, then seals from its cache", async () => {
      const hanging = new LocalFileKeyStore(store.directory);
      const server = keyrings({ now, revisionCheckMs: 250 }, hanging);
      await server.ensure("payments");
      expect((await server.sealingKey("payments")).version).toBe(1);
      let release: (n: number) => void = () => {};
      hanging.revision = () => new Promise<number>((resolve) => (release = resolve));
      clock += 1_000;
      const started = performance.now();
      expect((await server.sealingKey("payments")).version).toBe(1);
      // The second seal does not wait again for the same hung check.
      expect((await server.sealingKey("payments")).version).toBe(1);
      expect(performance.now() - started).toBeLessThan(5_000);
      release(1);
    });
  });
});
