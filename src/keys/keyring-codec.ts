/**
 * The stored text form of a keyring, shared by every store so a keyring file and a Secrets Manager value
 * have the same shape:
 *
 *   {"format":"fieldseal-keyring/1","name":"payments","revision":3,"primary":2,"minDecryptVersion":1,
 *    "versions":[{"version":1,"material":"<base64 of 32 bytes>","createdAt":"2026-...Z","sealsReserved":65536}]}
 *
 * Material is standard base64 of the raw bytes; it is never passed through a text decoding.
 *
 * A keyring some of whose versions were destroyed (DestroyKeyVersions) is written as format
 * "fieldseal-keyring/2": `versions` then starts after the destroyed ones, and `destroyed` holds one compact
 * tombstone per destruction, `{"through":400,"at":"2027-...Z"}` (versions from the previous tombstone's
 * `through` + 1, or 1, up to 400): about 50 bytes per destroy call however many versions it covered, where
 * a live version takes about 130. Readers older than format 2 refuse such a keyring on its format marker
 * instead of misreading it.
 */
import { FieldsealError } from "../errors.js";
import { KEY_MATERIAL_BYTES, keyringStateProblem } from "./keyring-state.js";
import type { DestroyedVersions, KeyringState, KeyVersion } from "./types.js";

/** The format marker written into, and required in, every stored keyring without destroyed versions. */
export const KEYRING_FORMAT = "fieldseal-keyring/1";
/** The format marker of a keyring with destroyed versions (tombstones). */
export const KEYRING_FORMAT_WITH_TOMBSTONES = "fieldseal-keyring/2";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Serializes a keyring to JSON text. Throws FieldsealError("internal") if the state breaks a keyring rule.
 * `writer`, when given, is stored alongside and ignored on reading: it makes two writers' equal states
 * different texts (see SecretsManagerKeyStore).
 */
export function encodeKeyring(state: KeyringState, writer?: string): string {
  const problem = keyringStateProblem(state);
  if (problem) {
    throw new FieldsealError("internal", `refusing to store keyring "${state.name}": ${problem}`);
  }
  const destroyed = state.destroyed ?? [];
  return JSON.stringify({
    format: destroyed.length === 0 ? KEYRING_FORMAT : KEYRING_FORMAT_WITH_TOMBSTONES,
    name: state.name,
    revision: state.revision,
    primary: state.primary,
    minDecryptVersion: state.minDecryptVersion,
    versions: state.versions.map((v) => ({
      version: v.version,
      material: Buffer.from(v.material.buffer, v.material.byteOffset, v.material.byteLength).toString(
        "base64",
      ),
      createdAt: v.createdAt,
      sealsReserved: v.sealsReserved,
      ...(v.legacyLabel === undefined ? {} : { legacyLabel: v.legacyLabel }),
    })),
    ...(destroyed.length === 0
      ? {}
      : { destroyed: destroyed.map((r) => ({ through: r.through, at: r.destroyedAt })) }),
    ...(writer === undefined ? {} : { writer }),
  });
}

/**
 * Parses and validates stored keyring text for the keyring `name`. Malformed text throws
 * FieldsealError("internal") naming the keyring and the rule broken, never quoting the text.
 */
export function decodeKeyring(text: string, name: string): KeyringState {
  const fail = (why: string): never => {
    // No `cause`: a JSON parse error quotes the input, and the input holds key material.
    throw new FieldsealError("internal", `stored keyring "${name}" is malformed: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail("it is not valid JSON");
  }
  if (!isRecord(raw)) return fail("it is not a JSON object");
  if (raw.format !== KEYRING_FORMAT && raw.format !== KEYRING_FORMAT_WITH_TOMBSTONES)
    return fail(
      `the format marker is missing or is not "${KEYRING_FORMAT}" or "${KEYRING_FORMAT_WITH_TOMBSTONES}"`,
    );
  const destroyed: DestroyedVersions[] = [];
  if (raw.format === KEYRING_FORMAT_WITH_TOMBSTONES) {
    if (!Array.isArray(raw.destroyed) || raw.destroyed.length === 0)
      return fail("format 2 requires a non-empty destroyed array");
    for (const [i, item] of raw.destroyed.entries()) {
      if (!isRecord(item) || typeof item.through !== "number" || typeof item.at !== "string")
        return fail(`destroyed entry ${i + 1} needs a version number "through" and a time "at"`);
      const from =
        destroyed.length === 0 ? 1 : (destroyed[destroyed.length - 1] as DestroyedVersions).through + 1;
      destroyed.push({ from, through: item.through, destroyedAt: item.at });
    }
  } else if (raw.destroyed !== undefined) {
    return fail(`destroyed versions need the format marker "${KEYRING_FORMAT_WITH_TOMBSTONES}"`);
  }
  if (raw.name !== name) return fail("it holds a different keyring name");
  if (!Array.isArray(raw.versions)) return fail("it has no versions array");
  const versions: KeyVersion[] = raw.versions.map((item: unknown, i: number): KeyVersion => {
    if (!isRecord(item)) return fail(`version entry ${i + 1} is not an object`);
    const { version, material, createdAt, sealsReserved, legacyLabel } = item;
    if (typeof version !== "number") return fail(`version entry ${i + 1} has no version number`);
    if (typeof material !== "string" || !BASE64.test(material)) {
      return fail(`version ${version} has no base64 key material`);
    }
    const bytes = Buffer.from(material, "base64");
    if (bytes.length !== KEY_MATERIAL_BYTES || bytes.toString("base64") !== material) {
      return fail(`version ${version} does not hold ${KEY_MATERIAL_BYTES} bytes of key material`);
    }
    if (typeof createdAt !== "string") return fail(`version ${version} has no creation time`);
    if (typeof sealsReserved !== "number") return fail(`version ${version} has no seal count`);
    if (legacyLabel !== undefined && typeof legacyLabel !== "string") {
      return fail(`version ${version} has an invalid legacy label`);
    }
    return {
      version,
      material: new Uint8Array(bytes),
      createdAt,
      sealsReserved,
      ...(legacyLabel === undefined ? {} : { legacyLabel }),
    };
  });
  const { revision, primary, minDecryptVersion } = raw;
  if (typeof revision !== "number" || typeof primary !== "number" || typeof minDecryptVersion !== "number") {
    return fail("revision, primary or minDecryptVersion is missing");
  }
  const state: KeyringState = {
    name,
    revision,
    primary,
    minDecryptVersion,
    versions,
    ...(destroyed.length === 0 ? {} : { destroyed }),
  };
  const problem = keyringStateProblem(state);
  if (problem) return fail(problem);
  return state;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
