/** The keys module's front door: key logic (`Keyrings`), the stores, and the shared keyring text form. */

export { assertKeyringName, KEYRING_NAME } from "../engine/names.js";
export { decodeKeyring, encodeKeyring, KEYRING_FORMAT } from "./keyring-codec.js";
export {
  DEFAULT_SEAL_BUDGET,
  type KeyEvent,
  type KeyringDescription,
  Keyrings,
  type KeyringsOptions,
  type RotationPolicy,
  type RotationReason,
  type SealingKey,
  type StoreConflict,
} from "./keyrings.js";
export { LocalFileKeyStore, type LocalFileKeyStoreOptions } from "./local-file-store.js";
export type { CasResult, DestroyedVersions, KeyringState, KeyStore, KeyVersion } from "./types.js";
