import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Scope } from "../engine/aad.js";
import {
  deriveValueKey,
  type ScopedKey,
  scopedKey,
  scopeName,
  unwrapDataKey,
  wrapDataKey,
} from "../engine/scoped.js";
import type { EngineKey } from "../engine/seal.js";
import { FieldsealError } from "../errors.js";
import type { LiveScopeKey, ScopeKeyRecord, ScopeKeyStore } from "./types.js";

/** How one erasable keyring treats a forgotten scope. */
export interface ErasablePolicy {
  /** True: a forgotten scope may seal again, under a new data key (generation + 1). False: scope_forgotten. */
  readonly reuseAfterForget: boolean;
}

export interface ScopeKeysOptions {
  /** Erasable keyrings by name. Only these seal scope-keyed values; any keyring's such values open. */
  readonly erasable: ReadonlyMap<string, ErasablePolicy>;
  /**
   * How long a scope's record read from the database is trusted before it is read again: the bound on how
   * long another replica can go on sealing or opening with a data key after a forget. 0: read every time.
   */
  readonly cacheTtlMs: number;
  /** Most scopes whose keys are held at once (least recently used ones go first). */
  readonly cacheEntries: number;
  /** Monotonic milliseconds; for tests. */
  readonly now?: () => number;
  /** Wall-clock milliseconds (Date.now); for tests. */
  readonly wallNow?: () => number;
  /** Waits `ms`; for tests. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Key versions, to wrap and unwrap data keys; `Keyrings` is the implementation. */
export interface WrappingKeys {
  /** `wrapping: true`: a retired version still unwraps (see Keyrings.openingKey); a destroyed one does not. */
  openingKey(keyring: string, version: number, opts?: { wrapping?: boolean }): Promise<EngineKey>;
}

interface Entry {
  /** undefined: the scope has no record (never sealed, never forgotten). Re-wrapping replaces it. */
  record: ScopeKeyRecord | undefined;
  /** The unwrapped data key of a live record; zeroised and unset when the entry is dropped. */
  dataKey: Uint8Array | undefined;
  /** Value keys derived from the data key, by keyring version. */
  readonly derived: Map<number, ScopedKey>;
  /** Monotonic time until which the record may be used without reading the database again. */
  readonly validUntil: number;
  /**
   * The same bound on the wall clock, from the wall-clock time the read began. The monotonic clock stops
   * while the machine is suspended (a paused VM, a laptop asleep); the wall clock does not, so a replica
   * resumed after a suspend longer than the bound does not use what it read before it.
   */
  readonly wallFrom: number;
  /** The cache's insertion count when the entry was last put at the young end (see #hit). */
  placed: number;
}

const MAX_ATTEMPTS = 8;
/** Reads in a row that reached this process only after the bound, before giving up (see #fresh). */
const MAX_STALE_READS = 3;

/**
 * Scope data keys of erasable keyrings: created on a scope's first seal (conditionally, so replicas
 * converge), cached with a bound and a time-to-live, forgotten for good by `forget`.
 *
 * The stated bound (docs/erasable-scopes.md): a record read from the database is used for at most
 * `cacheTtlMs` after the read began. `forget` drops this process's entry at once and answers only after
 * `cacheTtlMs` more, so when it answers, no replica configured with the same (or a smaller) TTL still
 * seals or opens with the forgotten data key.
 */
export class ScopeKeys {
  readonly #store: ScopeKeyStore;
  readonly #keys: WrappingKeys;
  readonly #erasable: ReadonlyMap<string, ErasablePolicy>;
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #wall: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #cache = new Map<string, Entry>();
  /** Reads under way, by scope, with the time each began. */
  readonly #reading = new Map<string, { readonly started: number; readonly entry: Promise<Entry> }>();
  /** Bumped by every local forget: a read that began before it is not cached. */
  #epoch = 0;
  /** Entries put at the young end of the cache so far. */
  #placed = 0;

