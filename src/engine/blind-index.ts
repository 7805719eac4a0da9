import { createHmac } from "node:crypto";
import { assertAadPart, assertKeyringName } from "./names.js";
import type { EngineKey } from "./seal.js";

/** Text prefix and format version of a blind index: `fx1.<keyring>.<version>.<base64url>`. */
export const INDEX_PREFIX = "fx1";

/**
 * Bytes of HMAC-SHA256 kept. 128 bits make an accidental match of two different values negligible (the
 * birthday bound: about 2^-49 with 2^40 indexed values), while 8 bytes would give false matches past about
 * 2^32 values; more bytes add length to every stored index and nothing an equality lookup can use.
 */
export const INDEX_BYTES = 16;

/**
 * The HKDF info prefix. The sealing keys are used only as AES-256-GCM keys, never as HKDF input for anything
 * else, so the index key of a keyring version and field is a PRF output that can neither equal nor reveal the
 * sealing key it comes from, nor the index key of another field or keyring.
 */
const INFO_LABEL = "fieldseal index v1";
const NUL = new Uint8Array([0]);

/** HKDF-Extract's salt when none is given: HashLen zero bytes (RFC 5869 section 2.2). */
const NO_SALT = new Uint8Array(32);
const T1 = new Uint8Array([1]);

/**
 * The index key of one field under one keyring version: HKDF-SHA256 (RFC 5869) with the version's key
 * material as input keying material, no salt, info = "fieldseal index v1" NUL keyring NUL field (neither
 * name can hold a NUL, so the info is unambiguous), 32 bytes. One output block is T(1) = HMAC(PRK, info |
 * 0x01), written out with createHmac: node's hkdfSync gives the same bytes (test/masks/blind-index.test.ts)
 * at about three times the cost, which made it most of an index's cost.
 */
export function indexKey(key: EngineKey, field: string): Uint8Array {
  assertKeyringName(key.keyring);
  assertAadPart("field name", field);
  const prk = createHmac("sha256", NO_SALT).update(key.material).digest();
  try {
    return new Uint8Array(
      createHmac("sha256", prk)
        .update(INFO_LABEL, "utf8")
        .update(NUL)
        .update(key.keyring, "utf8")
        .update(NUL)
        .update(field, "utf8")
        .update(T1)
        .digest(),
    );
  } finally {
    prk.fill(0);
  }
}

/**
 * The blind index of an already normalised value (src/masks/normalize.ts): HMAC-SHA256 under the field's
 * index key of the value's UTF-8 bytes, truncated to INDEX_BYTES, as `fx1.<keyring>.<version>.<base64url>`.
 * Equal normalised values give equal indexes under one keyring version and field, and unrelated ones
 * otherwise.
 */
export function blindIndex(key: EngineKey, field: string, normalized: string): string {
  const k = indexKey(key, field);
  try {
    const mac = createHmac("sha256", k).update(normalized, "utf8").digest().subarray(0, INDEX_BYTES);
    return `${INDEX_PREFIX}.${key.keyring}.${key.version}.${mac.toString("base64url")}`;
  } finally {
    k.fill(0);
  }
}
