/**
 * Key state as the stores keep it. A keyring is stored whole (Tink-style keyset): every version's material,
 * the primary and the minimum decryption version travel together, and every change is a compare-and-swap
 * on the keyring's `revision`. That one rule keeps both stores simple and makes concurrent rotations safe:
 * two writers that read revision N both try to write N+1 and only one can win.
 */

/** One key version: 32 bytes of AES-256 key material and its bookkeeping. */
export interface KeyVersion {
  /** 1, 2, 3... within the keyring; never reused. */
  readonly version: number;
  /** 32 random bytes from a CSPRNG. Never logged, never UTF-8-decoded. */
  readonly material: Uint8Array;
  /** ISO 8601 creation time. */
  readonly createdAt: string;
  /**
   * Seals reserved under this version by all replicas together. Each process reserves seals in blocks
   * before it uses them, so this is an upper bound on the random nonces the version has consumed.
   */
  readonly sealsReserved: number;
  /** Set on a version adopted from a tutorial-shaped secret: the tutorial's `version` label. */
  readonly legacyLabel?: string;
}

/**
 * Versions `from` through `through` whose material was destroyed at `destroyedAt` (DestroyKeyVersions): a
 * tombstone with no material, so their values answer `key_version_destroyed` rather than "not found".
 */
export interface DestroyedVersions {
  readonly from: number;
  readonly through: number;
  /** ISO 8601 time of the destruction. */
  readonly destroyedAt: string;
}

/** A whole keyring as stored. */
export interface KeyringState {
  readonly name: string;
  /** Incremented by every successful write; the compare-and-swap token. Starts at 1. */
  readonly revision: number;
  /** The version that seals. */
  readonly primary: number;
  /** Versions below this one refuse to open values. At least 1. */
  readonly minDecryptVersion: number;
  /**
   * Versions that still hold material, ascending and contiguous: from 1, or from the version after the last
   * destroyed one.
   */
  readonly versions: readonly KeyVersion[];
  /**
   * Tombstones of destroyed versions, ascending and contiguous from version 1; every one is below
   * `minDecryptVersion`. Absent or empty: nothing was ever destroyed.
   */
  readonly destroyed?: readonly DestroyedVersions[];
  /**
   * Set on state read from a tutorial-shaped secret, whose version 1 is the tutorial's key with or without a
   * `version` label. Never stored: adoption replaces that state with a Fieldseal keyring.
   */
  readonly fromTutorialSecret?: true;
}

/** The result of a compare-and-swap write. */
export type CasResult =
  | { readonly ok: true; readonly state: KeyringState }
  /** Another writer got there first; `current` is what the store holds now. */
  | { readonly ok: false; readonly current: KeyringState | undefined };

/**
 * Where keyrings live. Implementations: `LocalFileKeyStore` (embedded default) and
 * `SecretsManagerKeyStore`. Every implementation passes `test/keys/key-store-contract.ts`.
 *
 * A store never interprets key state beyond what it needs to persist it; rotation logic lives in `Keyring`.
 * Errors: unreachable storage throws FieldsealError("store_unavailable"); malformed stored data throws
 * FieldsealError("internal") with a message that names the keyring but never quotes its content.
 */
export interface KeyStore {
  /** Short name for logs and DescribeKey: `local` or `aws`. */
  readonly kind: string;
  /** Reads a keyring's current state, or undefined when it does not exist. */
  load(name: string): Promise<KeyringState | undefined>;
  /** Names of all keyrings, sorted. */
  list(): Promise<string[]>;
  /**
   * Writes `next` if the stored revision is still `expectedRevision` (0 means "must not exist yet").
   * `next.revision` must be `expectedRevision + 1`. Never overwrites a newer state.
   */
  compareAndSwap(expectedRevision: number, next: KeyringState): Promise<CasResult>;
  /**
   * The keyring's stored revision (0 when it does not exist), for stores that can tell it much more cheaply
   * than `load`: Keyrings checks it before sealing to notice another process's rotation within a second.
   */
  revision?(name: string): Promise<number>;
  /** Releases connections, timers and locks. */
  close(): Promise<void>;
}
