import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomFillSync,
} from "node:crypto";
import { FieldsealError } from "../errors.js";
import { NONCE_BYTES, TAG_BYTES } from "./envelope.js";

const KEY_BYTES = 32;

// A KeyObject per key version's material, created once: building one per call is the costliest part of a
// seal after the cipher itself. Keyed weakly so retired material can be collected.
const keyObjects = new WeakMap<Uint8Array, KeyObject>();

function keyObject(material: Uint8Array): KeyObject {
  let key = keyObjects.get(material);
  if (key === undefined) {
    // AES-256 needs exactly 32 bytes. Anything else is a bug or a corrupted store, never something to pad.
    if (material.length !== KEY_BYTES) {
      throw new FieldsealError("internal", `key material is ${material.length} bytes; AES-256 needs 32`);
    }
    key = createSecretKey(material);
    keyObjects.set(material, key);
  }
  return key;
}

// Nonces come from the CSPRNG in batches: one randomFillSync per 512 nonces instead of one per seal.
// Each nonce is handed out once; the pool is refilled, never rewound.
const POOL_NONCES = 512;
const noncePool = Buffer.allocUnsafe(NONCE_BYTES * POOL_NONCES);
let noncePoolNext = POOL_NONCES;

/** A fresh 96-bit nonce from the CSPRNG, never returned twice. */
export function randomNonce(): Uint8Array {
  if (noncePoolNext === POOL_NONCES) {
    randomFillSync(noncePool);
    noncePoolNext = 0;
  }
  const start = noncePoolNext * NONCE_BYTES;
  noncePoolNext++;
  // A copy, so that refilling the pool can never change a nonce already handed out.
  return Uint8Array.prototype.slice.call(noncePool, start, start + NONCE_BYTES);
}

/**
 * AES-256-GCM encryption straight into an envelope payload, `nonce || ciphertext || tag`, in one buffer:
 * no intermediate copies of ciphertext and tag. Without `nonce` (always, outside test vectors) a fresh one
 * comes from the pool and is written into the payload directly.
 */
export function aesGcmSealPayload(
  material: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  nonce?: Uint8Array,
): Buffer {
  const payload = Buffer.allocUnsafe(NONCE_BYTES + plaintext.length + TAG_BYTES);
  let iv: Uint8Array;
  if (nonce === undefined) {
    if (noncePoolNext === POOL_NONCES) {
      randomFillSync(noncePool);
      noncePoolNext = 0;
    }
    const start = noncePoolNext * NONCE_BYTES;
    noncePoolNext++;
    iv = noncePool.subarray(start, start + NONCE_BYTES);
  } else {
    if (nonce.length !== NONCE_BYTES) throw new FieldsealError("internal", "nonce must be 12 bytes");
    iv = nonce;
  }
  // The cipher copies the IV when it is created, so a view into the pool is safe to pass: the pool is
  // only refilled by a later seal.
  const cipher = createCipheriv("aes-256-gcm", keyObject(material), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  // GCM is a stream mode: the ciphertext is exactly as long as the plaintext.
  if (head.length + tail.length !== plaintext.length) {
    throw new FieldsealError("internal", "AES-GCM returned a ciphertext of unexpected length");
  }
  // TypedArray set rather than Buffer copy: the same bytes, without Buffer.copy's argument handling,
  // which showed in profiles of small seals.
  payload.set(iv, 0);
  payload.set(head, NONCE_BYTES);
  if (tail.length > 0) payload.set(tail, NONCE_BYTES + head.length);
  payload.set(cipher.getAuthTag(), NONCE_BYTES + plaintext.length);
  return payload;
}

/** AES-256-GCM encryption; returns ciphertext || 16-byte tag. */
export function aesGcmSeal(material: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array) {
  if (nonce.length !== NONCE_BYTES) throw new FieldsealError("internal", "nonce must be 12 bytes");
  const cipher = createCipheriv("aes-256-gcm", keyObject(material), nonce, { authTagLength: TAG_BYTES });
  if (aad !== undefined) cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(head.length + tail.length + TAG_BYTES);
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(tag, head.length + tail.length);
  return out;
}

/** AES-256-GCM decryption of ciphertext || tag; throws envelope_tampered when the tag does not verify. */
export function aesGcmOpen(material: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array) {
  if (sealed.length < TAG_BYTES || nonce.length !== NONCE_BYTES) {
    throw new FieldsealError("envelope_malformed", "sealed value is too short");
  }
  const split = sealed.length - TAG_BYTES;
  const decipher = createDecipheriv("aes-256-gcm", keyObject(material), nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(split));
  if (aad !== undefined) decipher.setAAD(aad);
  const head = decipher.update(sealed.subarray(0, split));
  try {
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    // The plaintext in `head` is unauthenticated and must not escape: it is dropped here.
    head.fill(0);
    throw new FieldsealError(
      "envelope_tampered",
      "sealed value does not authenticate: it was altered, or belongs to another field, scope or key version",
    );
  }
}