  constructor(store: ScopeKeyStore, keys: WrappingKeys, options: ScopeKeysOptions) {
    this.#store = store;
    this.#keys = keys;
    this.#erasable = options.erasable;
    this.#ttl = options.cacheTtlMs;
    this.#max = Math.max(1, options.cacheEntries);
    this.#now = options.now ?? (() => performance.now());
    this.#wall = options.wallNow ?? (() => Date.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** The database's kind: `sqlite` or `dynamodb`. */
  get storeKind(): string {
    return this.#store.kind;
  }

  /** The bound a forget waits out (see the class comment). */
  get cacheTtlMs(): number {
    return this.#ttl;
  }

  /** The keyring's policy when it is erasable, else undefined. */
  policy(keyring: string): ErasablePolicy | undefined {
    return this.#erasable.get(keyring);
  }

  /**
   * The warm path of sealingKey, without a promise: the key when this process holds a valid live record
   * of the scope already wrapped under `primary`'s version (or newer), else undefined (call sealingKey).
   */
  cachedSealingKey(primary: EngineKey, scope: Scope): ScopedKey | undefined {
    const entry = this.#hit(cacheKey(primary.keyring, scopeName(scope)));
    const record = entry?.record;
    if (entry === undefined || record?.state !== "live" || record.wrapVersion < primary.version)
      return undefined;
    if (!this.#erasable.has(primary.keyring)) return undefined;
    return this.#derive(entry, primary, scope);
  }

  /** The warm path of openingKey, without a promise; undefined when it needs the database. */
  cachedOpeningKey(versionKey: EngineKey, scope: Scope, generation: number): ScopedKey | undefined {
    const entry = this.#hit(cacheKey(versionKey.keyring, scopeName(scope)));
    const record = entry?.record;
    if (entry === undefined || record?.state !== "live" || record.generation !== generation) return undefined;
    return this.#derive(entry, versionKey, scope);
  }

  /**
   * The key to seal values of `scope` with under `primary` (the keyring's sealing version). Creates the
   * scope's first data key, or its next one after a forget when the keyring allows it; otherwise a
   * forgotten scope fails with scope_forgotten.
   */
  async sealingKey(primary: EngineKey, scope: Scope): Promise<ScopedKey> {
    const policy = this.#erasable.get(primary.keyring);
    if (policy === undefined) {
      throw new FieldsealError("internal", `keyring "${primary.keyring}" is not erasable`);
    }
    const name = scopeName(scope);
    let entry = await this.#entry(primary.keyring, name, false);
    let stale = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!this.#fresh(entry)) {
        entry = await this.#reread(primary.keyring, name, ++stale);
        continue;
      }
      const record = entry.record;
      if (record?.state === "live") {
        const key = this.#derive(entry, primary, scope);
        if (key !== undefined) {
          if (record.wrapVersion < primary.version) await this.#rewrapUnder(entry, record, primary);
          // The re-wrap waited on the database: the record may have outlived the bound meanwhile.
          if (this.#fresh(entry)) return key;
          entry = await this.#reread(primary.keyring, name, ++stale);
          continue;
        }
        // Dropped (evicted or forgotten) between the read and now: read again.
        entry = await this.#entry(primary.keyring, name, true);
        continue;
      }
      if (record !== undefined && !policy.reuseAfterForget)
        throw forgotten(primary.keyring, record.generation);
      entry = await this.#create(primary, name, (record?.generation ?? 0) + 1);
    }
    throw new FieldsealError("conflict", `keyring "${primary.keyring}": could not settle a scope's data key`);
  }

  /**
   * The key that opens a value of `scope` sealed under `versionKey` with data key `generation`. A
   * generation that was forgotten fails with scope_forgotten; one the database never held for this scope
   * with envelope_tampered (the value belongs to another scope, or the database was restored).
   */
  async openingKey(versionKey: EngineKey, scope: Scope, generation: number): Promise<ScopedKey> {
    const name = scopeName(scope);
    let entry = await this.#entry(versionKey.keyring, name, false);
    let stale = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!this.#fresh(entry)) {
        entry = await this.#reread(versionKey.keyring, name, ++stale);
        continue;
      }
      // A value newer than what this process holds (someone created the generation since), or an entry
      // dropped meanwhile: read again.
      if (
        (entry.record?.generation ?? 0) < generation ||
        (entry.record?.state === "live" && entry.dataKey === undefined)
      ) {
        entry = await this.#entry(versionKey.keyring, name, true);
      }
      const record = entry.record;
      if (record?.state === "live" && record.generation === generation) {
        const key = this.#derive(entry, versionKey, scope);
        if (key !== undefined) return key;
        continue;
      }
      if (record !== undefined && record.generation >= generation)
        throw forgotten(versionKey.keyring, generation);
      // No key of this generation was ever created for this scope: the value belongs to another scope, or
      // was made up (or the database was restored from a backup older than the value).
      throw new FieldsealError(
        "envelope_tampered",
        `sealed value does not authenticate: this scope has no data key of generation ${generation} in keyring "${versionKey.keyring}" (the value belongs to another scope, or the scope key database was restored from an older backup)`,
      );
    }
    throw new FieldsealError(
      "conflict",
      `keyring "${versionKey.keyring}": could not settle a scope's data key`,
    );
  }

