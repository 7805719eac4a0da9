import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DynamoDbScopeKeyStore } from "../../src/scopes/dynamodb-store.js";
import { ScopeKeys } from "../../src/scopes/scope-keys.js";
import { SqliteScopeKeyStore } from "../../src/scopes/sqlite-store.js";
import type { LiveScopeKey, ScopeKeyStore } from "../../src/scopes/types.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";

const live = (scope: string, generation: number, fill = 1): LiveScopeKey => ({
  state: "live",
  keyring: "crm",
  scope,
  generation,
  wrapped: new Uint8Array(60).fill(fill),
  wrapVersion: 1,
  createdAt: new Date().toISOString(),
});

/** The behaviour both databases must share (src/scopes/types.ts). */
function contract(name: string, open: () => Promise<ScopeKeyStore>, close: () => Promise<void>) {
  describe(`${name}: scope key store contract`, () => {
    let store: ScopeKeyStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store.close();
      await close();
    });

    it("creates a first key once: a second create converges on the first", async () => {
      const scope = `session:${randomUUID()}`;
      expect(await store.get("crm", scope)).toBeUndefined();
      const first = await store.createKey(live(scope, 1, 1));
      const second = await store.createKey(live(scope, 1, 2));
      expect(first).toMatchObject({ state: "live", generation: 1 });
      expect(Buffer.from((second as LiveScopeKey).wrapped)).toEqual(Buffer.alloc(60, 1));
    });

    it("converges when many creates race on one scope", async () => {
      const scope = `session:${randomUUID()}`;
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => store.createKey(live(scope, 1, i + 1))),
      );
      const winners = new Set(results.map((r) => Buffer.from((r as LiveScopeKey).wrapped).toString("hex")));
      expect(winners.size).toBe(1);
    });

    it("forgets a live key into a tombstone of its generation, and again changes nothing", async () => {
      const scope = `user:${randomUUID()}`;
      await store.createKey(live(scope, 1));
      const tomb = await store.forget("crm", scope, "2026-12-04T00:00:00.000Z");
      expect(tomb).toEqual({
        state: "forgotten",
        keyring: "crm",
        scope,
        generation: 1,
        forgottenAt: "2026-12-04T00:00:00.000Z",
      });
      expect(await store.get("crm", scope)).toEqual(tomb);
      expect(await store.forget("crm", scope, "2027-01-01T00:00:00.000Z")).toEqual(tomb);
    });

    it("writes a generation-0 tombstone for a scope that never had a key", async () => {
      const scope = `user:${randomUUID()}`;
      expect(await store.forget("crm", scope, "2026-12-04T00:00:00.000Z")).toMatchObject({
        state: "forgotten",
        generation: 0,
      });
      // A first key can no longer be written over it.
      expect(await store.createKey(live(scope, 1))).toMatchObject({ state: "forgotten", generation: 0 });
    });

    it("writes the next generation only over the tombstone of the one before", async () => {
      const scope = `session:${randomUUID()}`;
      await store.createKey(live(scope, 1));
      expect(await store.createKey(live(scope, 2))).toMatchObject({ state: "live", generation: 1 });
      await store.forget("crm", scope, "2026-12-04T00:00:00.000Z");
      expect(await store.createKey(live(scope, 3))).toMatchObject({ state: "forgotten", generation: 1 });
      expect(await store.createKey(live(scope, 2, 9))).toMatchObject({ state: "live", generation: 2 });
    });

    it("lets the tombstone win over a create racing with it", async () => {
      for (let round = 0; round < 5; round++) {
        const scope = `session:${randomUUID()}`;
        const [created, tomb] = await Promise.all([
          store.createKey(live(scope, 1)),
          store.forget("crm", scope, "2026-12-04T00:00:00.000Z"),
        ]);
        expect(tomb.state).toBe("forgotten");
        // Whichever came first, what the database holds now is the tombstone.
        expect(await store.get("crm", scope)).toMatchObject({ state: "forgotten" });
        expect(["live", "forgotten"]).toContain(created.state);
      }
    });

    it("re-applies a recorded forget only to generations it covered", async () => {
      const scope = `session:${randomUUID()}`;
      await store.createKey(live(scope, 1));
      await store.forget("crm", scope, "2026-12-04T00:00:00.000Z");
      await store.createKey(live(scope, 2));
      // A forget of generation 1 replayed: generation 2 was created after it and stays.
      expect(await store.forget("crm", scope, "2026-12-05T00:00:00.000Z", 1)).toMatchObject({
        state: "live",
        generation: 2,
      });
      expect(await store.forget("crm", scope, "2026-12-05T00:00:00.000Z", 2)).toMatchObject({
        state: "forgotten",
        generation: 2,
      });
    });

    it("re-wraps a live key only while it is the generation and wrap version read", async () => {
      const scope = `session:${randomUUID()}`;
      const first = (await store.createKey(live(scope, 1))) as LiveScopeKey;
      const rewrapped = await store.rewrapKey(first, new Uint8Array(60).fill(7), 2);
      expect(rewrapped).toMatchObject({ state: "live", generation: 1, wrapVersion: 2 });
      expect(Buffer.from((rewrapped as LiveScopeKey).wrapped)).toEqual(Buffer.alloc(60, 7));
      // A stale re-wrap (from wrap version 1) changes nothing.
      await store.rewrapKey(first, new Uint8Array(60).fill(8), 3);
      expect(await store.get("crm", scope)).toMatchObject({ wrapVersion: 2 });
      // Nor does one after a forget: the tombstone stays.
      await store.forget("crm", scope, "2026-12-04T00:00:00.000Z");
      await store.rewrapKey(rewrapped as LiveScopeKey, new Uint8Array(60).fill(9), 3);
      expect(await store.get("crm", scope)).toMatchObject({ state: "forgotten" });
    });

    it("re-applies a recorded forget to a scope it does not know as a tombstone of that generation", async () => {
      const scope = `user:${randomUUID()}`;
      expect(await store.forget("crm", scope, "2026-12-04T00:00:00.000Z", 3)).toMatchObject({
        state: "forgotten",
        generation: 3,
      });
      // A keyring that allows reuse goes on from generation 4: generation 1 to 3 are never made again.
      expect(await store.createKey(live(scope, 1))).toMatchObject({ state: "forgotten" });
      expect(await store.createKey(live(scope, 4))).toMatchObject({ state: "live", generation: 4 });
    });

    it("lists a keyring's live keys wrapped below a version, and only those", async () => {
      const keyring = `k${randomUUID().slice(0, 8)}`;
      const mk = (scope: string, wrapVersion: number) => ({ ...live(scope, 1), keyring, wrapVersion });
      await store.createKey(mk("session:a", 1));
      await store.createKey(mk("session:b", 2));
      await store.createKey(mk("session:c", 3));
      await store.createKey(mk("session:d", 1));
      await store.forget(keyring, "session:d", "2026-12-04T00:00:00.000Z");
      await store.createKey({ ...mk("session:e", 1), keyring: `${keyring}x` });
      const listed: string[] = [];
      for await (const r of store.liveKeysWrappedBelow(keyring, 3))
        listed.push(`${r.scope}@${r.wrapVersion}`);
      expect(listed.sort()).toEqual(["session:a@1", "session:b@2"]);
    });

    it("re-applies a recorded forget over an older key as a tombstone of the recorded generation", async () => {
      const scope = `user:${randomUUID()}`;
      await store.createKey(live(scope, 1));
      expect(await store.forget("crm", scope, "2026-12-04T00:00:00.000Z", 2)).toMatchObject({
        state: "forgotten",
        generation: 2,
      });
      expect(await store.createKey(live(scope, 3))).toMatchObject({ state: "live", generation: 3 });
    });

    it("keeps keyrings apart", async () => {
      const scope = `session:${randomUUID()}`;
      await store.createKey(live(scope, 1));
      await store.forget("other", scope, "2026-12-04T00:00:00.000Z");
      expect(await store.get("crm", scope)).toMatchObject({ state: "live" });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "fieldseal-scopes-"));
