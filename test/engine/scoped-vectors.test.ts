import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { JsonValue, Scope } from "../../src/engine/index.js";
import {
  deriveValueKey,
  openScopedField,
  parseScopedEnvelope,
  scopedAad,
  scopedKey,
  sealScopedField,
  unwrapDataKey,
  wrapDataKey,
} from "../../src/engine/scoped.js";
import { FieldsealError } from "../../src/errors.js";

interface ScopedVectors {
  keys: Record<string, Record<string, string>>;
  scope_keys: Array<{
    keyring: string;
    scope: string;
    generation: number;
    data_key: string;
    wrap_version: number;
    wrapped_hex: string;
  }>;
  valid: Array<{
    name: string;
    keyring: string;
    version: number;
    generation: number;
    scope: Scope;
    field: string;
    value: JsonValue;
    nonce_hex: string;
    aad_hex: string;
    value_key_hex: string;
    envelope: string;
  }>;
  invalid: Array<{ name: string; scope: Scope; field: string; envelope: string; error: string }>;
}

const vectors = JSON.parse(
  readFileSync(new URL("../vectors/scoped.json", import.meta.url), "utf8"),
) as ScopedVectors;

const versionKey = (keyring: string, version: number) => {
  const material = vectors.keys[keyring]?.[String(version)];
  if (material === undefined) throw new FieldsealError("key_version_not_found", "no such version");
  return Buffer.from(material, "base64");
};
const dataKey = (keyring: string, scope: string, generation: number) => {
  const found = vectors.scope_keys.find(
    (k) => k.keyring === keyring && k.scope === scope && k.generation === generation,
  );
  // The offline opener's own code: the engine has no such case (the server says scope_forgotten).
  if (found === undefined) throw Object.assign(new Error("no data key"), { code: "scope_key_not_found" });
  return Buffer.from(found.data_key, "base64");
};

/** What an offline opener does: parse, find both keys, derive the value key, open. */
function open(envelope: string, scope: Scope, field: string): JsonValue {
  const parsed = parseScopedEnvelope(envelope);
  const material = deriveValueKey(
    dataKey(parsed.keyring, `${scope.kind}:${scope.id}`, parsed.generation),
    versionKey(parsed.keyring, parsed.version),
  );
  const key = scopedKey(parsed.keyring, parsed.version, parsed.generation, scope, material);
  return openScopedField(key, { scope, field }, parsed);
}

describe("scope-keyed test vectors", () => {
  it("has cases of every kind", () => {
    expect(vectors.valid.length).toBeGreaterThanOrEqual(4);
    expect(vectors.invalid.length).toBeGreaterThanOrEqual(10);
    expect(vectors.scope_keys.length).toBeGreaterThanOrEqual(3);
  });

  for (const v of vectors.valid) {
    it(`opens: ${v.name}`, () => {
      expect(open(v.envelope, v.scope, v.field)).toStrictEqual(v.value);
    });
    it(`seals byte-for-byte: ${v.name}`, () => {
      const material = deriveValueKey(
        dataKey(v.keyring, `${v.scope.kind}:${v.scope.id}`, v.generation),
        versionKey(v.keyring, v.version),
      );
      expect(Buffer.from(material).toString("hex")).toBe(v.value_key_hex);
      const key = scopedKey(v.keyring, v.version, v.generation, v.scope, material);
      const sealed = sealScopedField(key, v, v.value, Buffer.from(v.nonce_hex, "hex"));
      expect(sealed).toBe(v.envelope);
      expect(Buffer.from(scopedAad(v.keyring, v.version, v.generation, v)).toString("hex")).toBe(v.aad_hex);
    });
  }

  for (const v of vectors.invalid) {
    it(`refuses: ${v.name} (${v.error})`, () => {
      expect(() => open(v.envelope, v.scope, v.field)).toThrow(expect.objectContaining({ code: v.error }));
    });
  }

  for (const k of vectors.scope_keys) {
    it(`unwraps and re-wraps the data key of ${k.scope} generation ${k.generation}`, () => {
      const ctx = { keyring: k.keyring, version: k.wrap_version, scope: k.scope, generation: k.generation };
      const wrapped = Buffer.from(k.wrapped_hex, "hex");
      const material = versionKey(k.keyring, k.wrap_version);
      expect(Buffer.from(unwrapDataKey(material, ctx, wrapped)).toString("base64")).toBe(k.data_key);
      const again = wrapDataKey(material, ctx, Buffer.from(k.data_key, "base64"), wrapped.subarray(0, 12));
      expect(Buffer.from(again).toString("hex")).toBe(k.wrapped_hex);
    });
  }
});