  /**
   * Forgets the scope's data key in the database (a tombstone), drops it from this process, and answers
   * once the cache bound has passed. `through` re-applies a recorded forget (see ScopeKeyStore.forget).
   */
  async forget(keyring: string, scope: Scope, through?: number): Promise<ScopeKeyRecord> {
    const name = scopeName(scope);
    const result = await this.#store.forget(keyring, name, new Date().toISOString(), through);
    this.#epoch++;
    this.#drop(cacheKey(keyring, name));
    if (result.state === "forgotten" && this.#ttl > 0) await this.#sleep(this.#ttl);
    return result;
  }

  /**
   * Re-wraps every live data key of `primary`'s keyring that is wrapped under an older version, under
   * `primary` (conditionally, as a seal does). After it, retiring and destroying the older versions leaves
   * no scope unopenable, and makes database backups taken before it useless (their wrappings need the
   * destroyed versions). Returns how many were re-wrapped and how many had changed meanwhile.
   */
  async rewrapAll(primary: EngineKey): Promise<{ rewrapped: number; changed: number }> {
    const counts = { rewrapped: 0, changed: 0 };
    for await (const record of this.#store.liveKeysWrappedBelow(primary.keyring, primary.version)) {
      const wrapping = await this.#keys.openingKey(record.keyring, record.wrapVersion, { wrapping: true });
      const at = { keyring: record.keyring, scope: record.scope, generation: record.generation };
      const dataKey = unwrapDataKey(
        wrapping.material,
        { ...at, version: record.wrapVersion },
        record.wrapped,
      );
      try {
        const wrapped = wrapDataKey(primary.material, { ...at, version: primary.version }, dataKey);
        const now = await this.#store.rewrapKey(record, wrapped, primary.version);
        if (
          now?.state === "live" &&
          now.wrapVersion === primary.version &&
          now.generation === record.generation
        )
          counts.rewrapped++;
        else counts.changed++;
      } finally {
        dataKey.fill(0);
      }
    }
    return counts;
  }

  /**
   * True when a live data key of `keyring` is still wrapped under a version below `version` (a scope that
   * sealed nothing since): destroying those versions would leave it unable to seal or open ever again.
   * Walks the keyring's records on DynamoDB (a Query); for key destruction, never on a request's hot path.
   */
  async wrapsBelow(keyring: string, version: number): Promise<boolean> {
    for await (const _ of this.#store.liveKeysWrappedBelow(keyring, version)) return true;
    return false;
  }

  /** Drops every cached key (zeroising data keys); the database is untouched. */
  clear(): void {
    this.#epoch++;
    for (const key of [...this.#cache.keys()]) this.#drop(key);
  }

  async close(): Promise<void> {
    this.clear();
    await this.#store.close();
  }

  /** How many scopes are cached; for metrics and tests. */
  cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * True while `entry` may still be used: its read began less than the bound ago. A read that answered
   * before a forget but reached this process only after a stall (SIGSTOP, a long pause, a database call
   * slower than the bound) may hold a key that the forget, which has answered by now, erased. With a bound
   * of 0 every call reads and a forget does not wait, so there is nothing to check.
   */
  #fresh(entry: Entry): boolean {
    return this.#ttl === 0 || this.#valid(entry);
  }

  /** A new read after a stale one; store_unavailable when the database keeps answering slower than the bound. */
  async #reread(keyring: string, scope: string, stale: number): Promise<Entry> {
    if (stale > MAX_STALE_READS) {
      throw new FieldsealError(
        "store_unavailable",
        `keyring "${keyring}": the scope key database answered slower than FIELDSEAL_SCOPE_KEY_TTL_MS (${this.#ttl} ms) ${MAX_STALE_READS} times in a row, so no key read from it may be used (raise the bound on every replica, or fix the database's latency)`,
      );
    }
    return this.#entry(keyring, scope, true);
  }

  /** The value key for `versionKey`, or undefined when the entry was dropped meanwhile. */
  #derive(entry: Entry, versionKey: EngineKey, scope: Scope): ScopedKey | undefined {
    const dataKey = entry.dataKey;
    if (dataKey === undefined || entry.record === undefined) return undefined;
    let key = entry.derived.get(versionKey.version);
    if (key === undefined) {
      key = scopedKey(
        versionKey.keyring,
        versionKey.version,
        entry.record.generation,
        scope,
        deriveValueKey(dataKey, versionKey.material),
      );
      entry.derived.set(versionKey.version, key);
    }
    return key;
  }

  /**
   * Within the bound on both clocks. A wall clock set back (NTP) gives a time before the read began: not
   * trusted either, so the entry is read again.
   */
  #valid(entry: Entry): boolean {
    if (this.#now() >= entry.validUntil) return false;
    const wall = this.#wall();
    return wall >= entry.wallFrom && wall < entry.wallFrom + this.#ttl;
  }

  /** The cached entry while valid (and now the most recently used), else undefined. */
  #hit(key: string): Entry | undefined {
    const hit = this.#cache.get(key);
    if (hit === undefined || !this.#valid(hit)) return undefined;
    // Least recently used goes first. Moving every hit to the young end costs a delete and an insert per
    // call; moving it only once it has aged into the older half keeps a scope in use from ever reaching
    // the eviction end, at a fraction of the cost.
    if (this.#placed - hit.placed > this.#max >> 1) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      hit.placed = ++this.#placed;
    }
    return hit;
  }

  /** The cached entry while valid, else a fresh read (coalesced with concurrent reads of the same scope). */
  async #entry(keyring: string, scope: string, force: boolean): Promise<Entry> {
    const key = cacheKey(keyring, scope);
    const hit = force ? undefined : this.#hit(key);
    if (hit !== undefined) return hit;
    // Join a read under way only while what it reads would still be valid: a read that began more than the
    // bound ago may have begun before a forget that has since answered.
    const reading = this.#reading.get(key);
    if (reading !== undefined && this.#now() < reading.started + this.#ttl) return reading.entry;
    const started = this.#now();
    const entry = this.#read(keyring, scope, started).finally(() => {
      if (this.#reading.get(key)?.entry === entry) this.#reading.delete(key);
    });
    this.#reading.set(key, { started, entry });
    return entry;
  }

