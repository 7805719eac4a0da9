import { FieldsealError } from "../errors.js";
import { aesGcmOpen } from "./aead.js";
import { NONCE_BYTES, TAG_BYTES } from "./envelope.js";

/**
 * The tutorial's sealed blob: base64 of JSON `{nonce, ciphertext, key_version, encrypted_at,
 * original_field}`, AES-256-GCM with no associated data. Read only, to open old values and re-seal them.
 */
export interface LegacyBlob {
  /** The tutorial secret's `version` label the blob names. */
  readonly keyVersionLabel: string;
  readonly originalField: string;
  readonly nonce: Uint8Array;
  /** Ciphertext || tag, as Python's AESGCM.encrypt returns it. */
  readonly sealed: Uint8Array;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_LEGACY_CHARS = 200_000;

/** Parses a tutorial blob; throws envelope_malformed for anything else. */
export function parseLegacyBlob(text: string): LegacyBlob {
  if (text.length > MAX_LEGACY_CHARS) {
    throw new FieldsealError("too_large", `sealed value is longer than ${MAX_LEGACY_CHARS} characters`);
  }
  if (!BASE64.test(text)) throw malformed();
  let blob: unknown;
  try {
    blob = JSON.parse(Buffer.from(text, "base64").toString("utf8"));
  } catch {
    throw malformed();
  }
  if (typeof blob !== "object" || blob === null) throw malformed();
  const { nonce, ciphertext, key_version, original_field } = blob as Record<string, unknown>;
  if (typeof nonce !== "string" || typeof ciphertext !== "string" || typeof original_field !== "string") {
    throw malformed();
  }
  if (typeof key_version !== "string" && typeof key_version !== "number") throw malformed();
  if (!BASE64.test(nonce) || !BASE64.test(ciphertext)) throw malformed();
  const nonceBytes = Buffer.from(nonce, "base64");
  const sealed = Buffer.from(ciphertext, "base64");
  if (nonceBytes.length !== NONCE_BYTES || sealed.length < TAG_BYTES) throw malformed();
  return { keyVersionLabel: String(key_version), originalField: original_field, nonce: nonceBytes, sealed };
}

/**
 * Opens a tutorial blob for `field` with the material of the key version its label names. The tutorial
 * bound nothing into the ciphertext, so the field it names is checked here: a blob copied to another field
 * is refused. (A blob copied to another session cannot be detected: that is the weakness rewrapping fixes.)
 */
export function openLegacyBlob(material: Uint8Array, field: string, blob: LegacyBlob): string {
  if (blob.originalField !== field) {
    throw new FieldsealError("envelope_tampered", "legacy sealed value belongs to another field");
  }
  const plaintext = aesGcmOpen(material, blob.nonce, blob.sealed);
  try {
    // ignoreBOM keeps a leading U+FEFF, as the tutorial's Python decode("utf-8") does.
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(plaintext);
  } catch {
    throw new FieldsealError("envelope_malformed", "legacy sealed value does not hold UTF-8 text");
  } finally {
    plaintext.fill(0);
  }
}

function malformed(): FieldsealError {
  return new FieldsealError(
    "envelope_malformed",
    "sealed value is neither an fs1 envelope nor a legacy tutorial blob",
  );
}