const dbFile = join(dir, "data", "scopes.db");
contract(
  "SQLite",
  async () => new SqliteScopeKeyStore(dbFile),
  async () => rmSync(dir, { recursive: true, force: true }),
);

const table = `scopes-${randomUUID()}`;
contract(
  "DynamoDB (moto)",
  async () => {
    const store = new DynamoDbScopeKeyStore({
      table,
      endpoint: inject("motoEndpoint"),
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
    });
    await store.createTable();
    return store;
  },
  async () => {},
);

describe("SQLite scope key file", () => {
  it("is 0600 in a 0700 directory, with its WAL and shared-memory files 0600 too", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-scopes-mode-"));
    try {
      const file = join(d, "sub", "scopes.db");
      const store = new SqliteScopeKeyStore(file);
      await store.createKey(live("session:a", 1));
      expect(statSync(join(d, "sub")).mode & 0o777).toBe(0o700);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
      await store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("leaves no wrapped key bytes in the database file or its WAL after a forget", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-scopes-shred-"));
    try {
      const file = join(d, "scopes.db");
      const store = new SqliteScopeKeyStore(file);
      const wrapped = new Uint8Array(randomBytes(60));
      await store.createKey({ ...live("user:u42", 1), wrapped });
      const before = Buffer.concat([readFileSync(file), readFileSync(`${file}-wal`)]);
      expect(before.includes(Buffer.from(wrapped))).toBe(true);
      await store.forget("crm", "user:u42", new Date().toISOString());
      const after = Buffer.concat([readFileSync(file), readFileSync(`${file}-wal`)]);
      expect(after.includes(Buffer.from(wrapped))).toBe(false);
      await store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe("SQLite scope key file with another connection reading during a forget", () => {
  it("gets the forgotten key's bytes out of the WAL once the reader is done, while the store stays open", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-scopes-walreader-"));
    try {
      const file = join(d, "scopes.db");
      const store = new SqliteScopeKeyStore(file, { busyTimeoutMs: 200 });
      const wrapped = new Uint8Array(randomBytes(60));
      await store.createKey({ ...live("user:u42", 1), wrapped });
      // Another replica on this host, in the middle of a read transaction: the checkpoint cannot complete.
      const reader = new DatabaseSync(file);
      reader.exec("BEGIN");
      reader.prepare("SELECT COUNT(*) AS n FROM scope_keys").get();
      expect(await store.forget("crm", "user:u42", new Date().toISOString())).toMatchObject({
        state: "forgotten",
      });
      const holds = () =>
        Buffer.concat([
          readFileSync(file),
          existsSync(`${file}-wal`) ? readFileSync(`${file}-wal`) : Buffer.alloc(0),
        ]).includes(Buffer.from(wrapped));
      expect(holds()).toBe(true);
      reader.exec("COMMIT");
      // Later writes alone do not clear it (the WAL restarts over its head, leaving the old frames).
      await store.createKey(live("user:other", 1));
      // Retried in the background: gone within a few seconds (bounded wait, no timing assertion).
      for (let i = 0; i < 50 && holds(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(holds()).toBe(false);
      reader.close();
      await store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe("ScopeKeys on SQLite", () => {
  const material = new Uint8Array(randomBytes(32));
  const wrapping = {
    openingKey: async (keyring: string, version: number) => ({ keyring, version, material }),
  };
  const primary = { keyring: "crm", version: 1, material };
  const scope = { kind: "user", id: "u42" } as const;

  it("gives two instances on one database the same key, and neither seals after a forget", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-scopekeys-"));
    try {
      const file = join(d, "scopes.db");
      const opts = {
        erasable: new Map([["crm", { reuseAfterForget: false }]]),
        cacheTtlMs: 200,
        cacheEntries: 10,
      };
      const a = new ScopeKeys(new SqliteScopeKeyStore(file), wrapping, opts);
      const b = new ScopeKeys(new SqliteScopeKeyStore(file), wrapping, opts);
      const [ka, kb] = await Promise.all([a.sealingKey(primary, scope), b.sealingKey(primary, scope)]);
      expect(Buffer.from(ka.material)).toEqual(Buffer.from(kb.material));
      const began = performance.now();
      await a.forget("crm", scope);
      // The forget answers only once the cache bound has passed, so b's cached key has expired.
      expect(performance.now() - began).toBeGreaterThanOrEqual(190);
      await expect(b.sealingKey(primary, scope)).rejects.toMatchObject({ code: "scope_forgotten" });
      await expect(b.openingKey(primary, scope, 1)).rejects.toMatchObject({ code: "scope_forgotten" });
      await a.close();
      await b.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("evicts the least recently used scope past the bound and still serves it after a re-read", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-scopekeys-"));
    try {
      const keys = new ScopeKeys(new SqliteScopeKeyStore(join(d, "scopes.db")), wrapping, {
        erasable: new Map([["crm", { reuseAfterForget: true }]]),
        cacheTtlMs: 60_000,
        cacheEntries: 3,
      });
      const first = await keys.sealingKey(primary, { kind: "session", id: "s0" });
      for (let i = 1; i < 10; i++) await keys.sealingKey(primary, { kind: "session", id: `s${i}` });
      expect(keys.cacheSize()).toBe(3);
      const again = await keys.openingKey(primary, { kind: "session", id: "s0" }, 1);
      expect(Buffer.from(again.material)).toEqual(Buffer.from(first.material));
      await keys.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
