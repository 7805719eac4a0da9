import { contextAad, type SealContext } from "./aad.js";
import { aesGcmOpen, aesGcmSealPayload } from "./aead.js";
import { type Envelope, formatEnvelopePayload } from "./envelope.js";
import type { JsonValue } from "./json-value.js";
import { decodeValue, encodeValue } from "./value-codec.js";

/** Key material of one version of one keyring, as the engine needs it. */
export interface EngineKey {
  readonly keyring: string;
  readonly version: number;
  /** 32 bytes. */
  readonly material: Uint8Array;
}

/**
 * Seals one field value into `fs1.` envelope text bound to `ctx`. `nonce` is for test vectors only: in
 * production it is always omitted, so every seal gets a fresh CSPRNG nonce.
 */
export function sealField(key: EngineKey, ctx: SealContext, value: JsonValue, nonce?: Uint8Array): string {
  const aad = contextAad(key.keyring, key.version, ctx);
  const plaintext = encodeValue(value);
  return formatEnvelopePayload(
    key.keyring,
    key.version,
    aesGcmSealPayload(key.material, plaintext, aad, nonce),
  );
}

/**
 * Opens a parsed envelope with the key its header names. Throws envelope_tampered when the value was
 * altered or moved to another field, scope or version.
 */
export function openField(key: EngineKey, ctx: SealContext, envelope: Envelope): JsonValue {
  const aad = contextAad(envelope.keyring, envelope.version, ctx);
  const plaintext = aesGcmOpen(key.material, envelope.nonce, envelope.sealed, aad);
  try {
    return decodeValue(plaintext);
  } finally {
    plaintext.fill(0);
  }
}
