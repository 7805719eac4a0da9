/**
 * The contract every KeyStore passes. A store's test file calls `keyStoreContract("label", makeStore)`;
 * `makeStore` returns a fresh, empty store and a cleanup that removes whatever it created.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FieldsealError } from "../../src/errors.js";
import type { KeyringState, KeyStore, KeyVersion } from "../../src/keys/types.js";

/** A valid keyring state with `count` versions; `material(v)` gives version v's bytes (random by default). */
export function keyringState(
  name: string,
  revision: number,
  count: number,
  material: (version: number) => Uint8Array = () => new Uint8Array(randomBytes(32)),
): KeyringState {
  const versions: KeyVersion[] = [];
  for (let v = 1; v <= count; v++) {
    versions.push({
      version: v,
      material: material(v),
      createdAt: new Date(1_700_000_000_000 + v).toISOString(),
      sealsReserved: 0,
    });
  }
  return { name, revision, primary: count, minDecryptVersion: 1, versions };
}

/** The same keyring with one more version as primary and the revision advanced. */
export function withNewVersion(state: KeyringState): KeyringState {
  const version = state.versions.length + 1;
  return {
    ...state,
    revision: state.revision + 1,
    primary: version,
    versions: [
      ...state.versions,
      {
        version,
        material: new Uint8Array(randomBytes(32)),
        createdAt: new Date().toISOString(),
        sealsReserved: 0,
      },
    ],
  };
}

export function keyStoreContract(
  label: string,
  makeStore: () => Promise<{ store: KeyStore; cleanup: () => Promise<void> }>,
): void {
  describe(`KeyStore contract: ${label}`, () => {
    let store: KeyStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it("loads a missing keyring as undefined", async () => {
      expect(await store.load("absent")).toBeUndefined();
    });

    it("creates a keyring with expected revision 0 and loads it back", async () => {
      const state = keyringState("payments", 1, 1);
      const result = await store.compareAndSwap(0, state);
      expect(result.ok).toBe(true);
      expect(await store.load("payments")).toEqual(state);
    });

    it("refuses to create a keyring that already exists and returns the current state", async () => {
      const first = keyringState("payments", 1, 1);
      await store.compareAndSwap(0, first);
      const result = await store.compareAndSwap(0, keyringState("payments", 1, 1));
      expect(result).toEqual({ ok: false, current: first });
    });

    it("refuses a stale revision and returns the current state", async () => {
      const v1 = keyringState("payments", 1, 1);
      await store.compareAndSwap(0, v1);
      const v2 = withNewVersion(v1);
      expect((await store.compareAndSwap(1, v2)).ok).toBe(true);
      const stale = await store.compareAndSwap(1, withNewVersion(v1));
      expect(stale).toEqual({ ok: false, current: v2 });
      expect(await store.load("payments")).toEqual(v2);
    });

    it("refuses and raises a write that would change an existing version's material", async () => {
      const v2 = keyringState("immutable", 1, 2);
      await store.compareAndSwap(0, v2);
      const replaced = new Uint8Array(randomBytes(32));
      const next = withNewVersion(v2);
      const changed: KeyringState = {
        ...next,
        versions: next.versions.map((v) => (v.version === 2 ? { ...v, material: replaced } : v)),
      };
      const err = await store.compareAndSwap(1, changed).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FieldsealError);
      expect((err as Error).message).toContain("version 2");
      // The message names versions, never material.
      expect((err as Error).message).not.toContain(Buffer.from(replaced).toString("base64"));
      const dropped: KeyringState = { ...next, primary: 1, versions: next.versions.slice(0, 1) };
      await expect(store.compareAndSwap(1, dropped)).rejects.toBeInstanceOf(FieldsealError);
      expect(await store.load("immutable")).toEqual(v2);
    });

    it("reports a missing keyring as current when a write expects one to exist", async () => {
      const result = await store.compareAndSwap(1, withNewVersion(keyringState("ghost", 1, 1)));
      expect(result).toEqual({ ok: false, current: undefined });
    });

    it("lets exactly one of many racing creators win", async () => {
      const candidates = Array.from({ length: 12 }, () => keyringState("race-create", 1, 1));
      const results = await Promise.all(candidates.map((c) => store.compareAndSwap(0, c)));
      const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(await store.load("race-create")).toEqual(candidates[winners[0] as number]);
    });

    it("lets exactly one of many racing writers of the same revision win", async () => {
      const base = keyringState("race-write", 1, 1);
      await store.compareAndSwap(0, base);
      const candidates = Array.from({ length: 12 }, () => withNewVersion(base));
      const results = await Promise.all(candidates.map((c) => store.compareAndSwap(1, c)));
      const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
      expect(winners).toHaveLength(1);
      const stored = await store.load("race-write");
      expect(stored).toEqual(candidates[winners[0] as number]);
      for (const r of results) if (!r.ok) expect(r.current).toEqual(stored);
    });

    it("lists keyring names sorted", async () => {
      for (const name of ["zeta", "alpha", "m-1", "m_0", "0day"]) {
        await store.compareAndSwap(0, keyringState(name, 1, 1));
      }
      expect(await store.list()).toEqual(["0day", "alpha", "m-1", "m_0", "zeta"]);
    });

    it("round-trips key material byte for byte, including bytes that are not valid UTF-8", async () => {
      const awkward = (v: number) =>
        Uint8Array.from(
          { length: 32 },
          (_, i) => [0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x00, 0xf8][(i + v) % 8] ?? 0,
        );
      const state = keyringState("bytes", 1, 3, awkward);
      await store.compareAndSwap(0, state);
      const loaded = await store.load("bytes");
      expect(loaded?.versions.map((v) => Buffer.from(v.material).toString("hex"))).toEqual(
        state.versions.map((v) => Buffer.from(v.material).toString("hex")),
      );
    });

    it("keeps 150 versions, legacy labels and counters intact", async () => {
      const base = keyringState("many", 1, 150);
      const state: KeyringState = {
        ...base,
        primary: 149,
        minDecryptVersion: 7,
        versions: base.versions.map((v) =>
          v.version === 1 ? { ...v, legacyLabel: "v1", sealsReserved: 131_072 } : v,
        ),
      };
      await store.compareAndSwap(0, state);
      expect(await store.load("many")).toEqual(state);
    });

    it("closes", async () => {
      await expect(store.close()).resolves.toBeUndefined();
    });
  });
}
