import { createHmac } from "node:crypto";
import { FieldsealError } from "../errors.js";
import type { Scope, SealContext } from "./aad.js";
import { aesGcmOpen, aesGcmSeal, aesGcmSealPayload, randomNonce } from "./aead.js";
import { decodePayload, isEnvelopeNumber, MAX_ENVELOPE_CHARS, NONCE_BYTES, TAG_BYTES } from "./envelope.js";
import type { JsonValue } from "./json-value.js";
import { assertAadPart, assertKeyringName, KEYRING_NAME } from "./names.js";
import { decodeValue, encodeValue } from "./value-codec.js";

/**
 * Scope-keyed values (erasable keyrings, docs/erasable-scopes.md): each scope has its own random 32-byte
 * data key, kept wrapped in a database; a value is sealed under a key derived from that data key and the
 * keyring's key version, so destroying the scope's data key makes every copy of every value of the scope
 * unopenable, and destroying the key version does too.
 *
 *   fs1s.<keyring>.<version>.<generation>.<base64url(nonce || ciphertext || tag)>
 *
 * `generation` counts the scope's data keys: a scope forgotten and used again gets generation + 1.
 */
export const SCOPED_FORMAT_TAG = "fs1s";

/** Bytes of a data key, and of the value key derived from it. */
export const DATA_KEY_BYTES = 32;
/** A wrapped data key: nonce || AES-256-GCM(data key) || tag. */
export const WRAPPED_KEY_BYTES = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES;

const MAX_NUMBER = 0xffff_ffff;
const VALUE_KEY_LABEL = Buffer.from(`${SCOPED_FORMAT_TAG}\0`, "utf8");
const WRAP_TAG = "fs1s-key";

/** A parsed `fs1s.` envelope. */
export interface ScopedEnvelope {
  readonly keyring: string;
  readonly version: number;
  readonly generation: number;
  readonly nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  readonly sealed: Uint8Array;
}

/**
 * The key a scope-keyed value is sealed under, derived for one keyring version, scope and generation. Build
 * it with `scopedKey`, which validates every part once: sealing and opening then validate only the field.
 */
export interface ScopedKey {
  readonly keyring: string;
  readonly version: number;
  readonly generation: number;
  readonly scope: Scope;
  /** 32 bytes: deriveValueKey(data key, key version material). */
  readonly material: Uint8Array;
  /** The AAD's text up to the field: `"fs1s" NUL keyring NUL version NUL generation NUL scope NUL`. */
  readonly aadPrefix: string;
}

/** A ScopedKey (frozen) for validated parts; invalid_argument when a part cannot stand in the AAD. */
export function scopedKey(
  keyring: string,
  version: number,
  generation: number,
  scope: Scope,
  material: Uint8Array,
): ScopedKey {
  assertKeyringName(keyring);
  assertNumber("key version", version);
  assertNumber("generation", generation);
  assertScope(scope);
  if (material.length !== DATA_KEY_BYTES) throw new FieldsealError("internal", "a value key is 32 bytes");
  return Object.freeze({
    keyring,
    version,
    generation,
    scope: Object.freeze({ kind: scope.kind, id: scope.id }),
    material,
    aadPrefix: `${SCOPED_FORMAT_TAG}\0${keyring}\0${version}\0${generation}\0${scopeName(scope)}\0`,
  });
}

/** True when `text` claims to be an `fs1s.` envelope (it may still be malformed). */
export function looksLikeScopedEnvelope(text: string): boolean {
  return text.startsWith(`${SCOPED_FORMAT_TAG}.`);
}

/**
 * The value key: HMAC-SHA256 keyed with the scope's data key over "fs1s" NUL || key version material.
 * Both secrets are needed: without the data key (forgotten) or the version's material (destroyed) no
 * value of the scope opens. The caller owns (and zeroises) the returned bytes.
 */
