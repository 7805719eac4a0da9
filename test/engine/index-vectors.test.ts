import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { blindIndex, indexKey } from "../../src/engine/index.js";
import { type FieldFormat, normalizeForIndex } from "../../src/masks/index.js";

interface IndexVectors {
  keys: Record<string, Record<string, string>>;
  cases: Array<{
    name: string;
    keyring: string;
    version: number;
    field: string;
    format: FieldFormat["format"] | null;
    input: string;
    normalized: string;
    index_key_hex: string;
    index: string;
  }>;
}

const vectors = JSON.parse(
  readFileSync(new URL("../vectors/indexes.json", import.meta.url), "utf8"),
) as IndexVectors;

const FORMATS: Record<FieldFormat["format"], FieldFormat> = {
  card: { format: "card" },
  email: { format: "email" },
  phone: { format: "phone", last: 4 },
  national_id: { format: "national_id" },
  generic: { format: "generic", first: 0, last: 4 },
};

function keyOf(keyring: string, version: number) {
  const b64 = vectors.keys[keyring]?.[String(version)];
  if (b64 === undefined) throw new Error(`no test key ${keyring} v${version}`);
  return { keyring, version, material: new Uint8Array(Buffer.from(b64, "base64")) };
}

describe("blind index vectors (test/vectors/indexes.json)", () => {
  it("has cases for every format and for the separations between fields, keyrings and versions", () => {
    const formats = new Set(vectors.cases.map((c) => c.format));
    for (const f of [...Object.keys(FORMATS), null]) expect(formats).toContain(f);
    const byName = new Map(vectors.cases.map((c) => [c.name, c.index]));
    const card = byName.get("card written with spaces");
    expect(byName.get("the same card written with dashes")).toBe(card);
    for (const other of ["under version 2", "in another field", "in another keyring"]) {
      expect(byName.get(`the same card ${other}`)?.split(".")[3]).not.toBe(card?.split(".")[3]);
    }
  });

  it.each(vectors.cases)("$name", (c) => {
    const key = keyOf(c.keyring, c.version);
    expect(normalizeForIndex(c.field, c.format === null ? undefined : FORMATS[c.format], c.input)).toBe(
      c.normalized,
    );
    expect(Buffer.from(indexKey(key, c.field)).toString("hex")).toBe(c.index_key_hex);
    expect(blindIndex(key, c.field, c.normalized)).toBe(c.index);
  });
});
