/**
 * The tutorial's sealed blobs, made as its Python code makes them (AESGCM with a random nonce and no
 * associated data; base64 of JSON with nonce, ciphertext, key_version, encrypted_at, original_field;
 * json.dumps's ", " and ": " separators), and the relabelling an attacker can do to one.
 */
import { createCipheriv, randomBytes } from "node:crypto";
import type { KeyringState } from "../../src/keys/types.js";

/** Seals `value` for `field` as the tutorial does, under `key` labelled `label`. */
export function tutorialSeal(key: Uint8Array, label: string, field: string, value: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final(), cipher.getAuthTag()]);
  const blob = {
    nonce: nonce.toString("base64"),
    ciphertext: ciphertext.toString("base64"),
    key_version: label,
    encrypted_at: "2025-03-01T12:00:00+00:00",
    original_field: field,
  };
  const text = JSON.stringify(blob).replaceAll('","', '", "').replaceAll('":"', '": "');
  return Buffer.from(text).toString("base64");
}

/** The same blob claiming another field: no key is needed, since the label is outside the GCM tag. */
export function relabel(blob: string, field: string): string {
  const parsed = JSON.parse(Buffer.from(blob, "base64").toString("utf8")) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...parsed, original_field: field })).toString("base64");
}

/** A keyring as the tutorial's secret reads: one version, the tutorial key with its label, primary. */
export function tutorialKeyring(name: string, key: Uint8Array, label: string): KeyringState {
  return {
    name,
    revision: 1,
    primary: 1,
    minDecryptVersion: 1,
    versions: [
      {
        version: 1,
        material: new Uint8Array(key),
        createdAt: "2025-01-01T00:00:00.000Z",
        sealsReserved: 0,
        legacyLabel: label,
      },
    ],
  };
}