export function deriveValueKey(dataKey: Uint8Array, versionMaterial: Uint8Array): Uint8Array {
  if (dataKey.length !== DATA_KEY_BYTES || versionMaterial.length !== DATA_KEY_BYTES) {
    throw new FieldsealError("internal", "data key and key version material must be 32 bytes each");
  }
  const mac = createHmac("sha256", dataKey);
  mac.update(VALUE_KEY_LABEL);
  mac.update(versionMaterial);
  return new Uint8Array(mac.digest());
}

/**
 * The associated data of a scope-keyed value:
 *
 *   "fs1s" NUL keyring NUL decimal(version) NUL decimal(generation) NUL ("session:" | "user:") id NUL field
 *
 * A different tag from fs1's, so neither kind of value can be passed off as the other.
 */
export function scopedAad(
  keyring: string,
  version: number,
  generation: number,
  ctx: SealContext,
): Uint8Array {
  assertKeyringName(keyring);
  assertNumber("key version", version);
  assertNumber("generation", generation);
  assertScope(ctx.scope);
  assertAadPart("field name", ctx.field);
  return Buffer.from(
    `${SCOPED_FORMAT_TAG}\0${keyring}\0${version}\0${generation}\0${scopeName(ctx.scope)}\0${ctx.field}`,
    "utf8",
  );
}

/** `session:<id>` or `user:<id>`: how a scope is named in AADs and in the scope-key database. */
export function scopeName(scope: Scope): string {
  return `${scope.kind}:${scope.id}`;
}

// The AADs of the fields a scope key has been used with, per key: a seal or open of a known field costs two
// map lookups instead of validating and encoding the field. Only names are kept (never a value), at most
// FIELD_AADS_PER_KEY per key (then that key's set is emptied and refills), and the entries go with the key.
// The buffers are shared between calls and must never be modified (the engine only passes them to setAAD).
const FIELD_AADS_PER_KEY = 64;
const fieldAads = new WeakMap<ScopedKey, Map<string, Uint8Array>>();

/** The AAD of `ctx` under `key`, which must be the key of `ctx`'s scope. */
function keyAad(key: ScopedKey, ctx: SealContext): Uint8Array {
  if (ctx.scope.kind !== key.scope.kind || ctx.scope.id !== key.scope.id) {
    throw new FieldsealError("internal", "a scope key was used for another scope");
  }
  let aads = fieldAads.get(key);
  const known = aads?.get(ctx.field);
  if (known !== undefined) return known;
  assertAadPart("field name", ctx.field);
  const aad = Buffer.from(key.aadPrefix + ctx.field, "utf8");
  if (aads === undefined) {
    aads = new Map();
    fieldAads.set(key, aads);
  } else if (aads.size >= FIELD_AADS_PER_KEY) {
    aads.clear();
  }
  aads.set(ctx.field, aad);
  return aad;
}

/** Seals one value of `ctx` under its scope's key. `nonce` is for test vectors only. */
export function sealScopedField(
  key: ScopedKey,
  ctx: SealContext,
  value: JsonValue,
  nonce?: Uint8Array,
): string {
  const aad = keyAad(key, ctx);
  const payload = aesGcmSealPayload(key.material, encodeValue(value), aad, nonce);
  return `${SCOPED_FORMAT_TAG}.${key.keyring}.${key.version}.${key.generation}.${payload.toString("base64url")}`;
}

/** Opens a parsed scope-keyed envelope; envelope_tampered when it was altered or moved. */
export function openScopedField(key: ScopedKey, ctx: SealContext, envelope: ScopedEnvelope): JsonValue {
  if (
    envelope.keyring !== key.keyring ||
    envelope.version !== key.version ||
    envelope.generation !== key.generation
  ) {
    throw new FieldsealError("internal", "a scope key was used for another keyring, version or generation");
  }
  const aad = keyAad(key, ctx);
  const plaintext = aesGcmOpen(key.material, envelope.nonce, envelope.sealed, aad);
  try {
    return decodeValue(plaintext);
  } finally {
    plaintext.fill(0);
  }
}

