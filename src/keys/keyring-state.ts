/**
 * The rules every KeyringState obeys, checked where state enters or leaves a store. Problems are described in
 * terms of names, versions and sizes only: never key material or stored text, so messages are safe to log.
 */
import { randomFillSync } from "node:crypto";
import { KEYRING_NAME } from "../engine/names.js";
import type { DestroyedVersions, KeyringState, KeyVersion } from "./types.js";

/** Bytes of AES-256 key material in every version. */
export const KEY_MATERIAL_BYTES = 32;

function isCount(n: unknown, min: number): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min;
}

/** The highest version number destroyed, or 0 when none was. */
export function destroyedThrough(state: KeyringState): number {
  const ranges = state.destroyed ?? [];
  return ranges.length === 0 ? 0 : (ranges[ranges.length - 1] as DestroyedVersions).through;
}

/** The newest version number in the keyring (live or destroyed). */
export function latestVersion(state: KeyringState): number {
  return destroyedThrough(state) + state.versions.length;
}

/** Version `version` if it still holds material, else undefined (unknown or destroyed). */
export function liveVersion(state: KeyringState, version: number): KeyVersion | undefined {
  const found = state.versions[version - destroyedThrough(state) - 1];
  return found?.version === version ? found : undefined;
}

/** The tombstone covering `version`, if that version was destroyed. */
export function destroyedRange(state: KeyringState, version: number): DestroyedVersions | undefined {
  if (version > destroyedThrough(state)) return undefined;
  return state.destroyed?.find((r) => version >= r.from && version <= r.through);
}

/** Describes what is wrong with `state`, or returns undefined when it obeys every rule. */
export function keyringStateProblem(state: KeyringState): string | undefined {
  if (!KEYRING_NAME.test(state.name)) return "the keyring name is invalid";
  if (!isCount(state.revision, 1)) return "revision must be an integer >= 1";
  let next = 1;
  for (const range of state.destroyed ?? []) {
    if (range.from !== next || !isCount(range.through, range.from)) {
      return "destroyed versions must be contiguous ranges from version 1";
    }
    if (typeof range.destroyedAt !== "string" || Number.isNaN(Date.parse(range.destroyedAt))) {
      return `destroyed versions ${range.from}-${range.through} have no valid destruction time`;
    }
    next = range.through + 1;
  }
  const count = state.versions.length;
  if (count === 0) return "it has no key versions";
  for (let i = 0; i < count; i++) {
    const v = state.versions[i] as KeyVersion;
    if (v.version !== next + i)
      return `versions must be contiguous from ${next} (position ${i + 1} holds another number)`;
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
  const latest = next + count - 1;
  if (!isCount(state.primary, next) || state.primary > latest) return "the primary version does not exist";
  if (!isCount(state.minDecryptVersion, 1) || state.minDecryptVersion > state.primary) {
    return "the minimum decryption version must be between 1 and the primary version";
  }
  if (next > state.minDecryptVersion)
    return "a version at or above the minimum decryption version is destroyed";
  return undefined;
}

/**
 * Describes how `later` breaks the one rule every change of a keyring obeys, or returns undefined when it
 * keeps it: every version of `earlier` is still in `later` with the same material, except that the material
 * of a version below `later`'s minimum decryption version may have been destroyed. Nothing else may change
 * a version's material: not a rewrite, not a restored tombstone, not a dropped version. `earlier` and
 * `later` must each obey keyringStateProblem. Messages name versions only, never material.
 */
export function versionChangeProblem(earlier: KeyringState, later: KeyringState): string | undefined {
  if (earlier.name !== later.name) return "the keyring name changed";
  if (latestVersion(later) < latestVersion(earlier)) return "it would drop key versions";
  const laterDestroyed = destroyedThrough(later);
  if (laterDestroyed < destroyedThrough(earlier)) return "it would restore destroyed key versions";
  for (const before of earlier.versions) {
    const after = liveVersion(later, before.version);
    if (after === undefined) {
      // Destroyed in `later`: legal only below its minimum decryption version (keyringStateProblem).
      if (before.version > laterDestroyed) return `it would drop version ${before.version}`;
      continue;
    }
    if (!sameBytes(before.material, after.material))
      return `it would change the material of version ${before.version}`;
  }
  return undefined;
}

/**
 * Describes how `later` goes back on a rule no change of a keyring may break, or returns undefined when it
 * does not: the minimum decryption version is never lowered (a retired version stays retired), the primary
 * never moves back to an older version, and no version's reserved seal count goes down (it bounds the seals
 * ever made under the version: lowered, the nonce budget could be passed). Messages name versions only.
 */
export function policyRegressionProblem(earlier: KeyringState, later: KeyringState): string | undefined {
  if (later.minDecryptVersion < earlier.minDecryptVersion)
    return "it would lower the minimum decryption version";
  if (later.primary < earlier.primary) return `it would move the primary back to version ${later.primary}`;
  for (const before of earlier.versions) {
    const after = liveVersion(later, before.version);
    if (after && after.sealsReserved < before.sealsReserved)
      return `it would lower the seal count of version ${before.version}`;
  }
  return undefined;
}

/**
 * Describes why `next` may not replace `current` (undefined = it may): the revision must advance by exactly
 * one and every existing version must survive unchanged (or be destroyed below the minimum decryption
 * version), so no write, however buggy, can lose a key.
 */
export function successorProblem(current: KeyringState | undefined, next: KeyringState): string | undefined {
  const problem = keyringStateProblem(next);
  if (problem) return problem;
  const expected = (current?.revision ?? 0) + 1;
  if (next.revision !== expected) return `the next revision must be ${expected}`;
  if (!current) return undefined;
  const changed = versionChangeProblem(current, next) ?? policyRegressionProblem(current, next);
  if (changed) return changed;
  for (const [i, range] of (current.destroyed ?? []).entries()) {
    const same = next.destroyed?.[i];
    if (same?.through !== range.through || same.destroyedAt !== range.destroyedAt)
      return "it would change the record of destroyed versions";
  }
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
  const version = latestVersion(state) + 1;
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

/**
 * `state` with the material of every version below `below` destroyed (a tombstone each, recorded as one
 * range), or undefined when none of them still holds material. `below` must not pass the minimum decryption
 * version: only retired versions can be destroyed.
 */
export function withVersionsDestroyed(
  state: KeyringState,
  below: number,
  nowMs: number,
): KeyringState | undefined {
  const from = destroyedThrough(state) + 1;
  if (below <= from) return undefined;
  return {
    ...state,
    revision: state.revision + 1,
    destroyed: [
      ...(state.destroyed ?? []),
      { from, through: below - 1, destroyedAt: new Date(nowMs).toISOString() },
    ],
    versions: state.versions.filter((v) => v.version >= below),
  };
}
