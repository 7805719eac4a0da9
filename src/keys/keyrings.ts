/**
 * Keyrings: every rule about key versions lives here, over any KeyStore. Handlers call these methods and
 * translate; they never touch a store or key state themselves.
 *
 * Concurrency model. Every change is read → modify → `compareAndSwap(expectedRevision)`. A lost swap returns
 * what the store holds now, and the change is re-applied to that (a bounded number of times). Rotations that
 * replace the same primary converge: a writer that finds the primary already moved past the version it meant
 * to replace adopts the winner instead of rotating again, so N concurrent rotations of one primary make
 * exactly one new version, and since every write starts from the stored state, no version is ever lost.
 *
 * Caching. Versions are immutable, so every version ever seen stays in memory while its keyring is cached. Which version is primary, and
 * the minimum decryption version, are re-read in the background at most every `primaryRefreshMs`, triggered
 * by use (no timers). Where the store can tell its revision cheaply (the local store), sealing also checks
 * it at most every `revisionCheckMs` (250 ms) and loads on a change, so another process's rotation is in
 * force within a second. A version not yet seen causes one store load shared by every concurrent caller. When
 * the store is down, everything cached keeps working.
 *
 * Keyrings exist only when an operator created them (`create`, `ensure`, RotateKey with `create`); sealing
 * never creates one. A name that is not a keyring answers keyring_not_found, and the answer is cached for
 * `missTtlMs`. Whether a keyring may exist is decided from the store's list of keyring names (re-read at most
 * once per `missTtlMs`), plus a few direct loads per `missTtlMs` for names not on the list (a keyring just
 * created elsewhere, or a store whose listing lags), so any number of unknown names costs a bounded number
 * of store calls. At most `maxCachedKeyrings` keyrings are cached, least recently used first out.
 *
 * Immutability. A key version's material never changes once it exists. Every state taken in from the store
 * is checked against the cached one; a state that would change (or resurrect, or drop) a version's material
 * is refused, never absorbed, and so is one that lowers the minimum decryption version, moves the primary back
 * or lowers a version's reserved seal count: the cached keys keep serving, the operation that read it fails with
 * key_store_conflict, a `store_conflict` event is emitted, and `storeConflicts()` reports it (readiness)
 * until the store holds a consistent state again. The one legal change is the destruction of the material
 * of versions below the minimum decryption version (`destroy`). A store that went back behind a revision
 * already seen (a restored backup) is read without complaint but never written on: a write would give
 * version numbers already in use new material. It is refused and raised the same way.
 *
 * Nonce budget. AES-GCM with random 96-bit nonces must not seal more than 2^32 values under one key
 * (NIST SP 800-38D, 8.3); past that, the chance of a repeated nonce, which breaks confidentiality and
 * authenticity, is no longer negligible. The default budget of 2^28 seals per version keeps that chance
 * near n^2 / 2^97 = 2^-41. To count seals across replicas without a store write per seal, a process reserves
 * seals in blocks: it adds a whole block to the primary version's `sealsReserved` with a compare-and-swap
 * *before* it hands out any seal from that block, and it never hands out more than it reserved. Because the
 * swap serializes all reservations, `sealsReserved` is at least the number of seals every replica together
 * has made or ever can make under that version, including replicas that crashed with part of a block unused
 * (those seals are simply never used). A reservation that would push the total past the budget rotates the
 * key instead, so the count that matters for nonce safety can never pass the budget.
 *
 * Write budget. Every reservation is a store write, and Secrets Manager keeps every secret version younger
 * than 24 hours: more than about one write per 10 minutes, sustained, runs a secret into its version quota and
 * then every write fails (docs/keys.md, "Seal blocks and the store's write budget"). So a block is sized for
 * the seal rate this process observed: big enough to last `3 × writers × 24 h / storeWritesPerDay`, where
 * `writers` is how many writes (by every replica, rotations included: each one moves the revision) landed on
 * the keyring per write of ours. It is never smaller than `sealBlockSize`, never more than half the
 * seal budget divided by `writers` (so all replicas' blocks fit in one version together: otherwise they
 * would exhaust it, rotate, abandon each other's blocks and reserve again) and never more than the version
 * has left. Seals of a block this process does not use are lost when it stops: the count stays an upper bound.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { assertKeyringName } from "../engine/names.js";
import { FieldsealError, type FieldsealErrorCode, isFieldsealError } from "../errors.js";
import {
  destroyedRange,
  keyringStateProblem,
  latestVersion,
  liveVersion,
  policyRegressionProblem,
  versionChangeProblem,
  withNewPrimary,
  withVersionsDestroyed,
} from "./keyring-state.js";
import type { CasResult, KeyringState, KeyStore, KeyVersion } from "./types.js";

/** When the primary version must be replaced. */
export interface RotationPolicy {
  /** Rotate the primary once it is older than this. Unset: no age limit. */
  maxAgeMs?: number;
  /** Rotate the primary before its reserved seals would pass this. */
  sealBudget: number;
}

export interface KeyringsOptions {
  policy?: Partial<RotationPolicy>;
  /** How often the primary and minimum decryption version are re-read. Default 30 s. */
  primaryRefreshMs?: number;
  /**
   * For stores with a cheap revision check (the local store): how often sealing first checks whether
   * another process changed the keyring, so a rotation elsewhere is in force within this. Default 250 ms.
   */
  revisionCheckMs?: number;
  /** The smallest reservation, and the most seals one `sealingKey` call may take. Default 65,536. */
  sealBlockSize?: number;
  /** Store writes per keyring per day that reservations are sized to stay under. Default 48. */
  storeWritesPerDay?: number;
  /**
   * Create a missing keyring with version 1 on first sealing use. Default false: keyrings are created by
   * operators, and sealing under an unknown name answers keyring_not_found.
   */
  autoCreate?: boolean;
  /** How long "no such keyring" and the store's list of keyring names are trusted. Default 5 s. */
  missTtlMs?: number;
  /** Most keyrings kept in memory (least recently used out first). Default 10,000. */
  maxCachedKeyrings?: number;
  /** Clock for key ages and refresh intervals. Default Date.now. */
  now?: () => number;
  /** Observability hook; must not throw (exceptions are ignored). */
  onEvent?: (e: KeyEvent) => void;
}

export type RotationReason = "on_demand" | "age" | "usage";

export type KeyEvent =
  | { type: "cache_hit" | "cache_miss"; keyring: string }
  | {
      type: "store_call";
      op: "load" | "cas" | "list";
      /** Absent for `list`, which spans keyrings. */
      keyring?: string;
      ms: number;
      ok: boolean;
      /** On failure: the FieldsealError code the call failed with. */
      code?: FieldsealErrorCode;
    }
  | { type: "rotated"; keyring: string; version: number; reason: RotationReason }
  | { type: "created"; keyring: string }
  | { type: "destroyed"; keyring: string; from: number; through: number }
  /**
   * The store holds a state that contradicts cached keys (`material`: a version's material would change)
   * or that is refused otherwise (`store`: the store itself refused to read it, e.g. a tutorial-shaped value
   * over a Fieldseal keyring; it went back behind a revision already seen; or it lowers the minimum
   * decryption version, the primary or a seal count). `detail` names versions and rules only, never material.
   */
  | { type: "store_conflict"; keyring: string; kind: "material" | "store"; detail: string }
  /** The keyring's stored state is consistent with the cache again. */
  | { type: "store_conflict_cleared"; keyring: string }
  | { type: "seal_block_reserved"; keyring: string; version: number; count: number };

