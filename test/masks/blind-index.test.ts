import { createHash, createHmac, hkdfSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { blindIndex, INDEX_BYTES, indexKey } from "../../src/engine/index.js";
import { isFieldsealError } from "../../src/errors.js";
import { type FieldFormat, normalizeForIndex } from "../../src/masks/index.js";

const material = (label: string) => new Uint8Array(createHash("sha256").update(label).digest());
const key = (keyring: string, version: number) => ({
  keyring,
  version,
  material: material(`fieldseal test key ${keyring} v${version}`),
});
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const RUNS = { numRuns: 200, seed: 4242 };

/** node's own RFC 5869 implementation, to check the HMAC-by-hand one in the engine. */
function hkdfByNode(ikm: Uint8Array, info: Buffer): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, new Uint8Array(0), info, 32));
}

describe("index keys", () => {
  it("are HKDF-SHA256 of the version's material with info 'fieldseal index v1' NUL keyring NUL field", () => {
    const k = key("default", 1);
    const info = Buffer.from("fieldseal index v1\0default\0credit_card", "utf8");
    expect(hex(indexKey(k, "credit_card"))).toBe(hex(hkdfByNode(k.material, info)));
  });

  it("match node's HKDF for any material and field (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ minLength: 1, maxLength: 64 }),
        (m, field) => {
          fc.pre(!field.includes("\0") && field.isWellFormed());
          const k = { keyring: "kr", version: 1, material: m };
          const info = Buffer.from(`fieldseal index v1\0kr\0${field}`, "utf8");
          expect(hex(indexKey(k, field))).toBe(hex(hkdfByNode(m, info)));
        },
      ),
      RUNS,
    );
  });

  it("never equal the sealing key, and differ by field, keyring and version", () => {
    const seen = new Set<string>();
    for (const k of [key("default", 1), key("default", 2), key("cards", 1)]) {
      seen.add(hex(k.material));
      for (const field of ["credit_card", "email", "credit_card\u0301"]) seen.add(hex(indexKey(k, field)));
    }
    expect(seen.size).toBe(3 + 9);
  });

  it("refuses a field name that could make the info ambiguous", () => {
    expect(() => indexKey(key("default", 1), "a\0b")).toThrow(/NUL/);
    expect(() => indexKey(key("default", 1), "")).toThrow(/empty/);
  });
});

describe("blind indexes", () => {
  it("are fx1.<keyring>.<version>.<16 bytes base64url> of HMAC-SHA256 under the index key", () => {
    const k = key("default", 3);
    const text = blindIndex(k, "email", "jane@example.com");
    const mac = createHmac("sha256", indexKey(k, "email")).update("jane@example.com").digest();
    expect(text).toBe(`fx1.default.3.${mac.subarray(0, INDEX_BYTES).toString("base64url")}`);
    expect(text).toMatch(/^fx1\.default\.3\.[A-Za-z0-9_-]{22}$/);
  });

  it("are equal for equal values and differ for different values, fields, keyrings or versions (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (a, b) => {
          const k = key("default", 1);
          expect(blindIndex(k, "f", a)).toBe(blindIndex(key("default", 1), "f", a));
          if (a !== b) expect(blindIndex(k, "f", a)).not.toBe(blindIndex(k, "f", b));
          const mac = (t: string) => t.split(".")[3];
          expect(mac(blindIndex(k, "f", a))).not.toBe(mac(blindIndex(k, "g", a)));
          expect(mac(blindIndex(k, "f", a))).not.toBe(mac(blindIndex(key("other", 1), "f", a)));
          expect(mac(blindIndex(k, "f", a))).not.toBe(mac(blindIndex(key("default", 2), "f", a)));
        },
      ),
      RUNS,
    );
  });
});

describe("normal forms for indexes", () => {
  const cases: Array<[FieldFormat | undefined, string[], string]> = [
    [
      { format: "card" },
      ["4111111111111111", "4111 1111 1111 1111", " 4111-1111-1111-1111 "],
      "4111111111111111",
    ],
    [
      { format: "email" },
      ["jane@example.com", " Jane@Example.COM\n", "JANE@EXAMPLE.COM"],
      "jane@example.com",
    ],
    [
      { format: "phone", last: 4 },
      ["+49 30 1234 5678", "+49 (30) 1234-5678", "4930.1234.5678"],
      "493012345678",
    ],
    [{ format: "national_id" }, ["123-45-6789", "123 45 6789", "123.45.6789"], "123456789"],
    [{ format: "national_id" }, ["ab-123456-c", "AB123456C", "ＡＢ１２３４５６Ｃ"], "AB123456C"],
    [{ format: "generic", first: 0, last: 4 }, ["Zoe\u0301", "  Zoé\t"], "Zoé"],
    [undefined, ["Ab 1", " Ab 1 "], "Ab 1"],
  ];

  it.each(cases)("%j: every way of writing it has one normal form", (format, inputs, normal) => {
    for (const input of inputs) expect(normalizeForIndex("f", format, input)).toBe(normal);
  });

  it("keeps letters outside A-Z as written in an e-mail address, and keeps dots and +tags", () => {
    expect(normalizeForIndex("f", { format: "email" }, "Ærø+x.y@Example.dk")).toBe("Ærø+x.y@example.dk");
  });

  it("refuses what it would refuse to seal, naming field and format only (canary)", () => {
    for (const [format, value] of [
      [{ format: "card" }, "4111111111111112"],
      [{ format: "email" }, "CANARY-no-at"],
      [undefined, "   "],
      [{ format: "phone", last: 4 }, 4930123456],
    ] as const) {
      let caught: unknown;
      try {
        normalizeForIndex("secret_field", format, value);
      } catch (err) {
        caught = err;
      }
      expect(isFieldsealError(caught, "field_format_invalid")).toBe(true);
      const message = (caught as Error).message;
      expect(message).toMatch(
        new RegExp(`^field "secret_field" does not fit its format "${format?.format ?? "generic"}"`),
      );
      expect(message).not.toMatch(/CANARY|4111|4930/);
    }
  });
});
