/** The sealing engine: envelope, AEAD and AAD. Pure: no network, no files, no clocks. */
export { buildAad, type Scope, type SealContext } from "./aad.js";
export { blindIndex, INDEX_BYTES, INDEX_PREFIX, indexKey } from "./blind-index.js";
export {
  type Envelope,
  envelopeKeyring,
  formatEnvelope,
  looksLikeEnvelope,
  parseEnvelope,
} from "./envelope.js";
export type { JsonValue } from "./json-value.js";
export { type LegacyBlob, openLegacyBlob, parseLegacyBlob } from "./legacy.js";
export { assertAadPart, assertKeyringName, KEYRING_NAME } from "./names.js";
export { type EngineKey, openField, sealField } from "./seal.js";
export { MAX_PLAINTEXT_BYTES } from "./value-codec.js";