/** A key version ready for use. `material` is the cached array: read-only for every caller. */
export interface SealingKey {
  keyring: string;
  version: number;
  material: Uint8Array;
}

/**
 * What DescribeKey reports: the stored state plus the policy that applies to it, and the version this
 * process was sealing with when asked (absent if it had not loaded the keyring), which differs from the
 * stored primary only until it notices another process's rotation.
 */
export type KeyringDescription = KeyringState & {
  rotateBy?: string;
  sealBudget: number;
  sealingVersion?: number;
};

/** The default seal budget per key version: 2^28, far below the 2^32 limit for random 96-bit nonces. */
export const DEFAULT_SEAL_BUDGET = 2 ** 28;
/** The default daily write budget per keyring: a third of Secrets Manager's sustainable one per 10 minutes. */
export const DEFAULT_STORE_WRITES_PER_DAY = 48;
/**
 * A block is sized to last this many times its share of the day: a third of the budget for steady
 * reservations, the rest for start-ups, rate changes and rotations (each usage rotation also makes every
 * replica re-reserve on the new version).
 */
const WRITE_HEADROOM = 3;
/** No block is larger than this share of the seal budget, divided by the number of writers. */
const MAX_BLOCK_SHARE = 2;
const DAY_MS = 86_400_000;
/**
 * A block is at most this many times the seals actually taken since the last reservation: a rate measured
 * over a few milliseconds (a one-shot command's single seal, the first call of a burst) must not reserve
 * hours of seals that will never be used.
 */
const MAX_BLOCK_GROWTH = 64;
/** Start reserving the next block when this share of the current one is used. */
const PREFETCH_AT = 0.75;
/** Compare-and-swap attempts before an operation gives up with "conflict". */
const MAX_ATTEMPTS = 64;
/** Longest a seal waits for a revision check: a slow or hung disk must not stall sealing from the cache. */
const REVISION_CHECK_WAIT_MS = 200;

/** Least time between two store loads for versions or legacy labels a keyring's cache does not hold. */
const UNSEEN_LOAD_INTERVAL_MS = 250;

/** Direct loads of names missing from the store's keyring list, per `missTtlMs`. */
const UNLISTED_LOADS = 16;

/** A keyring whose stored state is refused, as `storeConflicts()` reports it. */
export interface StoreConflict {
  readonly keyring: string;
  readonly kind: "material" | "store";
  /** What is wrong, in versions and rules; never material. */
  readonly detail: string;
  /** When it was first seen (ISO 8601). */
  readonly since: string;
}

interface SealBlock {
  readonly version: number;
  readonly size: number;
  used: number;
}

/** The seal rate and write share this process saw up to its last reservation. */
interface Pace {
  /** Clock time of the last reservation; undefined before the first. */
  at: number | undefined;
  /** `sealsTaken` at that time. */
  taken: number;
  /** Seals per millisecond estimated then. */
  rate: number;
  /** The keyring revision that reservation wrote. */
  revision: number | undefined;
  /** Writes to the keyring per write of ours (at least 1), averaged over our recent reservations. */
  writers: number;
}

/** What this process knows about one keyring. */
interface Entry {
  readonly name: string;
  /** The newest state seen; never replaced by an older revision. */
  state: KeyringState | undefined;
  primaryCreatedMs: number;
  refreshAfter: number;
  /** When sealing next checks the store's revision (stores with `revision` only). */
  revisionCheckAfter: number;
  revisionCheck: { readonly done: Promise<void>; readonly startedMs: number } | undefined;
  /**
   * The last stored revision a revision check found refused (a conflict) or malformed: revision checks do
   * not load it again (the periodic refresh and readiness still do), so it is not re-read, re-logged and
   * re-counted before every seal. A newer revision is checked at once.
   */
  refusedRevision: number | undefined;
  ageRetryAfter: number;
  /** Seals this process reserved and is handing out. */
  block: SealBlock | undefined;
  /** The next block, reserved ahead of need. */
  pending: SealBlock | undefined;
  /** Seals this process handed out under any version, ever: the seal rate's numerator. */
  sealsTaken: number;
  /** This process's last reservation, for sizing the next one. */
  pace: Pace;
  loading: Promise<KeyringState | undefined> | undefined;
  /** When (performance.now()) a version or legacy label not cached was last loaded for; see #loadForUnseen. */
  unseenLoadAt: number;
  unseenLoad: Promise<KeyringState | undefined> | undefined;
  reserving: Promise<void> | undefined;
  creating: Promise<KeyringState> | undefined;
  /** The state this process wrote when it created the keyring, if it did. */
  createdHere: KeyringState | undefined;
  onDemand: Promise<KeyringState> | undefined;
  /** In-flight rotations, by the version they replace. */
  readonly rotations: Map<number, Promise<KeyringState>>;
}

