/**
 * The rules every KeyringState obeys, checked where state enters or leaves a store. Problems are described in
 * terms of names, versions and sizes only: never key material or stored text, so messages are safe to log.
 */
import { randomFillSync } from "node:crypto";
import { KEYRING_NAME } from "../engine/names.js";
import type { KeyringState, KeyVersion } from "./types.js";

/** Bytes of AES-256 key material in every version. */
export const KEY_MATERIAL_BYTES = 32;

function isCount(n: unknown, min: number): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min;
}

/** Describes what is wrong with `state`, or returns undefined when it obeys every rule. */
export function keyringStateProblem(state: KeyringState): string | undefined {
  if (!KEYRING_NAME.test(state.name)) return "the keyring name is invalid";
  if (!isCount(state.revision, 1)) return "revision must be an integer >= 1";
  const count = state.versions.length;
  if (count === 0) return "it has no key versions";
  for (let i = 0; i < count; i++) {
    const v = state.versions[i] as KeyVersion;
    if (v.version !== i + 1)
      return `versions must be contiguous from 1 (position ${i + 1} holds another number)`;
    if (!(v.material instanceof Uint8Array) || v.material.length !== KEY_MATERIAL_BYTES) {
      return `version ${v.version} does not hold ${KEY_MATERIAL_BYTES} bytes of key material`;
    }
    if (typeof v.createdAt !== "string" || Number.isNaN(Date.parse(v.createdAt))) {
      return `version ${v.version} has no valid creation time`;
    }
    if (!isCount(v.sealsReserved, 0)) return `version ${v.version} has an invalid seal count`;
    if (v.legacyLabel !== undefined && typeof v.legacyLabel !== "string") {
      return `version ${v.version} has an invalid legacy label`;
    }
  }
  if (!isCount(state.primary, 1) || state.primary > count) return "the primary version does not exist";
  if (!isCount(state.minDecryptVersion, 1) || state.minDecryptVersion > state.primary) {
    return "the minimum decryption version must be between 1 and the primary version";
  }
  return undefined;
}

/**
 * Describes why `next` may not replace `current` (undefined = it may): the revision must advance by exactly
 * one and every existing version must survive unchanged, so no write, however buggy, can lose a key.
 */
export function successorProblem(current: KeyringState | undefined, next: KeyringState): string | undefined {
  const problem = keyringStateProblem(next);
  if (problem) return problem;
  const expected = (current?.revision ?? 0) + 1;
  if (next.revision !== expected) return `the next revision must be ${expected}`;
  if (!current) return undefined;
  if (current.name !== next.name) return "the keyring name changed";
  if (next.versions.length < current.versions.length) return "it would drop key versions";
  for (let i = 0; i < current.versions.length; i++) {
    const before = current.versions[i] as KeyVersion;
    const after = next.versions[i] as KeyVersion;
    if (!sameBytes(before.material, after.material))
      return `it would change the material of version ${i + 1}`;
    if (after.sealsReserved < before.sealsReserved)
      return `it would lower the seal count of version ${i + 1}`;
  }
  if (next.minDecryptVersion < current.minDecryptVersion)
    return "it would lower the minimum decryption version";
  return undefined;
}

/** Compares two byte arrays. Not constant-time: used for integrity checks, never for authentication. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `state` with a fresh version appended as primary. Material comes straight from the CSPRNG. */
export function withNewPrimary(state: KeyringState, nowMs: number): KeyringState {
  const version = state.versions.length + 1;
  // A fresh, unpooled array: randomBytes() may hand out a slice of a shared pool, which would leave a copy of
  // the key in memory that outlives it. randomFillSync uses the same CSPRNG.
  const material = randomFillSync(new Uint8Array(KEY_MATERIAL_BYTES));
  return {
    ...state,
    revision: state.revision + 1,
    primary: version,
    versions: [
      ...state.versions,
      { version, material, createdAt: new Date(nowMs).toISOString(), sealsReserved: 0 },
    ],
  };
}