  async #read(keyring: string, scope: string, started: number): Promise<Entry> {
    const epoch = this.#epoch;
    const wallFrom = this.#wall();
    const record = await this.#store.get(keyring, scope);
    return this.#remember(keyring, scope, record, { started, wallFrom }, epoch, undefined);
  }

  async #create(primary: EngineKey, scope: string, generation: number): Promise<Entry> {
    const dataKey = new Uint8Array(randomBytes(32));
    const ctx = { keyring: primary.keyring, version: primary.version, scope, generation };
    const wrapped = wrapDataKey(primary.material, ctx, dataKey);
    const started = this.#now();
    const wallFrom = this.#wall();
    const epoch = this.#epoch;
    const record = await this.#store.createKey({
      state: "live",
      keyring: primary.keyring,
      scope,
      generation,
      wrapped,
      wrapVersion: primary.version,
      createdAt: new Date().toISOString(),
    });
    const ours =
      record.state === "live" &&
      record.generation === generation &&
      record.wrapped.length === wrapped.length &&
      timingSafeEqual(record.wrapped, wrapped);
    if (ours) return this.#remember(primary.keyring, scope, record, { started, wallFrom }, epoch, dataKey);
    // Another replica won the race (or forgot the scope meanwhile): its record is the one.
    dataKey.fill(0);
    return this.#remember(primary.keyring, scope, record, { started, wallFrom }, epoch, undefined);
  }

  /**
   * Re-wraps a scope's data key under the keyring's newer primary, once per scope and rotation, so that
   * retiring and destroying old versions leaves the scopes in use openable (and makes old database
   * backups' wrappings useless once the old version is destroyed). Best effort: a lost race or a failed
   * write leaves the old wrapping, which still works, and is tried again on a later seal.
   */
  async #rewrapUnder(entry: Entry, record: LiveScopeKey, primary: EngineKey): Promise<void> {
    const dataKey = entry.dataKey;
    if (dataKey === undefined) return;
    const ctx = {
      keyring: record.keyring,
      version: primary.version,
      scope: record.scope,
      generation: record.generation,
    };
    try {
      const now = await this.#store.rewrapKey(
        record,
        wrapDataKey(primary.material, ctx, dataKey),
        primary.version,
      );
      if (now?.state === "live" && now.generation === record.generation) entry.record = now;
    } catch {
      // See above: the next seal tries again.
    }
  }

  /** Caches a record read (or written) from `at` on, unwrapping a live key unless `dataKey` is given. */
  async #remember(
    keyring: string,
    scope: string,
    record: ScopeKeyRecord | undefined,
    at: { readonly started: number; readonly wallFrom: number },
    epoch: number,
    dataKey: Uint8Array | undefined,
  ): Promise<Entry> {
    let key = dataKey;
    if (record?.state === "live" && key === undefined) {
      const wrapping = await this.#keys.openingKey(record.keyring, record.wrapVersion, { wrapping: true });
      key = unwrapDataKey(
        wrapping.material,
        {
          keyring: record.keyring,
          version: record.wrapVersion,
          scope: record.scope,
          generation: record.generation,
        },
        record.wrapped,
      );
    }
    const entry: Entry = {
      record,
      dataKey: key,
      derived: new Map(),
      validUntil: at.started + this.#ttl,
      wallFrom: at.wallFrom,
      placed: ++this.#placed,
    };
    // A read that began before a local forget may hold the forgotten key: it serves the call that asked
    // for it (begun before the forget) and is never cached.
    if (this.#ttl > 0 && epoch === this.#epoch) {
      const name = cacheKey(keyring, scope);
      this.#drop(name);
      this.#cache.set(name, entry);
      while (this.#cache.size > this.#max) {
        const oldest = this.#cache.keys().next().value;
        if (oldest === undefined) break;
        this.#drop(oldest);
      }
    }
    return entry;
  }

  #drop(key: string): void {
    const entry = this.#cache.get(key);
    if (entry === undefined) return;
    this.#cache.delete(key);
    const dataKey = entry.dataKey;
    entry.dataKey = undefined;
    // The data key is only ever used synchronously inside this class, so it can be cleared now. Derived
    // value keys may be in use by a seal that has them in hand; they are left to the garbage collector
    // (node:crypto keeps its own copy in a KeyObject, which cannot be cleared from JavaScript).
    dataKey?.fill(0);
  }
}

/** The cache key of a scope: `keyring NUL scope name` (the warm paths spell it out inline, alike). */
function cacheKey(keyring: string, scope: string): string {
  return `${keyring}\0${scope}`;
}

function forgotten(keyring: string, generation: number): FieldsealError {
  return new FieldsealError(
    "scope_forgotten",
    `this scope was forgotten in keyring "${keyring}"${generation > 0 ? ` (generation ${generation})` : ""}: its values can never open again`,
  );
}
