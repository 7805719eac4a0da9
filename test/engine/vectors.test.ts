import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildAad,
  type JsonValue,
  openField,
  openLegacyBlob,
  parseEnvelope,
  parseLegacyBlob,
  type Scope,
  sealField,
} from "../../src/engine/index.js";
import { FieldsealError } from "../../src/errors.js";

interface Vectors {
  keys: Record<string, Record<string, string>>;
  valid: Array<{
    name: string;
    keyring: string;
    version: number;
    scope: Scope;
    field: string;
    value: JsonValue;
    nonce_hex: string;
    aad_hex: string;
    envelope: string;
  }>;
  invalid: Array<{ name: string; scope: Scope; field: string; envelope: string; error: string }>;
  legacy: Array<{ name: string; key: string; label: string; field: string; blob: string; value: string }>;
}

const vectors = JSON.parse(
  readFileSync(new URL("../vectors/envelopes.json", import.meta.url), "utf8"),
) as Vectors;

/** What any opener does: parse, look the key up by the header's keyring and version, open. */
function open(envelope: string, scope: Scope, field: string): JsonValue {
  const parsed = parseEnvelope(envelope);
  const versions = vectors.keys[parsed.keyring];
  if (versions === undefined) throw new FieldsealError("keyring_not_found", "no such keyring");
  const material = versions[String(parsed.version)];
  if (material === undefined) throw new FieldsealError("key_version_not_found", "no such version");
  const key = { keyring: parsed.keyring, version: parsed.version, material: Buffer.from(material, "base64") };
  return openField(key, { scope, field }, parsed);
}

describe("test vectors", () => {
  it("has cases of every kind", () => {
    expect(vectors.valid.length).toBeGreaterThanOrEqual(10);
    expect(vectors.invalid.length).toBeGreaterThanOrEqual(10);
    expect(vectors.legacy.length).toBeGreaterThanOrEqual(1);
  });

  for (const v of vectors.valid) {
    it(`opens: ${v.name}`, () => {
      expect(open(v.envelope, v.scope, v.field)).toStrictEqual(v.value);
    });
    it(`seals byte-for-byte: ${v.name}`, () => {
      const material = Buffer.from(vectors.keys[v.keyring]?.[String(v.version)] ?? "", "base64");
      const key = { keyring: v.keyring, version: v.version, material };
      const nonce = Buffer.from(v.nonce_hex, "hex");
      expect(sealField(key, { scope: v.scope, field: v.field }, v.value, nonce)).toBe(v.envelope);
      expect(Buffer.from(buildAad(v.keyring, v.version, v)).toString("hex")).toBe(v.aad_hex);
    });
  }

  for (const v of vectors.invalid) {
    it(`refuses: ${v.name} (${v.error})`, () => {
      expect(() => open(v.envelope, v.scope, v.field)).toThrow(
        expect.objectContaining({ name: "FieldsealError", code: v.error }),
      );
    });
  }

  for (const v of vectors.legacy) {
    it(`opens the tutorial's blob: ${v.name}`, () => {
      const blob = parseLegacyBlob(v.blob);
      expect(blob.keyVersionLabel).toBe(v.label);
      expect(openLegacyBlob(Buffer.from(v.key, "base64"), v.field, blob)).toBe(v.value);
    });
    it(`refuses the tutorial's blob in another field: ${v.name}`, () => {
      const blob = parseLegacyBlob(v.blob);
      expect(() => openLegacyBlob(Buffer.from(v.key, "base64"), "ssn", blob)).toThrow(
        expect.objectContaining({ code: "envelope_tampered" }),
      );
    });
  }
});
