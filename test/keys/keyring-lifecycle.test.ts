import { readFile, unlink } from "node:fs/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FieldsealError, isFieldsealError } from "../../src/errors.js";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { type KeyEvent, Keyrings, type KeyringsOptions } from "../../src/keys/keyrings.js";
import type { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import type { KeyringState } from "../../src/keys/types.js";
import {
  currentKeyringFile,
  keyringRevisionFiles,
  ObservedStore,
  tempStore,
  writeKeyringRevision,
} from "./support.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

describe("Keyrings: operator-created keyrings, the miss cache and the bounded table", () => {
  let store: LocalFileKeyStore;
  let dir: string;
  let cleanup: () => Promise<void>;
  const open: Keyrings[] = [];
  const keyrings = (options?: KeyringsOptions, over: ObservedStore | LocalFileKeyStore = store) => {
    const k = new Keyrings(over, options);
    open.push(k);
    return k;
  };

  beforeEach(async () => {
    ({ store, dir, cleanup } = await tempStore());
  });
  afterEach(async () => {
    for (const k of open.splice(0)) await k.close();
    await cleanup();
  });

  it("answers 200,000 unknown names with keyring_not_found, a bounded number of store calls and bounded memory", async () => {
    const observed = new ObservedStore(store);
    await keyrings().ensure("payments");
    const now = 1_800_000_000_000;
    const k = keyrings({ now: () => now, maxCachedKeyrings: 1_000 }, observed);
    await k.sealingKey("payments");
    observed.loads = 0;
    observed.lists = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    let notFound = 0;
    for (let i = 0; i < 200_000; i++) {
      const name = `typo-${i}`;
      try {
        await (i % 2 === 0 ? k.sealingKey(name) : k.openingKey(name, 1));
      } catch (err) {
        if (isFieldsealError(err, "keyring_not_found")) notFound++;
      }
    }
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    expect(notFound).toBe(200_000);
    // One listing of names, plus the handful of direct loads allowed per miss TTL for unlisted names.
    expect(observed.lists).toBeLessThanOrEqual(1);
    expect(observed.loads).toBeLessThanOrEqual(16);
    expect(k.cacheSize()).toEqual({ keyrings: 1, misses: 1_000 });
    expect(await store.list()).toEqual(["payments"]);
    // Garbage may not be collected yet; the bound is generous (main needed 81 MB for this).
    expect(heapGrowthMb).toBeLessThan(64);
    console.info(
      `200k unknown names: ${observed.loads} loads, ${observed.lists} lists, heap +${heapGrowthMb.toFixed(1)} MB`,
    );
    // The real keyring still seals from memory.
    expect((await k.sealingKey("payments")).version).toBe(1);
  }, 60_000);

  it("answers made-up versions and legacy labels of a real keyring with a bounded number of store loads", async () => {
    const observed = new ObservedStore(store);
    await keyrings().ensure("payments");
    const k = keyrings({}, observed);
    await k.sealingKey("payments");
    observed.loads = 0;
    // Whoever hands in a value picks its version and legacy label: 20 callers, one after another each,
    // for one second.
    const until = Date.now() + 1_000;
    let calls = 0;
    await Promise.all(
      Array.from({ length: 20 }, async (_, caller) => {
        for (let i = 0; i < 10_000 && Date.now() < until; i++) {
          calls += 2;
          await expect(k.openingKey("payments", 1_000 + caller * 10_000 + i)).rejects.toMatchObject({
            code: "key_version_not_found",
          });
          await expect(k.openingKeyByLegacyLabel("payments", `made-up-${caller}-${i}`)).rejects.toMatchObject(
            {
              code: "key_version_not_found",
            },
          );
        }
      }),
    );
    const elapsed = 1_000 + Math.max(0, Date.now() - until);
    console.info(`${calls} made-up versions and labels in ${elapsed} ms: ${observed.loads} store loads`);
    expect(calls).toBeGreaterThan(20);
    // One load per 250 ms at most, plus the first.
    expect(observed.loads).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 2);
    // A version really created elsewhere is still found.
    await keyrings().rotate("payments");
    expect((await k.openingKey("payments", 2)).version).toBe(2);
  });

  it("sees a keyring another replica created once the miss TTL has passed, without a store call before", async () => {
    const observed = new ObservedStore(store);
    let now = 1_800_000_000_000;
    const a = keyrings({ now: () => now, missTtlMs: 5_000 }, observed);
    await expect(a.sealingKey("late")).rejects.toMatchObject({ code: "keyring_not_found" });
    await keyrings().create("late");
    const calls = observed.loads + observed.lists;
    await expect(a.sealingKey("late")).rejects.toMatchObject({ code: "keyring_not_found" });
    await expect(a.describe("late")).rejects.toMatchObject({ code: "keyring_not_found" });
    expect(observed.loads + observed.lists).toBe(calls);
    now += 5_000;
    expect((await a.sealingKey("late")).version).toBe(1);
  });

  it("finds a keyring created elsewhere right away when the name list is stale, within the direct-load budget", async () => {
    const now = 1_800_000_000_000;
    const a = keyrings({ now: () => now });
    await expect(a.sealingKey("first")).rejects.toMatchObject({ code: "keyring_not_found" });
    await keyrings().create("second");
    // "second" is not on a's list of names yet, but is loaded directly and found.
    expect((await a.sealingKey("second")).version).toBe(1);
  });

  it("works without the right to list keyrings: bounded direct loads, then UNAVAILABLE rather than a wrong NOT_FOUND", async () => {
    /** A store that may not list (as without secretsmanager:ListSecrets). */
    class NoListing extends ObservedStore {
      override async list(): Promise<string[]> {
        this.lists++;
        throw new FieldsealError("store_unavailable", "Secrets Manager denied permission for ListSecrets");
      }
    }
    for (let i = 0; i < 20; i++) await keyrings().create(`real-${i}`);
    const observed = new NoListing(store);
    let now = 1_800_000_000_000;
    const k = keyrings({ now: () => now }, observed);
    expect((await k.sealingKey("real-0")).version).toBe(1);
    const outcomes: string[] = [];
    for (let i = 0; i < 100; i++) {
      outcomes.push(
        await k.sealingKey(`unknown-${i}`).then(
          () => "ok",
          (e: FieldsealError) => e.code,
        ),
      );
    }
    expect(outcomes.filter((c) => c === "keyring_not_found")).toHaveLength(15);
    expect(outcomes.filter((c) => c === "store_unavailable")).toHaveLength(85);
    expect(observed.lists).toBe(1);
    expect(observed.loads).toBeLessThanOrEqual(16);
    // A real keyring is never called missing; past the window it is found again.
    await expect(k.sealingKey("real-1")).rejects.toMatchObject({ code: "store_unavailable" });
    now += 5_000;
    expect((await k.sealingKey("real-1")).version).toBe(1);
    expect(observed.lists).toBe(2);
  });

  it("keeps at most maxCachedKeyrings keyrings in memory and reloads the ones it dropped", async () => {
    const setup = keyrings();
    const names = Array.from({ length: 40 }, (_, i) => `ring-${i}`);
    for (const name of names) await setup.create(name);
    const k = keyrings({ maxCachedKeyrings: 10 });
    const first = new Map<string, string>();
    for (const name of names) first.set(name, hex((await k.sealingKey(name)).material));
    expect(k.cacheSize().keyrings).toBeLessThanOrEqual(10);
    for (const name of names) expect(hex((await k.openingKey(name, 1)).material)).toBe(first.get(name));
    expect(k.cacheSize().keyrings).toBeLessThanOrEqual(10);
  });

  it("lets exactly one of several concurrent creates of one name win; the others are told it exists", async () => {
    const creators = [keyrings(), keyrings(), keyrings(), keyrings()];
    const outcomes = await Promise.all(
      creators.map((k) =>
        k.create("race").then(
          (state) => `created r${state.revision}`,
          (e: FieldsealError) => e.code,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === "created r1")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "failed_precondition")).toHaveLength(3);
    const stored = (await store.load("race")) as KeyringState;
    expect(stored.versions).toHaveLength(1);
    // Every creator now seals with the one winning version 1.
    const materials = await Promise.all(
      creators.map(async (k) => hex((await k.sealingKey("race")).material)),
    );
    expect(new Set(materials).size).toBe(1);
  });

  it("never creates a keyring by rotating, retiring, destroying or describing an unknown name", async () => {
    const k = keyrings();
    await expect(k.rotate("nope")).rejects.toMatchObject({ code: "keyring_not_found" });
    await expect(k.retire("nope", 1)).rejects.toMatchObject({ code: "keyring_not_found" });
    await expect(k.destroy("nope", 1)).rejects.toMatchObject({ code: "keyring_not_found" });
    await expect(k.describe("nope")).rejects.toMatchObject({ code: "keyring_not_found" });
    expect(await store.list()).toEqual([]);
    expect(k.cacheSize().keyrings).toBe(0);
  });

  describe("immutability of key material", () => {
    /** Writes `state` into the keyring file behind the Keyrings' back, as a buggy tool or a restore would. */
    const overwrite = (state: KeyringState) => writeKeyringRevision(dir, state, encodeKeyring(state));

    it("refuses a stored state that changes a version's material, keeps serving, fails readiness until repaired", async () => {
      let now = 1_800_000_000_000;
      const events: KeyEvent[] = [];
      const k = keyrings({ now: () => now, primaryRefreshMs: 1_000, onEvent: (e) => events.push(e) });
      await k.create("payments");
      await k.rotate("payments");
      const v1 = await k.openingKey("payments", 1);
      const v2 = await k.sealingKey("payments");
      const good = (await store.load("payments")) as KeyringState;
      const forged = new Uint8Array(32).fill(7);
      await overwrite({
        ...good,
        revision: good.revision + 1,
        versions: good.versions.map((v) => (v.version === 1 ? { ...v, material: forged } : v)),
      });

      // A fresh read (describe) meets the changed state: refused, and raised.
      const err = await k.rotate("payments").catch((e: unknown) => e);
      expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
      const message = (err as Error).message;
      expect(message).toContain('"payments"');
      expect(message).toContain("version 1");
      for (const m of [v1.material, v2.material, forged]) {
        expect(message).not.toContain(hex(m));
        expect(message).not.toContain(b64(m));
      }
      const conflicts = k.storeConflicts();
      expect(conflicts).toHaveLength(1);
      expect(conflicts[0]).toMatchObject({ keyring: "payments", kind: "material" });
      expect(JSON.stringify(conflicts)).not.toContain(b64(forged));
      expect(events.some((e) => e.type === "store_conflict" && e.kind === "material")).toBe(true);

      // The cached keys keep serving; the forged material is never handed out.
      expect(hex((await k.openingKey("payments", 1)).material)).toBe(hex(v1.material));
      expect(hex((await k.sealingKey("payments")).material)).toBe(hex(v2.material));
      // No rotation happened on top of the forged state.
      expect((await store.load("payments"))?.versions).toHaveLength(2);

      // Repaired: the store holds the true material again (a newer revision). The next re-check clears it.
      await overwrite({ ...good, revision: good.revision + 2 });
      now += 1_000;
      expect(k.storeConflicts()).toHaveLength(1);
      await vi.waitFor(() => expect(k.storeConflicts()).toEqual([]));
      expect(events.some((e) => e.type === "store_conflict_cleared")).toBe(true);
      expect((await k.rotate("payments")).primary).toBe(3);
    });

    it("refuses to write on an older revision put back (a restored backup): raised, nothing written, cleared once repaired", async () => {
      let now = 1_800_000_000_000;
      const events: KeyEvent[] = [];
      const k = keyrings({ now: () => now, primaryRefreshMs: 1_000, onEvent: (e) => events.push(e) });
      await k.create("payments");
      const backup = (await store.load("payments")) as KeyringState;
      await k.rotate("payments");
      const v2 = await k.sealingKey("payments");
      const latest = (await store.load("payments")) as KeyringState;
      expect(latest.revision).toBeGreaterThan(backup.revision);
      // The operator restores last week's backup: the directory holds revision 1 (version 1 only) again.
      for (const file of keyringRevisionFiles(dir, "payments")) await unlink(file);
      await overwrite(backup);

      // A rotation must not build a new version 2 on the old state: values are sealed under the real one.
      const err = await k.rotate("payments").catch((e: unknown) => e);
      expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
      expect((err as Error).message).toContain(`revision ${backup.revision}`);
      expect(await store.load("payments")).toMatchObject({ revision: backup.revision, primary: 1 });
      // Nor may a seal-block reservation write on it (it would fork the revision numbers).
      for (let i = 0; i < 3; i++) {
        const sealed = await k.sealingKey("payments", 65_536).catch((e: unknown) => e);
        if (isFieldsealError(sealed)) expect(sealed.code).toBe("key_store_conflict");
        else expect(hex((sealed as { material: Uint8Array }).material)).toBe(hex(v2.material));
      }
      expect(await store.load("payments")).toMatchObject({ revision: backup.revision, primary: 1 });
      expect(k.storeConflicts()).toEqual([expect.objectContaining({ keyring: "payments", kind: "store" })]);
      expect(events.some((e) => e.type === "store_conflict")).toBe(true);
      // Cached keys keep serving.
      expect(hex((await k.openingKey("payments", 2)).material)).toBe(hex(v2.material));
      // A re-check that reads the old revision again does not clear it.
      now += 1_000;
      k.storeConflicts();
      await k.describe("payments").catch(() => {});
      expect(k.storeConflicts()).toHaveLength(1);

      // Repaired: the newest revision is back. The next re-check clears the report; rotation works again.
      await overwrite(latest);
      now += 1_000;
      await vi.waitFor(() => expect(k.storeConflicts()).toEqual([]));
      const rotated = await k.rotate("payments");
      expect(rotated.primary).toBe(3);
      expect(hex((await k.openingKey("payments", 2)).material)).toBe(hex(v2.material));
    });

    it("never creates a new version 1 over a keyring whose files vanished while cached (ensure, create)", async () => {
      const k = keyrings();
      await k.create("payments");
      const v1 = await k.sealingKey("payments");
      for (const file of keyringRevisionFiles(dir, "payments")) await unlink(file);
      await expect(k.ensure("payments")).rejects.toMatchObject({ code: "key_store_conflict" });
      await expect(k.create("payments")).rejects.toMatchObject({ code: "key_store_conflict" });
      expect(keyringRevisionFiles(dir, "payments")).toEqual([]);
      expect(k.storeConflicts()).toEqual([expect.objectContaining({ keyring: "payments", kind: "store" })]);
      expect(hex((await k.openingKey("payments", 1)).material)).toBe(hex(v1.material));
    });

    it.each([
      {
        what: "lowers the minimum decryption version (un-retires version 1)",
        edit: (s: KeyringState) => ({ ...s, minDecryptVersion: 1 }),
      },
      {
        what: "moves the primary back to version 2",
        edit: (s: KeyringState) => ({ ...s, primary: 2 }),
      },
      {
        what: "lowers the primary's reserved seal count (the nonce budget)",
        edit: (s: KeyringState) => ({
          ...s,
          versions: s.versions.map((v) => (v.version === s.primary ? { ...v, sealsReserved: 0 } : v)),
        }),
      },
    ])("refuses a newer stored state that $what: raised, cached policy kept", async ({ edit }) => {
      let now = 1_800_000_000_000;
      const k = keyrings({ now: () => now, primaryRefreshMs: 1_000 });
      await k.create("payments");
      await k.rotate("payments");
      await k.rotate("payments");
      await k.retire("payments", 2);
      const sealing = await k.sealingKey("payments");
      const good = (await store.load("payments")) as KeyringState;
      expect(good.versions.find((v) => v.version === 3)?.sealsReserved).toBeGreaterThan(0);
      await overwrite({ ...edit(good), revision: good.revision + 1 });

      const err = await k.describe("payments").catch((e: unknown) => e);
      expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
      expect(k.storeConflicts()).toEqual([expect.objectContaining({ keyring: "payments" })]);
      // The cached policy keeps holding: version 1 stays retired, sealing stays on version 3.
      await expect(k.openingKey("payments", 1)).rejects.toMatchObject({ code: "key_version_retired" });
      expect((await k.sealingKey("payments")).version).toBe(sealing.version);
      await expect(k.rotate("payments")).rejects.toMatchObject({ code: "key_store_conflict" });

      // Repaired by a newer revision that keeps the rules: cleared.
      await overwrite({ ...good, revision: good.revision + 2 });
      now += 1_000;
      k.storeConflicts();
      await vi.waitFor(() => expect(k.storeConflicts()).toEqual([]));
    });

    it.each([
      {
        what: "a tombstone covering the primary",
        edit: (raw: Record<string, unknown>) => ({
          ...raw,
          primary: 3,
          destroyed: [{ through: 3, at: new Date(0).toISOString() }],
        }),
      },
      {
        what: "a gap in the versions (version 4 missing)",
        edit: (raw: Record<string, unknown>) => ({
          ...raw,
          versions: (raw.versions as Array<{ version: number }>).filter((v) => v.version !== 4),
        }),
      },
    ])(
      "raises a stored format-2 keyring with $what as a store conflict, keeps serving, recovers when repaired",
      async ({ edit }) => {
        let now = 1_800_000_000_000;
        const events: KeyEvent[] = [];
        const k = keyrings({ now: () => now, primaryRefreshMs: 1_000, onEvent: (e) => events.push(e) });
        await k.create("payments");
        for (let i = 0; i < 4; i++) await k.rotate("payments");
        await k.retire("payments", 3);
        const good = await k.destroy("payments", 3);
        const v3 = await k.openingKey("payments", 3);
        const sealing = await k.sealingKey("payments");
        const current = (await store.load("payments")) as KeyringState;
        const raw = JSON.parse(encodeKeyring(current)) as Record<string, unknown>;
        const bad = { ...edit(raw), revision: current.revision + 1 };
        await writeKeyringRevision(dir, { ...current, revision: current.revision + 1 }, JSON.stringify(bad));

        const err = await k.describe("payments").catch((e: unknown) => e);
        expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
        expect((err as Error).message).toContain('"payments"');
        expect((err as Error).message).not.toContain(b64(v3.material));
        expect(k.storeConflicts()).toEqual([expect.objectContaining({ keyring: "payments", kind: "store" })]);
        expect(events.some((e) => e.type === "store_conflict" && e.kind === "store")).toBe(true);
        await expect(k.rotate("payments")).rejects.toMatchObject({ code: "key_store_conflict" });
        // Cached keys keep serving.
        expect(hex((await k.openingKey("payments", 3)).material)).toBe(hex(v3.material));
        expect((await k.sealingKey("payments")).version).toBe(sealing.version);
        await expect(k.openingKey("payments", 1)).rejects.toMatchObject({ code: "key_version_destroyed" });

        await overwrite({ ...current, revision: current.revision + 2 });
        now += 1_000;
        k.storeConflicts();
        await vi.waitFor(() => expect(k.storeConflicts()).toEqual([]));
        expect((await k.describe("payments")).primary).toBe(good.primary);
      },
    );

    it("refuses a state that brings back the material of a destroyed version, or drops a live one", async () => {
      const k = keyrings();
      await k.create("payments");
      for (let i = 0; i < 3; i++) await k.rotate("payments");
      const v1 = await k.openingKey("payments", 1);
      const before = (await store.load("payments")) as KeyringState;
      await k.retire("payments", 3);
      const after = await k.destroy("payments", 3);
      // Resurrected: v1 and v2 with material again, at a newer revision.
      await overwrite({ ...before, revision: after.revision + 1, minDecryptVersion: 3 });
      await expect(k.describe("payments")).rejects.toMatchObject({ code: "key_store_conflict" });
      await expect(k.openingKey("payments", 1)).rejects.toMatchObject({ code: "key_version_destroyed" });
      // Dropped: a newer revision without version 4.
      await overwrite({
        ...after,
        revision: after.revision + 2,
        primary: 3,
        versions: after.versions.filter((v) => v.version < 4),
      });
      await expect(k.describe("payments")).rejects.toMatchObject({ code: "key_store_conflict" });
      expect(hex(v1.material)).toHaveLength(64);
    });
  });

  describe("destroying retired versions", () => {
    it("removes the material of versions below the minimum, keeps tombstones, answers key_version_destroyed", async () => {
      const events: KeyEvent[] = [];
      const k = keyrings({ onEvent: (e) => events.push(e) });
      await k.create("payments");
      const materials = [(await k.openingKey("payments", 1)).material];
      for (let i = 0; i < 4; i++) {
        await k.rotate("payments");
        materials.push((await k.sealingKey("payments")).material);
      }
      await expect(k.destroy("payments", 3)).rejects.toMatchObject({ code: "failed_precondition" });
      await k.retire("payments", 3);
      const state = await k.destroy("payments", 3);
      expect(state.destroyed).toEqual([{ from: 1, through: 2, destroyedAt: expect.any(String) }]);
      expect(state.versions.map((v) => v.version)).toEqual([3, 4, 5]);
      expect(events).toContainEqual({ type: "destroyed", keyring: "payments", from: 1, through: 2 });

      for (const reader of [k, keyrings()]) {
        for (const version of [1, 2]) {
          const err = await reader.openingKey("payments", version).catch((e: unknown) => e);
          expect(isFieldsealError(err, "key_version_destroyed")).toBe(true);
          expect((err as Error).message).toContain(`version ${version} was destroyed`);
        }
        expect(hex((await reader.openingKey("payments", 3)).material)).toBe(hex(materials[2] as Uint8Array));
        await expect(reader.openingKey("payments", 6)).rejects.toMatchObject({
          code: "key_version_not_found",
        });
      }
      // The stored text no longer holds the destroyed material, and no older revision file keeps it.
      const text = await readFile(currentKeyringFile(dir, "payments"), "utf8");
      expect(text).toContain('"format":"fieldseal-keyring/2"');
      for (const m of materials.slice(0, 2)) expect(text).not.toContain(b64(m as Uint8Array));
      for (const m of materials.slice(2)) expect(text).toContain(b64(m as Uint8Array));
      for (const file of keyringRevisionFiles(dir, "payments")) {
        const old = await readFile(file, "utf8");
        for (const m of materials.slice(0, 2)) expect(old).not.toContain(b64(m as Uint8Array));
      }

      // Again: nothing left to destroy, nothing written. Further destroys add a tombstone range.
      expect((await k.destroy("payments", 3)).revision).toBe(state.revision);
      await k.rotate("payments");
      await k.retire("payments", 5);
      const later = await k.destroy("payments", 5);
      expect(later.destroyed?.map((r) => [r.from, r.through])).toEqual([
        [1, 2],
        [3, 4],
      ]);
      await expect(k.openingKey("payments", 4)).rejects.toMatchObject({ code: "key_version_destroyed" });
      expect((await k.sealingKey("payments")).version).toBe(6);
      expect((await k.rotate("payments")).primary).toBe(7);
    });

    it("is the one change of material the local store accepts: it refuses destroying an unretired version", async () => {
      const k = keyrings();
      await k.create("payments");
      await k.rotate("payments");
      const state = (await store.load("payments")) as KeyringState;
      // Version 1 is not retired (the minimum is 1): dropping its material is refused, nothing is written.
      const illegal: KeyringState = {
        ...state,
        revision: state.revision + 1,
        destroyed: [{ from: 1, through: 1, destroyedAt: new Date().toISOString() }],
        versions: state.versions.filter((v) => v.version > 1),
      };
      await expect(store.compareAndSwap(state.revision, illegal)).rejects.toThrow(
        /refusing to write keyring "payments"/,
      );
      expect((await store.load("payments"))?.revision).toBe(state.revision);
      const legal: KeyringState = { ...illegal, minDecryptVersion: 2 };
      expect((await store.compareAndSwap(state.revision, legal)).ok).toBe(true);
    });

    it("lets exactly one of several concurrent destroys write, and loses no live version", async () => {
      const k = keyrings();
      await k.create("payments");
      for (let i = 0; i < 5; i++) await k.rotate("payments");
      await k.retire("payments", 4);
      const others = [keyrings(), keyrings(), keyrings()];
      const results = await Promise.all([
        ...others.map((o) => o.destroy("payments", 4)),
        k.rotate("payments"),
      ]);
      const final = (await store.load("payments")) as KeyringState;
      expect(final.destroyed).toHaveLength(1);
      expect(final.destroyed?.[0]).toMatchObject({ from: 1, through: 3 });
      expect(final.versions.map((v) => v.version)).toEqual([4, 5, 6, 7]);
      expect(results).toHaveLength(4);
    });
  });
});
