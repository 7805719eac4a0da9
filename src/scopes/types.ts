/**
 * The scope-key database of erasable keyrings (docs/erasable-scopes.md). One record per (keyring, scope):
 * either the scope's live data key, wrapped, with its generation, or a tombstone saying the scope was
 * forgotten at that generation (no key material at all).
 */

/** A scope's live data key. */
export interface LiveScopeKey {
  readonly state: "live";
  readonly keyring: string;
  /** `session:<id>` or `user:<id>`. */
  readonly scope: string;
  /** 1 for a scope's first data key, one more after each forget that allowed a new one. */
  readonly generation: number;
  /** nonce || AES-256-GCM(data key) || tag under the keyring's `wrapVersion` (src/engine/scoped.ts). */
  readonly wrapped: Uint8Array;
  readonly wrapVersion: number;
  /** ISO 8601. */
  readonly createdAt: string;
}

/** A forgotten scope: the data key of `generation` (and of every earlier one) is gone. */
export interface ScopeTombstone {
  readonly state: "forgotten";
  readonly keyring: string;
  readonly scope: string;
  /** The generation forgotten; 0 when the scope was forgotten before it ever had a key. */
  readonly generation: number;
  /** ISO 8601. */
  readonly forgottenAt: string;
}

export type ScopeKeyRecord = LiveScopeKey | ScopeTombstone;

/**
 * Where scope keys live: `SqliteScopeKeyStore` (embedded default) or `DynamoDbScopeKeyStore`. Every write
 * is conditional, so replicas racing on one scope converge on one record:
 * - `createKey` writes a first key only where no record exists, or a next generation only over the
 *   tombstone of the generation before it; it returns whatever the database then holds.
 * - `forget` replaces the live key of exactly the generation it read with a tombstone (or writes a
 *   generation-0 tombstone where nothing exists), re-reading on a lost race.
 * Reads are strongly consistent. Errors: an unreachable database throws FieldsealError("store_unavailable").
 */
export interface ScopeKeyStore {
  /** `sqlite` or `dynamodb`. */
  readonly kind: string;
  get(keyring: string, scope: string): Promise<ScopeKeyRecord | undefined>;
  createKey(next: LiveScopeKey): Promise<ScopeKeyRecord>;
  /**
   * Replaces the wrapping of `current` (same data key, same generation) with one under a newer key version,
   * only if the record is still exactly `current`'s generation and wrap version; returns what it holds then.
   */
  rewrapKey(
    current: LiveScopeKey,
    wrapped: Uint8Array,
    wrapVersion: number,
  ): Promise<ScopeKeyRecord | undefined>;
  /**
   * The keyring's live keys wrapped under a version below `version`, for re-wrapping them under a newer one
   * (`fieldseal scopes rewrap-keys`). Strongly consistent, paged by the database; for operators' tools, never
   * on a request path.
   */
  liveKeysWrappedBelow(keyring: string, version: number): AsyncIterable<LiveScopeKey>;
  /**
   * Forgets the scope's live key. With `through` (re-applying a recorded forget after a database restore),
   * only a live key of generation `through` or older is forgotten: a newer one, created after that forget,
   * is returned untouched; and the tombstone written is of generation `through` at least (also for a
   * scope with no record), so a keyring that allows reuse goes on from `through` + 1 and never makes a
   * generation number again.
   */
  forget(keyring: string, scope: string, forgottenAt: string, through?: number): Promise<ScopeKeyRecord>;
  close(): Promise<void>;
}
