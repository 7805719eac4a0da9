/**
 * The one serialised form of a keyring (`"format": "fieldseal-keyring/1"`), shared by every store.
 * Key material travels as standard base64 of the raw 32 bytes: it is never UTF-8-decoded.
 */
import { FieldsealError } from "../errors.js";
import type { KeyringState, KeyVersion } from "./types.js";

export const KEYRING_FORMAT = "fieldseal-keyring/1";
const KEY_BYTES = 32;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Serialises a keyring to compact JSON. */
export function encodeKeyring(state: KeyringState): string {
  return JSON.stringify({
    format: KEYRING_FORMAT,
    name: state.name,
    revision: state.revision,
    primary: state.primary,
    minDecryptVersion: state.minDecryptVersion,
    versions: state.versions.map((v) => ({
      version: v.version,
      key: Buffer.from(v.material.buffer, v.material.byteOffset, v.material.byteLength).toString("base64"),
      createdAt: v.createdAt,
      sealsReserved: v.sealsReserved,
      ...(v.legacyLabel === undefined ? {} : { legacyLabel: v.legacyLabel }),
    })),
  });
}

/**
 * Parses and validates a serialised keyring. Throws FieldsealError("internal") naming the keyring and the
 * broken field, never quoting the content (it holds key material).
 */
export function decodeKeyring(text: string, name: string): KeyringState {
  const fail = (what: string): never => {
    throw new FieldsealError("internal", `stored keyring "${name}" is malformed: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail("not JSON");
  }
  if (!isRecord(raw)) return fail("not a JSON object");
  if (raw.format !== KEYRING_FORMAT) return fail("unknown format");
  if (raw.name !== name) return fail("name does not match");
  const revision = positiveInt(raw.revision) ?? fail("revision");
  const primary = positiveInt(raw.primary) ?? fail("primary");
  const minDecryptVersion = positiveInt(raw.minDecryptVersion) ?? fail("minDecryptVersion");
  if (!Array.isArray(raw.versions) || raw.versions.length === 0) return fail("versions");

  const versions: KeyVersion[] = raw.versions.map((item: unknown, index: number): KeyVersion => {
    if (!isRecord(item)) return fail(`versions[${index}]`);
    if (item.version !== index + 1) return fail(`versions[${index}].version is not contiguous from 1`);
    if (typeof item.key !== "string" || !BASE64.test(item.key) || item.key.length % 4 !== 0) {
      return fail(`versions[${index}].key is not base64`);
    }
    const material = new Uint8Array(Buffer.from(item.key, "base64"));
    if (material.byteLength !== KEY_BYTES) return fail(`versions[${index}].key is not ${KEY_BYTES} bytes`);
    if (typeof item.createdAt !== "string" || Number.isNaN(Date.parse(item.createdAt))) {
      return fail(`versions[${index}].createdAt`);
    }
    const sealsReserved = item.sealsReserved;
    if (typeof sealsReserved !== "number" || !Number.isSafeInteger(sealsReserved) || sealsReserved < 0) {
      return fail(`versions[${index}].sealsReserved`);
    }
    if (item.legacyLabel !== undefined && typeof item.legacyLabel !== "string") {
      return fail(`versions[${index}].legacyLabel`);
    }
    return {
      version: index + 1,
      material,
      createdAt: item.createdAt,
      sealsReserved,
      ...(item.legacyLabel === undefined ? {} : { legacyLabel: item.legacyLabel }),
    };
  });
  if (primary > versions.length) return fail("primary names a missing version");
  if (minDecryptVersion > primary) return fail("minDecryptVersion is above the primary");
  return { name, revision, primary, minDecryptVersion, versions };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function positiveInt(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 1 ? value : undefined;
}