/** All key logic: versions, primary, retirement, caching, seal budgets and rotation, over one KeyStore. */
export class Keyrings {
  readonly #store: KeyStore;
  readonly #policy: RotationPolicy;
  readonly #refreshMs: number;
  readonly #revisionCheckMs: number;
  readonly #blockSize: number;
  readonly #writesPerDay: number;
  readonly #autoCreate: boolean;
  readonly #now: () => number;
  readonly #onEvent: ((e: KeyEvent) => void) | undefined;
  readonly #missTtlMs: number;
  readonly #maxEntries: number;
  /** Cached keyrings in least-recently-used order (oldest first). */
  readonly #entries = new Map<string, Entry>();
  /** Names known not to be keyrings, until when (insertion order is expiry order). */
  readonly #misses = new Map<string, number>();
  /** Lookups of uncached names in flight, so concurrent callers share one. */
  readonly #finding = new Map<string, Promise<Entry | undefined>>();
  /** The store's keyring names as last listed, or the failure to list them, until `until`. */
  #names: {
    set: Set<string> | undefined;
    failure: unknown;
    until: number;
    loading: Promise<Set<string>> | undefined;
  } = { set: undefined, failure: undefined, until: 0, loading: undefined };
  #unlisted = { until: 0, left: UNLISTED_LOADS };
  readonly #conflicts = new Map<string, StoreConflict & { recheckAfter: number }>();
  readonly #background = new Set<Promise<unknown>>();
  #closed = false;

  /** `store` belongs to this Keyrings from now on: `close()` closes it. */
  constructor(store: KeyStore, options: KeyringsOptions = {}) {
    this.#store = store;
    this.#policy = { sealBudget: options.policy?.sealBudget ?? DEFAULT_SEAL_BUDGET };
    if (options.policy?.maxAgeMs !== undefined) this.#policy.maxAgeMs = options.policy.maxAgeMs;
    this.#refreshMs = options.primaryRefreshMs ?? 30_000;
    this.#revisionCheckMs = options.revisionCheckMs ?? 250;
    this.#blockSize = options.sealBlockSize ?? 65_536;
    this.#writesPerDay = options.storeWritesPerDay ?? DEFAULT_STORE_WRITES_PER_DAY;
    this.#autoCreate = options.autoCreate ?? false;
    this.#missTtlMs = options.missTtlMs ?? 5_000;
    this.#maxEntries = options.maxCachedKeyrings ?? 10_000;
    if (!(this.#missTtlMs >= 0)) throw new FieldsealError("invalid_argument", "missTtlMs must be >= 0");
    if (!isCount(this.#maxEntries, 1))
      throw new FieldsealError("invalid_argument", "maxCachedKeyrings must be an integer >= 1");
    this.#now = options.now ?? Date.now;
    this.#onEvent = options.onEvent;
    const { sealBudget, maxAgeMs } = this.#policy;
    if (!isCount(sealBudget, 1) || sealBudget > 2 ** 32) {
      throw new FieldsealError("invalid_argument", "policy.sealBudget must be an integer from 1 to 2^32");
    }
    if (!isCount(this.#blockSize, 1) || this.#blockSize > sealBudget) {
      throw new FieldsealError(
        "invalid_argument",
        "sealBlockSize must be an integer from 1 to policy.sealBudget",
      );
    }
    if (!isCount(this.#writesPerDay, 1) || this.#writesPerDay > DAY_MS) {
      throw new FieldsealError(
        "invalid_argument",
        "storeWritesPerDay must be an integer from 1 to 86,400,000",
      );
    }
    if (maxAgeMs !== undefined && !(maxAgeMs > 0)) {
      throw new FieldsealError("invalid_argument", "policy.maxAgeMs must be positive");
    }
    if (!(this.#refreshMs >= 0))
      throw new FieldsealError("invalid_argument", "primaryRefreshMs must be >= 0");
    if (!(this.#revisionCheckMs >= 0))
      throw new FieldsealError("invalid_argument", "revisionCheckMs must be >= 0");
  }

  /**
   * The primary version, for sealing `count` values (default 1). Served from this process's reserved block
   * without a store call while the block has room.
   */
  async sealingKey(name: string, count = 1): Promise<SealingKey> {
    assertKeyringName(name);
    if (!isCount(count, 1) || count > this.#blockSize) {
      throw new FieldsealError(
        "invalid_argument",
        `seal count must be an integer from 1 to ${this.#blockSize}`,
      );
    }
    let entry = this.#cached(name) ?? (await this.#find(name));
    if (!entry) {
      if (!this.#autoCreate) throw keyringNotFound(name);
      entry = this.#entry(name);
      await this.#create(entry);
    }
    if (entry.state && (entry.revisionCheck || this.#now() >= entry.revisionCheckAfter)) {
      await this.#checkRevision(entry);
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const key = this.#takeSeals(entry, count);
      if (key) {
        this.#emit({ type: attempt === 0 ? "cache_hit" : "cache_miss", keyring: name });
        this.#refreshIfDue(entry);
        return key;
      }
      await this.#prepareSeals(entry);
    }
    throw new FieldsealError(
      "conflict",
      `keyring "${name}": could not reserve seals after ${MAX_ATTEMPTS} attempts`,
    );
  }

  /**
   * Version `version`, for opening. Refuses retired versions (key_version_retired), unless `wrapping`: a
   * version that wraps erasable scopes' data keys keeps unwrapping them while it holds material (retiring
   * a version retires the values sealed under it, not the scope keys it wraps; destroying it destroys both).
   */
  async openingKey(name: string, version: number, opts: { wrapping?: boolean } = {}): Promise<SealingKey> {
    assertKeyringName(name);
    if (!isCount(version, 1))
      throw new FieldsealError("invalid_argument", "key version must be an integer >= 1");
    const hit = this.#cached(name);
    if (hit?.state && version <= latestVersion(hit.state)) {
      this.#emit({ type: "cache_hit", keyring: name });
      this.#refreshIfDue(hit);
      return this.#openable(hit.state, version, opts.wrapping === true);
    }
    this.#emit({ type: "cache_miss", keyring: name });
    const entry = hit ?? (await this.#findForOpening(name, `version ${version}`));
    const state =
      entry.state && version <= latestVersion(entry.state)
        ? entry.state
        : await this.#loadForUnseen(entry, `version ${version}`);
    if (version > latestVersion(state)) {
      throw new FieldsealError(
        "key_version_not_found",
        `keyring "${name}" has no version ${version} (its latest is ${latestVersion(state)})`,
      );
    }
    return this.#openable(state, version, opts.wrapping === true);
  }

  /**
   * Keys for blind indexes: the primary version, then with `allVersions` every other version that still
   * opens values (at or above the minimum decryption version), newest first. Served from the cache as
   * openingKey is; no seal is reserved, because an index is an HMAC and spends no AES-GCM nonce.
   */
  async indexingKeys(name: string, allVersions = false): Promise<SealingKey[]> {
    assertKeyringName(name);
    const hit = this.#cached(name);
    this.#emit({ type: hit ? "cache_hit" : "cache_miss", keyring: name });
    if (hit) this.#refreshIfDue(hit);
    const entry = hit ?? (await this.#findForOpening(name, "primary version"));
    const state = entry.state ?? (await this.#loadForUnseen(entry, "primary version"));
    const versions = [state.primary];
    if (allVersions) {
      for (let v = latestVersion(state); v >= state.minDecryptVersion; v--) {
        if (v !== state.primary) versions.push(v);
      }
    }
    return versions.map((v) => this.#openable(state, v));
  }

  /** The version adopted from a tutorial-shaped secret whose `version` label was `label`. */
  async openingKeyByLegacyLabel(name: string, label: string): Promise<SealingKey> {
    assertKeyringName(name);
    if (typeof label !== "string" || label.length === 0 || label.length > 256) {
      throw new FieldsealError("invalid_argument", "legacy key label must be 1 to 256 characters");
    }
    const hit = this.#cached(name);
    const cached = hit?.state?.versions.find((v) => v.legacyLabel === label);
    if (hit?.state && cached) {
      this.#emit({ type: "cache_hit", keyring: name });
      this.#refreshIfDue(hit);
      return this.#openable(hit.state, cached.version);
    }
    this.#emit({ type: "cache_miss", keyring: name });
    const what = `legacy label ${JSON.stringify(label.slice(0, 64))}`;
    const entry = hit ?? (await this.#findForOpening(name, what));
    // A keyring just found was just loaded; a cached one that lacks the label is re-read.
    const state = (hit ? undefined : entry.state) ?? (await this.#loadForUnseen(entry, what));
    const found = state.versions.find((v) => v.legacyLabel === label);
    if (!found) {
      throw new FieldsealError(
        "key_version_not_found",
        `keyring "${name}" has no version adopted from a legacy secret labelled ${JSON.stringify(label.slice(0, 64))} (or its material was destroyed)`,
      );
    }
    return this.#openable(state, found.version);
  }

  /**
   * Adds a new version and makes it primary.
   *
   * Without `expectedPrimary`: rotates the primary the store holds when the call reads it. Concurrent calls
   * in this process share one rotation; a concurrent rotation elsewhere that replaced the same primary is
   * adopted rather than repeated.
   *
   * With `expectedPrimary`: an optimistic check. If the primary is not that version when the rotation is
   * written (someone else rotated first), fails with "conflict" and changes nothing.
   */
  async rotate(
    name: string,
    opts: { expectedPrimary?: number; reason?: RotationReason } = {},
  ): Promise<KeyringState> {
    assertKeyringName(name);
    const reason = opts.reason ?? "on_demand";
    if (opts.expectedPrimary !== undefined && !isCount(opts.expectedPrimary, 1)) {
      throw new FieldsealError("invalid_argument", "expected primary must be an integer >= 1");
    }
    return this.#withEntry(name, (entry) => {
      if (opts.expectedPrimary !== undefined) {
        return this.#rotateExpected(entry, opts.expectedPrimary, reason);
      }
      entry.onDemand ??= (async () => {
        const state = await this.#loadFresh(entry);
        if (!state) throw keyringNotFound(name);
        return this.#rotateFrom(entry, state.primary, reason, state);
      })().finally(() => {
        entry.onDemand = undefined;
      });
      return entry.onDemand;
    });
  }

  /**
   * Creates keyring `name` with version 1 as primary. Fails with failed_precondition when it exists
   * already (a keyring is created once; `ensure` is the idempotent form).
   */
  async create(name: string): Promise<KeyringState> {
    assertKeyringName(name);
    return this.#withEntry(name, async (entry) => {
      if ((await this.#loadFresh(entry)) !== undefined) {
        throw new FieldsealError("failed_precondition", `keyring "${name}" already exists`);
      }
      const state = await this.#create(entry);
      if (entry.createdHere !== state) {
        // Another writer created it between our load and our write: theirs is the keyring.
        throw new FieldsealError("failed_precondition", `keyring "${name}" already exists`);
      }
      return state;
    });
  }

  /**
   * Destroys the material of every version below `below`, which must not pass the minimum decryption
   * version (retire first). Irreversible: values sealed under those versions can never be opened again,
   * and answer key_version_destroyed. Each version keeps a tombstone (its number and when it was
   * destroyed), no material. Versions already destroyed stay so; when nothing below `below` still holds
   * material, nothing is written. Resolves to the keyring as it is afterwards.
   *
   * With `retire`, a `below` above the minimum decryption version (up to the primary) first raises the
   * minimum to `below`, in the same write. That is the way out for a keyring at its store's size limit,
   * where a separate retirement (a longer number) can no longer be written.
   */
  async destroy(name: string, below: number, opts: { retire?: boolean } = {}): Promise<KeyringState> {
    assertKeyringName(name);
    if (!isCount(below, 1)) {
      throw new FieldsealError("invalid_argument", "the version to destroy below must be an integer >= 1");
    }
    return this.#withEntry(name, async (entry) => {
      let state = await this.#loadFresh(entry);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (!state) throw keyringNotFound(name);
        let base = state;
        if (below > state.minDecryptVersion) {
          if (!opts.retire) {
            throw new FieldsealError(
              "failed_precondition",
              `keyring "${name}": only retired versions can be destroyed; the minimum decryption version is ${state.minDecryptVersion}, so retire versions below ${below} first`,
            );
          }
          if (below > state.primary) {
            throw new FieldsealError(
              "failed_precondition",
              `keyring "${name}": cannot retire and destroy versions up to ${below - 1}; the primary is version ${state.primary}`,
            );
          }
          base = { ...state, minDecryptVersion: below };
        }
        const next =
          withVersionsDestroyed(base, below, this.#now()) ??
          (base === state ? undefined : { ...base, revision: state.revision + 1 });
        if (!next) return state;
        const result = await this.#cas(entry, state.revision, next);
        if (result.ok) {
          const range = next.destroyed?.[next.destroyed.length - 1];
          if (range) {
            this.#emit({ type: "destroyed", keyring: name, from: range.from, through: range.through });
          }
          return result.state;
        }
        state = result.current;
      }
      throw tooContended(name, "destroy versions");
    });
  }

  /**
   * Raises the minimum decryption version: versions below it refuse to open. It cannot pass the primary,
   * and cannot be lowered (a retired version stays retired). Setting the current minimum again is a no-op.
   */
  async retire(name: string, minDecryptVersion: number): Promise<KeyringState> {
    assertKeyringName(name);
    if (!isCount(minDecryptVersion, 1)) {
      throw new FieldsealError("invalid_argument", "minimum decryption version must be an integer >= 1");
    }
    return this.#withEntry(name, (entry) => this.#retire(entry, minDecryptVersion));
  }

  async #retire(entry: Entry, minDecryptVersion: number): Promise<KeyringState> {
    const name = entry.name;
    let state = await this.#loadFresh(entry);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!state) throw keyringNotFound(name);
      if (minDecryptVersion > state.primary) {
        throw new FieldsealError(
          "failed_precondition",
          `keyring "${name}": cannot retire versions up to ${minDecryptVersion - 1}; the primary is version ${state.primary}`,
        );
      }
      if (minDecryptVersion < state.minDecryptVersion) {
        throw new FieldsealError(
          "failed_precondition",
          `keyring "${name}": the minimum decryption version is ${state.minDecryptVersion} and cannot be lowered`,
        );
      }
      if (minDecryptVersion === state.minDecryptVersion) return state;
      const result = await this.#cas(entry, state.revision, {
        ...state,
        revision: state.revision + 1,
        minDecryptVersion,
      });
      if (result.ok) return result.state;
      state = result.current;
    }
    throw tooContended(name, "retire");
  }

  /**
   * The keyring's state, read fresh from the store (or from cache when the store is down), with the policy
   * that applies. The state includes key material: callers that report it must leave `material` out.
   */
  async describe(name: string): Promise<KeyringDescription> {
    assertKeyringName(name);
    const entry = this.#cached(name) ?? (await this.#find(name));
    if (!entry) throw keyringNotFound(name);
    const sealingVersion = entry.state?.primary;
    let state: KeyringState | undefined;
    try {
      state = await this.#loadFresh(entry);
    } catch (err) {
      if (!isFieldsealError(err, "store_unavailable") || !entry.state) throw err;
      state = entry.state;
    }
    if (!state) throw keyringNotFound(name);
    const description: KeyringDescription = { ...state, sealBudget: this.#policy.sealBudget };
    if (sealingVersion !== undefined) description.sealingVersion = sealingVersion;
    const primary = liveVersion(state, state.primary);
    if (this.#policy.maxAgeMs !== undefined && primary) {
      description.rotateBy = new Date(Date.parse(primary.createdAt) + this.#policy.maxAgeMs).toISOString();
    }
    return description;
  }

  /**
   * Each cached keyring's primary: seals reserved and the budget. Read from memory only, never the store,
   * so a metrics scrape costs nothing and works while the store is down.
   */
  primaryUsage(): Array<{ keyring: string; sealsReserved: number; sealBudget: number }> {
    const usage = [];
    for (const entry of this.#entries.values()) {
      const primary = entry.state && liveVersion(entry.state, entry.state.primary);
      if (primary === undefined) continue;
      usage.push({
        keyring: entry.name,
        sealsReserved: primary.sealsReserved,
        sealBudget: this.#policy.sealBudget,
      });
    }
    return usage;
  }

  /** The keyring, created with version 1 if it does not exist yet (start-up, configured keyrings). */
  async ensure(name: string): Promise<KeyringState> {
    assertKeyringName(name);
    return this.#withEntry(name, async (entry) => (await this.#load(entry)) ?? (await this.#create(entry)));
  }

  /**
   * Keyrings whose stored state is refused (see "Immutability" above). Non-empty means this process must not
   * report ready. Answered from memory; each call also re-checks a conflicted keyring in the background, at
   * most once per `primaryRefreshMs`, so the report clears once the store is repaired.
   */
  storeConflicts(): StoreConflict[] {
    const now = this.#now();
    const out: StoreConflict[] = [];
    for (const c of this.#conflicts.values()) {
      out.push({ keyring: c.keyring, kind: c.kind, detail: c.detail, since: c.since });
      if (now >= c.recheckAfter && !this.#closed) {
        c.recheckAfter = now + this.#refreshMs;
        this.#inBackground(this.#withEntry(c.keyring, (entry) => this.#load(entry)));
      }
    }
    return out;
  }

  /** How many keyrings are cached, and how many names are cached as "no such keyring". */
  cacheSize(): { keyrings: number; misses: number } {
    return { keyrings: this.#entries.size, misses: this.#misses.size };
  }

  /** Names of all keyrings, sorted. */
  async list(): Promise<string[]> {
    return this.#call("list", undefined, () => this.#store.list());
  }

  /** Waits for background work, then closes the store. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    await this.#store.close();
  }

  // ---- sealing -------------------------------------------------------------------------------------------

  /** The hot path: hands out seals from the reserved block, in memory, or returns undefined. */
  #takeSeals(entry: Entry, count: number): SealingKey | undefined {
    const state = entry.state;
    if (!state) return undefined;
    if (this.#ageDue(entry) && this.#now() >= entry.ageRetryAfter) return undefined;
    let block = entry.block;
    if (!block || block.version !== state.primary || block.used + count > block.size) {
      const pending = entry.pending;
      if (!pending || pending.version !== state.primary || pending.used + count > pending.size)
        return undefined;
      entry.block = block = pending;
      entry.pending = undefined;
    }
    const version = liveVersion(state, block.version);
    if (!version) return undefined;
    block.used += count;
    entry.sealsTaken += count;
    if (block.used >= block.size * PREFETCH_AT && !entry.pending) this.#inBackground(this.#reserve(entry));
    return keyFor(state.name, version);
  }

  /** The slow path: loads, creates, rotates by age or reserves seals so that `#takeSeals` can succeed. */
  async #prepareSeals(entry: Entry): Promise<void> {
    if (!entry.state) {
      if ((await this.#load(entry)) === undefined) {
        if (!this.#autoCreate) throw keyringNotFound(entry.name);
        await this.#create(entry);
      }
      return;
    }
    if (this.#ageDue(entry) && this.#now() >= entry.ageRetryAfter) {
      try {
        await this.#rotateFrom(entry, entry.state.primary, "age");
      } catch (err) {
        if (!isFieldsealError(err, "store_unavailable")) throw err;
        // Keep sealing under the current primary while the store is down; it is not yet near its budget.
        entry.ageRetryAfter = this.#now() + this.#refreshMs;
      }
      return;
    }
    await this.#reserve(entry);
  }

  /** Reserves the next block of seals on the primary, rotating first if the block would pass the budget. */
  #reserve(entry: Entry): Promise<void> {
    entry.reserving ??= this.#reserveBlock(entry).finally(() => {
      entry.reserving = undefined;
    });
    return entry.reserving;
  }

  async #reserveBlock(entry: Entry): Promise<void> {
    let state = entry.state ?? (await this.#load(entry));
    const wanted = this.#wantedBlock(entry, this.#now());
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!state) throw keyringNotFound(entry.name);
      const primary = liveVersion(state, state.primary);
      if (!primary) throw corrupt(entry.name);
      // The version's remaining budget bounds the block; if not even the smallest block fits, rotate.
      const size = Math.min(wanted, this.#policy.sealBudget - primary.sealsReserved);
      if (size < this.#blockSize) {
        state = await this.#rotateFrom(entry, primary.version, "usage");
        continue;
      }
      const reserved: KeyVersion = { ...primary, sealsReserved: primary.sealsReserved + size };
      const result = await this.#cas(entry, state.revision, {
        ...state,
        revision: state.revision + 1,
        versions: state.versions.map((v) => (v.version === primary.version ? reserved : v)),
      });
      if (result.ok) {
        entry.pending = { version: primary.version, size, used: 0 };
        const { pace } = entry;
        if (pace.revision !== undefined) {
          // Other replicas' reservations and anyone's rotations moved the revision too. Averaged, because
          // replicas' writes interleave unevenly: one interval sees two others, the next none.
          const writes = clamp(result.state.revision - pace.revision, 1, 1024);
          pace.writers = (pace.writers + writes) / 2;
        }
        pace.revision = result.state.revision;
        this.#emit({
          type: "seal_block_reserved",
          keyring: entry.name,
          version: primary.version,
          count: size,
        });
        return;
      }
      state = result.current;
    }
    throw tooContended(entry.name, "reserve seals");
  }

  /**
   * The block size that makes this process's next reservation come no sooner than its share of the daily
   * write budget allows, at the seal rate seen since its last one. Records that rate for the next call.
   */
  #wantedBlock(entry: Entry, now: number): number {
    const pace = entry.pace;
    const taken = entry.sealsTaken - pace.taken;
    if (pace.at !== undefined) {
      // A clock that did not move (or moved back) still saw those seals: count them as one millisecond's.
      const measured = taken / Math.max(now - pace.at, 1);
      // Halving at most per block: a short lull after a burst does not shrink blocks to the minimum at once.
      pace.rate = Math.max(measured, pace.rate / 2);
    }
    pace.at = now;
    pace.taken = entry.sealsTaken;
    // Sharing the budget with the keyring's other writers means spacing our own writes that much further.
    const intervalMs = (WRITE_HEADROOM * pace.writers * DAY_MS) / this.#writesPerDay;
    const evidence = Math.max(this.#blockSize, MAX_BLOCK_GROWTH * taken);
    // All replicas' blocks together must fit well inside one version: if they did not, their reservations
    // would exhaust it, rotate it, abandon each other's blocks and reserve again, a storm of writes.
    const largest = Math.max(
      this.#blockSize,
      Math.floor(this.#policy.sealBudget / (MAX_BLOCK_SHARE * pace.writers)),
    );
    return clamp(Math.ceil(pace.rate * intervalMs), this.#blockSize, Math.min(largest, evidence));
  }

  #ageDue(entry: Entry): boolean {
    const { maxAgeMs } = this.#policy;
    return maxAgeMs !== undefined && this.#now() - entry.primaryCreatedMs >= maxAgeMs;
  }

  // ---- rotation ------------------------------------------------------------------------------------------

  /** Replaces primary version `from`, or adopts the version that already replaced it. Coalesced per `from`. */
  #rotateFrom(
    entry: Entry,
    from: number,
    reason: RotationReason,
    base?: KeyringState,
  ): Promise<KeyringState> {
    const inFlight = entry.rotations.get(from);
    if (inFlight) return inFlight;
    const rotation = this.#replacePrimary(entry, from, reason, base).finally(() => {
      if (entry.rotations.get(from) === rotation) entry.rotations.delete(from);
    });
    entry.rotations.set(from, rotation);
    return rotation;
  }

  async #replacePrimary(
    entry: Entry,
    from: number,
    reason: RotationReason,
    base: KeyringState | undefined,
  ): Promise<KeyringState> {
    let state = base ?? entry.state ?? (await this.#load(entry));
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!state) throw keyringNotFound(entry.name);
      // Someone already replaced `from`: adopt their version rather than add a second one.
      if (state.primary > from) return state;
      const result = await this.#cas(entry, state.revision, withNewPrimary(state, this.#now()));
      if (result.ok) {
        this.#emit({ type: "rotated", keyring: entry.name, version: result.state.primary, reason });
        return result.state;
      }
      state = result.current;
    }
    throw tooContended(entry.name, "rotate");
  }

  async #rotateExpected(entry: Entry, expected: number, reason: RotationReason): Promise<KeyringState> {
    let state = await this.#loadFresh(entry);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!state) throw keyringNotFound(entry.name);
      if (state.primary !== expected) {
        throw new FieldsealError(
          "conflict",
          `keyring "${entry.name}": the primary is version ${state.primary}, not the expected ${expected}`,
        );
      }
      const result = await this.#cas(entry, state.revision, withNewPrimary(state, this.#now()));
      if (result.ok) {
        this.#emit({ type: "rotated", keyring: entry.name, version: result.state.primary, reason });
        return result.state;
      }
      state = result.current;
    }
    throw tooContended(entry.name, "rotate");
  }

  #create(entry: Entry): Promise<KeyringState> {
    entry.creating ??= (async () => {
      const initial = withNewPrimary(
        { name: entry.name, revision: 0, primary: 0, minDecryptVersion: 1, versions: [] },
        this.#now(),
      );
      const result = await this.#cas(entry, 0, initial);
      if (result.ok) {
        entry.createdHere = result.state;
        this.#emit({ type: "created", keyring: entry.name });
        return result.state;
      }
      // Someone else created it first; theirs is the keyring.
      if (result.current) return result.current;
      throw new FieldsealError("internal", `keyring "${entry.name}" could not be created`);
    })().finally(() => {
      entry.creating = undefined;
    });
    return entry.creating;
  }

  // ---- cache and store -----------------------------------------------------------------------------------

  /** The cached entry of an existing keyring, marked as most recently used. No store call. */
  #cached(name: string): Entry | undefined {
    const entry = this.#entries.get(name);
    if (entry?.state === undefined) return undefined;
    this.#entries.delete(name);
    this.#entries.set(name, entry);
    return entry;
  }

  /**
   * The entry of keyring `name`, loaded, or undefined when there is no such keyring. Concurrent lookups
   * of one name share one; "no such keyring" is cached for `missTtlMs`.
   */
  #find(name: string): Promise<Entry | undefined> {
    let finding = this.#finding.get(name);
    if (!finding) {
      finding = this.#lookUp(name).finally(() => this.#finding.delete(name));
      this.#finding.set(name, finding);
    }
    return finding;
  }

  async #lookUp(name: string): Promise<Entry | undefined> {
    const missUntil = this.#misses.get(name);
    if (missUntil !== undefined) {
      if (this.#now() < missUntil) return undefined;
      this.#misses.delete(name);
    }
    if (!(await this.#mayExist(name))) {
      this.#recordMiss(name);
      return undefined;
    }
    const state = await this.#withEntry(name, (entry) => this.#load(entry));
    if (state === undefined) {
      this.#recordMiss(name);
      return undefined;
    }
    return this.#entries.get(name) ?? this.#entry(name, state);
  }

  /**
   * Whether `name` may be a keyring, from the store's list of names (re-read at most once per `missTtlMs`).
   * A name not on the list may still have been created since (elsewhere, or behind a lagging listing): up
   * to UNLISTED_LOADS such names per `missTtlMs` are loaded directly, the rest answer "no". When the list
   * cannot be read, the same budget applies and past it the store counts as unavailable.
   */
  async #mayExist(name: string): Promise<boolean> {
    let names: Set<string> | undefined;
    let failure: unknown;
    try {
      names = await this.#keyringNames();
    } catch (err) {
      failure = err;
    }
    if (names?.has(name)) return true;
    const now = this.#now();
    if (now >= this.#unlisted.until) this.#unlisted = { until: now + this.#missTtlMs, left: UNLISTED_LOADS };
    if (this.#unlisted.left > 0) {
      this.#unlisted.left--;
      return true;
    }
    if (failure !== undefined) throw failure;
    return false;
  }

  #keyringNames(): Promise<Set<string>> {
    const names = this.#names;
    if (this.#now() < names.until) {
      // A failure is remembered as long as a list: a store that may not list (e.g. no ListSecrets grant)
      // costs one refused call per `missTtlMs`, not one per lookup.
      if (names.set) return Promise.resolve(names.set);
      if (names.failure !== undefined) return Promise.reject(names.failure);
    }
    names.loading ??= this.#call("list", undefined, () => this.#store.list())
      .then(
        (list) => {
          names.set = new Set(list);
          names.failure = undefined;
          return names.set;
        },
        (err: unknown) => {
          names.set = undefined;
          names.failure = err;
          throw err;
        },
      )
      .finally(() => {
        names.until = this.#now() + this.#missTtlMs;
        names.loading = undefined;
      });
    return names.loading;
  }

  #recordMiss(name: string): void {
    this.#misses.delete(name);
    this.#misses.set(name, this.#now() + this.#missTtlMs);
    // Bounded: the oldest (soonest expiring) go first; a dropped miss only costs a lookup later.
    for (const old of this.#misses.keys()) {
      if (this.#misses.size <= this.#maxEntries) break;
      this.#misses.delete(old);
    }
  }

  /**
   * Runs `work` on the entry for `name` (creating one if needed), then drops the entry again if it ended
   * up holding nothing: operations on names that are not keyrings must not grow the cache.
   */
  async #withEntry<T>(name: string, work: (entry: Entry) => Promise<T>): Promise<T> {
    const entry = this.#entries.get(name) ?? this.#entry(name);
    try {
      return await work(entry);
    } finally {
      if (entry.state === undefined && isIdle(entry) && this.#entries.get(name) === entry) {
        this.#entries.delete(name);
      }
    }
  }

  #entry(name: string, state?: KeyringState): Entry {
    let entry = this.#entries.get(name);
    if (!entry) {
      entry = {
        name,
        state: undefined,
        primaryCreatedMs: 0,
        refreshAfter: 0,
        revisionCheckAfter: 0,
        revisionCheck: undefined,
        refusedRevision: undefined,
        ageRetryAfter: 0,
        block: undefined,
        pending: undefined,
        sealsTaken: 0,
        pace: { at: undefined, taken: 0, rate: 0, revision: undefined, writers: 1 },
        loading: undefined,
        unseenLoadAt: Number.NEGATIVE_INFINITY,
        unseenLoad: undefined,
        reserving: undefined,
        creating: undefined,
        createdHere: undefined,
        onDemand: undefined,
        rotations: new Map(),
      };
      this.#entries.set(name, entry);
      if (state) this.#absorb(entry, state);
      this.#evict();
    }
    return entry;
  }

  /** Drops the least recently used idle keyrings while more than `maxCachedKeyrings` are cached. */
  #evict(): void {
    if (this.#entries.size <= this.#maxEntries) return;
    for (const [name, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries) return;
      // Seals reserved in a dropped entry's blocks are abandoned, never reused: safe, like a restart.
      if (isIdle(entry)) this.#entries.delete(name);
    }
  }

  /** Takes in a state read from or written to the store, unless a newer one is already known. */
  #absorb(entry: Entry, state: KeyringState): KeyringState {
    const known = entry.state;
    const problem = state.name === entry.name ? keyringStateProblem(state) : "it names another keyring";
    if (problem) {
      const detail = `the key store returned an invalid keyring: ${problem}`;
      this.#conflict(entry.name, "store", detail);
      throw new FieldsealError("key_store_conflict", `keyring "${entry.name}": ${detail}`);
    }
    if (known) {
      // Older states (a lagging read) must agree too: every version either holds the same material in
      // both, or is destroyed in the newer one.
      const conflict =
        state.revision >= known.revision
          ? versionChangeProblem(known, state)
          : versionChangeProblem(state, known);
      const regression =
        conflict === undefined
          ? state.revision >= known.revision
            ? policyRegressionProblem(known, state)
            : policyRegressionProblem(state, known)
          : undefined;
      if (conflict || regression) {
        this.#conflict(
          entry.name,
          conflict ? "material" : "store",
          `revision ${state.revision}: ${conflict ?? regression}`,
        );
        throw new FieldsealError(
          "key_store_conflict",
          `keyring "${entry.name}": the key store holds revision ${state.revision}, which contradicts the cached revision ${known.revision} (${conflict ?? regression}); refused, the cached keys keep serving`,
        );
      }
    }
    // An older state (a lagging read, or a restored backup) does not show that the store was repaired.
    if ((!known || state.revision >= known.revision) && this.#conflicts.delete(entry.name))
      this.#emit({ type: "store_conflict_cleared", keyring: entry.name });
    if (known && state.revision <= known.revision) return known;
    entry.state = state;
    this.#names.set?.add(entry.name);
    this.#misses.delete(entry.name);
    if (known?.primary !== state.primary) {
      const primary = liveVersion(state, state.primary);
      entry.primaryCreatedMs = primary ? Date.parse(primary.createdAt) : 0;
      entry.ageRetryAfter = 0;
      // Seals reserved under a replaced primary are abandoned, never used: sealing follows the primary.
      if (entry.block && entry.block.version !== state.primary) entry.block = undefined;
      if (entry.pending && entry.pending.version !== state.primary) entry.pending = undefined;
    }
    return state;
  }

  /** One store load shared by all concurrent callers. Resolves to the newest state known afterwards. */
  #load(entry: Entry): Promise<KeyringState | undefined> {
    entry.loading ??= this.#loadFresh(entry).finally(() => {
      entry.loading = undefined;
    });
    return entry.loading;
  }

  /** A store load of its own, for operations that must not act on a read that began before they did. */
  async #loadFresh(entry: Entry): Promise<KeyringState | undefined> {
    const state = await this.#call("load", entry.name, () => this.#store.load(entry.name));
    entry.refreshAfter = this.#now() + this.#refreshMs;
    // A load is a revision check too.
    entry.revisionCheckAfter = this.#now() + this.#revisionCheckMs;
    return state ? this.#absorb(entry, state) : undefined;
  }

  /** The loaded entry of keyring `name`, for opening: keyring_not_found, or store_unavailable saying so. */
  async #findForOpening(name: string, what: string): Promise<Entry> {
    let entry: Entry | undefined;
    try {
      entry = await this.#find(name);
    } catch (err) {
      throw this.#unavailableForOpening(name, what, err);
    }
    if (!entry) throw keyringNotFound(name);
    return entry;
  }

  #unavailableForOpening(name: string, what: string, err: unknown): unknown {
    if (!isFieldsealError(err, "store_unavailable")) return err;
    return new FieldsealError(
      "store_unavailable",
      `keyring "${name}" ${what} is not cached and the key store (${this.#store.kind}) is unavailable`,
      { cause: err },
    );
  }

  /** Records a refused store state and raises it (event, metric, readiness). */
  #conflict(keyring: string, kind: "material" | "store", detail: string): void {
    const now = this.#now();
    const known = this.#conflicts.get(keyring);
    this.#conflicts.set(keyring, {
      keyring,
      kind,
      detail,
      since: known?.since ?? new Date(now).toISOString(),
      recheckAfter: known?.recheckAfter ?? now + this.#refreshMs,
    });
    this.#emit({ type: "store_conflict", keyring, kind, detail });
  }

  /**
   * A load for a version or legacy label the cache does not hold: one written elsewhere since, or one
   * made up by whoever handed in the value. At most one such load per UNSEEN_LOAD_INTERVAL_MS per keyring;
   * a caller that comes sooner waits for the next one, shared, so made-up versions cannot turn every
   * request into a store call, and a version that does exist is still found.
   */
  async #loadForUnseen(entry: Entry, what: string): Promise<KeyringState> {
    // A load already under way is shared, as for any other caller.
    if (entry.loading) return this.#loadForOpening(entry, what);
    const waitMs = entry.unseenLoadAt + UNSEEN_LOAD_INTERVAL_MS - performance.now();
    if (waitMs <= 0) {
      entry.unseenLoadAt = performance.now();
      return this.#loadForOpening(entry, what);
    }
    entry.unseenLoad ??= sleep(waitMs)
      .then(() => {
        entry.unseenLoadAt = performance.now();
        return this.#load(entry);
      })
      .finally(() => {
        entry.unseenLoad = undefined;
      });
    let state: KeyringState | undefined;
    try {
      state = await entry.unseenLoad;
    } catch (err) {
      throw this.#unavailableForOpening(entry.name, what, err);
    }
    if (!state) throw keyringNotFound(entry.name);
    return state;
  }

  async #loadForOpening(entry: Entry, what: string): Promise<KeyringState> {
    let state: KeyringState | undefined;
    try {
      state = await this.#load(entry);
    } catch (err) {
      throw this.#unavailableForOpening(entry.name, what, err);
    }
    if (!state) throw keyringNotFound(entry.name);
    return state;
  }

  /**
   * Before sealing, at most every `revisionCheckMs`: asks a store that can tell cheaply whether the keyring's
   * revision moved past the cached one, and if so loads it, so a rotation by another process (the CLI, a
   * second server) is sealed under within a fraction of a second rather than at the next refresh. Shared by
   * concurrent callers, who wait for it at most REVISION_CHECK_WAIT_MS after it began; when the check fails
   * or hangs, the cached state keeps serving.
   */
  async #checkRevision(entry: Entry): Promise<void> {
    const revisionOf = this.#store.revision?.bind(this.#store);
    if (revisionOf === undefined) {
      entry.revisionCheckAfter = Number.POSITIVE_INFINITY;
      return;
    }
    if (!entry.revisionCheck) {
      entry.revisionCheckAfter = this.#now() + this.#revisionCheckMs;
      const done = (async () => {
        try {
          const stored = await revisionOf(entry.name);
          if (entry.state && stored > entry.state.revision && stored !== entry.refusedRevision) {
            try {
              await this.#load(entry);
            } catch (err) {
              // Persistent, unlike an outage: remember it until the store moves on.
              if (isFieldsealError(err, "key_store_conflict") || isFieldsealError(err, "internal")) {
                entry.refusedRevision = stored;
              }
              throw err;
            }
          }
        } catch {
          // Store trouble surfaces on the refresh and on writes; sealing keeps going with what is cached.
        }
      })().finally(() => {
        entry.revisionCheck = undefined;
      });
      entry.revisionCheck = { done, startedMs: performance.now() };
    }
    const waitMs = entry.revisionCheck.startedMs + REVISION_CHECK_WAIT_MS - performance.now();
    if (waitMs <= 0) return;
    const timer = new AbortController();
    const waited = sleep(waitMs, undefined, { signal: timer.signal, ref: false }).catch(() => {});
    await Promise.race([entry.revisionCheck.done, waited]);
    timer.abort();
  }

  /** Starts a background refresh when the cached primary is older than `primaryRefreshMs`. Never blocks. */
  #refreshIfDue(entry: Entry): void {
    if (this.#closed || this.#now() < entry.refreshAfter || entry.loading) return;
    entry.refreshAfter = this.#now() + this.#refreshMs;
    this.#inBackground(
      this.#load(entry).then(async () => {
        if (entry.state && this.#ageDue(entry)) await this.#rotateFrom(entry, entry.state.primary, "age");
      }),
    );
  }

  async #cas(entry: Entry, expectedRevision: number, next: KeyringState): Promise<CasResult> {
    const known = entry.state;
    if (known && expectedRevision < known.revision) {
      // The store went back behind a revision this process has seen (a restored backup, AWSCURRENT moved
      // back by hand, a deleted keyring). A write on it would number new versions that already exist with
      // other material, and values are sealed under those: refused and raised, never written.
      const detail = `the key store holds revision ${expectedRevision}, older than revision ${known.revision} already seen (a restored backup or a moved current version?); refusing to write on it`;
      this.#conflict(entry.name, "store", detail);
      throw new FieldsealError(
        "key_store_conflict",
        `keyring "${entry.name}": ${detail}; the cached keys keep serving`,
      );
    }
    const before = known?.revision;
    let result: CasResult;
    try {
      result = await this.#call("cas", entry.name, async () => {
        const answer = await this.#store.compareAndSwap(expectedRevision, next);
        // The local store (the one that tells its revision cheaply) reads its own disk and never goes back: a
        // current revision below one already seen means its files were restored from an older backup or
        // removed. Raised as a store conflict (logged, counted, readiness), never written over.
        const current = answer.ok ? undefined : (answer.current?.revision ?? 0);
        if (current !== undefined && before !== undefined && current < before && this.#store.revision) {
          throw new FieldsealError(
            "key_store_conflict",
            `keyring "${entry.name}": the key store holds revision ${current}, older than revision ${before} seen before (restored from an older backup, or removed); refused, the cached keys keep serving`,
          );
        }
        return answer;
      });
    } catch (err) {
      // The store refuses a write that would change what it holds: it may hold a state that contradicts
      // the cache (a version written by hand). Reading it raises that as a conflict; if the read agrees with
      // the cache, the refusal was about the write itself and stands.
      if (isFieldsealError(err, "internal")) await this.#loadFresh(entry);
      throw err;
    }
    if (result.ok) this.#absorb(entry, result.state);
    else if (result.current) this.#absorb(entry, result.current);
    // Never hand a caller a state older than the one known (a stale read, a store that went back): a retry
    // built on it would write new material under version numbers that already hold other material.
    const latest = entry.state;
    if (!result.ok && latest && (result.current?.revision ?? 0) < latest.revision) {
      return { ok: false, current: latest };
    }
    return result;
  }

  async #call<T>(
    op: "load" | "cas" | "list",
    keyring: string | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    const where = keyring === undefined ? {} : { keyring };
    try {
      const result = await work();
      this.#emit({ type: "store_call", op, ...where, ms: performance.now() - started, ok: true });
      return result;
    } catch (err) {
      let failure =
        err instanceof FieldsealError
          ? err
          : new FieldsealError("store_unavailable", `key store (${this.#store.kind}) ${op} failed`, {
              cause: err,
            });
      // A load fails "internal" only when the stored keyring breaks a rule (a tombstone over the primary, a
      // gap, bad material...): a stored state refused like any other, raised rather than a bare 500.
      if (op === "load" && failure.code === "internal")
        failure = new FieldsealError("key_store_conflict", failure.message, { cause: failure });
      this.#emit({
        type: "store_call",
        op,
        ...where,
        ms: performance.now() - started,
        ok: false,
        code: failure.code,
      });
      if (failure.code === "key_store_conflict" && keyring !== undefined)
        this.#conflict(keyring, "store", failure.message);
      throw failure;
    }
  }

  /** Version `version` of `state` (at most its latest), for opening, or why it cannot open. */
  #openable(state: KeyringState, version: number, evenIfRetired = false): SealingKey {
    const destroyed = destroyedRange(state, version);
    if (destroyed) {
      throw new FieldsealError(
        "key_version_destroyed",
        `keyring "${state.name}" version ${version} was destroyed at ${destroyed.destroyedAt}; values sealed under it can never be opened again`,
      );
    }
    const found = liveVersion(state, version);
    if (!found) throw corrupt(state.name);
    if (version < state.minDecryptVersion && !evenIfRetired) {
      throw new FieldsealError(
        "key_version_retired",
        `keyring "${state.name}" version ${version} is retired (minimum decryption version is ${state.minDecryptVersion})`,
      );
    }
    return keyFor(state.name, found);
  }

  #inBackground(work: Promise<unknown>): void {
    // Failures surface on the next foreground call that needs the store; here they must not go unhandled.
    const task = work.catch(() => {});
    this.#background.add(task);
    void task.finally(() => this.#background.delete(task));
  }

  #emit(event: KeyEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // Observability must never break key handling.
    }
  }
}

function isCount(n: unknown, min: number): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min;
}

/** True when no operation is under way on the entry, so dropping it from the cache loses nothing. */
function isIdle(entry: Entry): boolean {
  return (
    entry.loading === undefined &&
    entry.reserving === undefined &&
    entry.creating === undefined &&
    entry.onDemand === undefined &&
    entry.rotations.size === 0
  );
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(Math.max(n, min), max);
}

function keyFor(keyring: string, version: KeyVersion): SealingKey {
  // The cached array itself, not a copy: copies would scatter key material over the heap, and the engine
  // keys its cipher-key cache by this array's identity. Callers must treat it as read-only.
  return { keyring, version: version.version, material: version.material };
}

function keyringNotFound(name: string): FieldsealError {
  return new FieldsealError("keyring_not_found", `keyring "${name}" does not exist`);
}

function corrupt(name: string): FieldsealError {
  return new FieldsealError("internal", `keyring "${name}" is missing a version it should hold`);
}

function tooContended(name: string, what: string): FieldsealError {
  return new FieldsealError(
    "conflict",
    `keyring "${name}": could not ${what} after ${MAX_ATTEMPTS} attempts`,
  );
}
