/**
 * Reads the tutorial's secret shape, `{"key": "<base64 of 32 bytes>", "version": "<label>"}`, as revision 1
 * of a keyring whose only version is 1 (until `adoptingTutorialKeys` gives it a fresh primary). The material
 * is the decoded bytes exactly: the tutorial's own code UTF-8-decoded them, which is a bug Fieldseal does not
 * repeat.
 */
import { FieldsealError } from "../errors.js";
import type { KeyringState } from "./types.js";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** True when a parsed secret value looks like the tutorial's shape rather than a Fieldseal keyring. */
export function isTutorialSecret(value: unknown): value is { key: unknown; version?: unknown } {
  return typeof value === "object" && value !== null && !("format" in value) && "key" in value;
}

/**
 * Converts a tutorial secret into keyring state. `createdAt` should be the secret version's creation time so
 * that every read of the same secret version yields identical state. Errors name the keyring, never the key.
 */
export function keyringFromTutorialSecret(
  value: { key: unknown; version?: unknown },
  name: string,
  createdAt: string,
): KeyringState {
  const key = value.key;
  if (typeof key !== "string" || !BASE64.test(key) || key.length % 4 !== 0) {
    throw new FieldsealError("internal", `tutorial-shaped secret for keyring "${name}": "key" is not base64`);
  }
  const material = new Uint8Array(Buffer.from(key, "base64"));
  if (material.byteLength !== 32) {
    throw new FieldsealError(
      "internal",
      `tutorial-shaped secret for keyring "${name}": "key" decodes to ${material.byteLength} bytes, not 32`,
    );
  }
  const label = value.version;
  if (label !== undefined && typeof label !== "string") {
    throw new FieldsealError(
      "internal",
      `tutorial-shaped secret for keyring "${name}": "version" is not a string`,
    );
  }
  return {
    name,
    revision: 1,
    primary: 1,
    minDecryptVersion: 1,
    // Marks version 1 as the tutorial's key even when the secret has no label to carry.
    fromTutorialSecret: true,
    versions: [
      {
        version: 1,
        material,
        createdAt,
        // The tutorial never counted its seals. This version never seals again: adoption
        // (tutorial-adoption.ts) writes a fresh primary the moment the secret is read.
        sealsReserved: 0,
        ...(label === undefined ? {} : { legacyLabel: label }),
      },
    ],
  };
}