/** Parses `fs1s.` envelope text strictly (the same canonical rules as fs1); else envelope_malformed. */
export function parseScopedEnvelope(text: string): ScopedEnvelope {
  if (text.length > MAX_ENVELOPE_CHARS) {
    throw new FieldsealError("too_large", `sealed value is longer than ${MAX_ENVELOPE_CHARS} characters`);
  }
  const parts = text.split(".");
  if (parts.length !== 5 || parts[0] !== SCOPED_FORMAT_TAG) {
    throw malformed("expected five dot-separated parts starting with 'fs1s'");
  }
  const [, keyring = "", versionText = "", generationText = "", payloadText = ""] = parts;
  if (!KEYRING_NAME.test(keyring)) throw malformed("keyring name is not valid");
  if (!isEnvelopeNumber(versionText)) throw malformed("key version is not a positive integer");
  if (!isEnvelopeNumber(generationText)) throw malformed("generation is not a positive integer");
  return {
    keyring,
    version: Number(versionText),
    generation: Number(generationText),
    // Canonical base64url only, by the same rules as fs1.
    ...decodePayload(payloadText, malformed),
  };
}

/** What a wrapped data key is bound to: the AAD of the wrapping. */
export interface WrapContext {
  readonly keyring: string;
  /** The keyring version whose material wraps the data key. */
  readonly version: number;
  /** `session:<id>` or `user:<id>`. */
  readonly scope: string;
  readonly generation: number;
}

function wrapAad(ctx: WrapContext): Uint8Array {
  return Buffer.from(`${WRAP_TAG}\0${ctx.keyring}\0${ctx.version}\0${ctx.scope}\0${ctx.generation}`, "utf8");
}

/**
 * Wraps a data key under a keyring version's material (AES-256-GCM, fresh nonce), bound to keyring,
 * version, scope and generation: a wrapped key copied to another scope or generation does not unwrap.
 */
export function wrapDataKey(
  versionMaterial: Uint8Array,
  ctx: WrapContext,
  dataKey: Uint8Array,
  nonce?: Uint8Array,
) {
  if (dataKey.length !== DATA_KEY_BYTES) throw new FieldsealError("internal", "data key must be 32 bytes");
  const iv = nonce ?? randomNonce();
  const sealed = aesGcmSeal(versionMaterial, iv, dataKey, wrapAad(ctx));
  const out = new Uint8Array(WRAPPED_KEY_BYTES);
  out.set(iv, 0);
  out.set(sealed, NONCE_BYTES);
  return out;
}

/** Unwraps a data key; internal error (never the bytes) when it does not authenticate. */
export function unwrapDataKey(
  versionMaterial: Uint8Array,
  ctx: WrapContext,
  wrapped: Uint8Array,
): Uint8Array {
  if (wrapped.length !== WRAPPED_KEY_BYTES) {
    throw new FieldsealError(
      "internal",
      `wrapped data key of scope in keyring "${ctx.keyring}" has the wrong length`,
    );
  }
  try {
    const opened = aesGcmOpen(
      versionMaterial,
      wrapped.subarray(0, NONCE_BYTES),
      wrapped.subarray(NONCE_BYTES),
      wrapAad(ctx),
    );
    // A copy the caller owns; the decipher's buffer is cleared.
    const dataKey = new Uint8Array(opened);
    opened.fill(0);
    return dataKey;
  } catch {
    throw new FieldsealError(
      "internal",
      `wrapped data key of a scope in keyring "${ctx.keyring}" (generation ${ctx.generation}) does not authenticate under version ${ctx.version}`,
    );
  }
}

function assertNumber(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NUMBER) {
    throw new FieldsealError("invalid_argument", `${what} must be an integer from 1 to ${MAX_NUMBER}`);
  }
}

function assertScope(scope: Scope): void {
  assertAadPart(scope.kind === "session" ? "session id" : "user id", scope.id);
}

function malformed(why: string): FieldsealError {
  return new FieldsealError("envelope_malformed", `sealed value is not a valid fs1s envelope: ${why}`);
}
