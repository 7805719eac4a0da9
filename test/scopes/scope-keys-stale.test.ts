import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ScopeKeys } from "../../src/scopes/scope-keys.js";
import { SqliteScopeKeyStore } from "../../src/scopes/sqlite-store.js";
import type { ScopeKeyRecord, ScopeKeyStore } from "../../src/scopes/types.js";

// A replica whose database read answered before a forget but whose process then stalled (SIGSTOP, a long
// GC pause, a blocked event loop) past the cache bound must not use what it read: the forget has answered
// by then, and the key may be gone.

const material = new Uint8Array(randomBytes(32));
const wrapping = { openingKey: async (keyring: string, version: number) => ({ keyring, version, material }) };
const primary = { keyring: "crm", version: 1, material };
const scope = { kind: "user", id: "u42" } as const;
const TTL = 1_000;

/** The real SQLite store, with a hook that runs after each read has answered (the stall). */
class StallingStore implements ScopeKeyStore {
  readonly kind = "sqlite";
  afterGet: (() => Promise<void>) | undefined;
  constructor(readonly inner: SqliteScopeKeyStore) {}
  async get(keyring: string, s: string): Promise<ScopeKeyRecord | undefined> {
    const record = await this.inner.get(keyring, s);
    const hook = this.afterGet;
    this.afterGet = undefined;
    await hook?.();
    return record;
  }
  createKey = (next: Parameters<ScopeKeyStore["createKey"]>[0]) => this.inner.createKey(next);
  rewrapKey = (...a: Parameters<ScopeKeyStore["rewrapKey"]>) => this.inner.rewrapKey(...a);
  liveKeysWrappedBelow = (k: string, v: number) => this.inner.liveKeysWrappedBelow(k, v);
  forget = (...a: Parameters<ScopeKeyStore["forget"]>) => this.inner.forget(...a);
  close = () => this.inner.close();
}

describe("a replica stalled past the cache bound after reading a scope key", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function pair(reuseAfterForget: boolean) {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-stale-"));
    dirs.push(d);
    const file = join(d, "scopes.db");
    let clock = 0;
    const opts = {
      erasable: new Map([["crm", { reuseAfterForget }]]),
      cacheTtlMs: TTL,
      cacheEntries: 10,
    };
    // The forgetting replica waits out the bound on the shared clock.
    const a = new ScopeKeys(new SqliteScopeKeyStore(file), wrapping, {
      ...opts,
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    const stalling = new StallingStore(new SqliteScopeKeyStore(file));
    const b = new ScopeKeys(stalling, wrapping, { ...opts, now: () => clock, wallNow: () => clock });
    const original = await a.sealingKey(primary, scope);
    // While b's read is in flight: a forgets (and answers after the bound), then b wakes up.
    stalling.afterGet = async () => {
      await a.forget("crm", scope);
      clock += 10;
    };
    return { a, b, original };
  }

  it("does not open with the key it read before the forget", async () => {
    const { a, b } = await pair(false);
    await expect(b.openingKey(primary, scope, 1)).rejects.toMatchObject({ code: "scope_forgotten" });
    await a.close();
    await b.close();
  });

  it("does not seal with the key it read before the forget (the value would be lost)", async () => {
    const { a, b } = await pair(false);
    await expect(b.sealingKey(primary, scope)).rejects.toMatchObject({ code: "scope_forgotten" });
    await a.close();
    await b.close();
  });

  it("seals under the new generation when the keyring allows reuse", async () => {
    const { a, b, original } = await pair(true);
    const key = await b.sealingKey(primary, scope);
    expect(key.generation).toBe(2);
    expect(Buffer.from(key.material).equals(Buffer.from(original.material))).toBe(false);
    await a.close();
    await b.close();
  });

  it("does not use a key cached before the machine was suspended past the bound (monotonic clock stood still)", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-stale-"));
    dirs.push(d);
    const file = join(d, "scopes.db");
    const opts = {
      erasable: new Map([["crm", { reuseAfterForget: false }]]),
      cacheTtlMs: TTL,
      cacheEntries: 10,
    };
    const a = new ScopeKeys(new SqliteScopeKeyStore(file), wrapping, { ...opts, sleep: async () => {} });
    let wall = 1_000_000;
    let reads = 0;
    const counting = new StallingStore(new SqliteScopeKeyStore(file));
    const get = counting.get.bind(counting);
    counting.get = (k, s) => {
      reads++;
      return get(k, s);
    };
    // The monotonic clock never moves (suspended machine); only the wall clock does.
    const b = new ScopeKeys(counting, wrapping, { ...opts, now: () => 0, wallNow: () => wall });
    await b.sealingKey(primary, scope);
    await b.openingKey(primary, scope, 1);
    expect(reads).toBe(1);
    // A wall clock set back is not trusted either: read again (and still live).
    wall -= 5_000;
    await b.openingKey(primary, scope, 1);
    expect(reads).toBe(2);
    await a.forget("crm", scope);
    wall += TTL + 1;
    await expect(b.openingKey(primary, scope, 1)).rejects.toMatchObject({ code: "scope_forgotten" });
    await expect(b.sealingKey(primary, scope)).rejects.toMatchObject({ code: "scope_forgotten" });
    await a.close();
    await b.close();
  });

  it("answers store_unavailable naming the bound when every read is slower than it", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-stale-"));
    dirs.push(d);
    let clock = 0;
    const inner = new SqliteScopeKeyStore(join(d, "scopes.db"));
    const slow = new StallingStore(inner);
    const keys = new ScopeKeys(slow, wrapping, {
      erasable: new Map([["crm", { reuseAfterForget: false }]]),
      cacheTtlMs: TTL,
      cacheEntries: 10,
      now: () => clock,
      wallNow: () => clock,
    });
    await keys.sealingKey(primary, scope);
    keys.clear();
    const get = slow.get.bind(slow);
    slow.get = async (k, s) => {
      slow.afterGet = async () => {
        clock += TTL + 1;
      };
      return get(k, s);
    };
    const err = await keys.openingKey(primary, scope, 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "store_unavailable" });
    expect(String((err as Error).message)).toContain("FIELDSEAL_SCOPE_KEY_TTL_MS");
    await keys.close();
  });
});
