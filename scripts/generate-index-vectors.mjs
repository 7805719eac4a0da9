// Writes test/vectors/indexes.json from the compiled code (run by `npm run vectors`): blind indexes
// (docs/security.md, "Blind indexes") that the TypeScript, Python and Go code must all reproduce. Keys are
// derived from the same fixed labels as the envelope vectors; they are test data, never real keys.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { blindIndex, indexKey } from "../dist/src/engine/index.js";
import { normalizeForIndex } from "../dist/src/masks/index.js";

const key = (keyring, version) => ({
  keyring,
  version,
  material: createHash("sha256").update(`fieldseal test key ${keyring} v${version}`).digest().subarray(0, 32),
});
const b64 = (b) => Buffer.from(b).toString("base64");
const hex = (b) => Buffer.from(b).toString("hex");

const keys = {
  default: { 1: b64(key("default", 1).material), 2: b64(key("default", 2).material) },
  "cards-eu": { 7: b64(key("cards-eu", 7).material) },
};

// [name, keyring, version, field, format (null: none, which indexes as generic), input]
const cases = [
  ["card written with spaces", "default", 1, "credit_card", "card", "4111 1111 1111 1111"],
  ["the same card written with dashes", "default", 1, "credit_card", "card", " 4111-1111-1111-1111 "],
  ["the same card under version 2", "default", 2, "credit_card", "card", "4111111111111111"],
  ["the same card in another field", "default", 1, "card_on_file", "card", "4111111111111111"],
  ["the same card in another keyring", "cards-eu", 7, "credit_card", "card", "4111111111111111"],
  ["e-mail with capitals and white space", "default", 1, "email", "email", " Jane.Doe+news@Example.COM\n"],
  ["e-mail with letters outside A-Z", "default", 1, "email", "email", "ÆRØ@Example.dk"],
  ["phone with a plus and grouping", "default", 1, "phone", "phone", "+49 (30) 1234-5678"],
  ["national id with dashes", "default", 1, "ssn", "national_id", "123-45-6789"],
  ["national id in full-width letters", "default", 2, "national_id", "national_id", "ａｂ 123456 ｃ"],
  [
    "generic in NFD with surrounding spaces",
    "default",
    1,
    "name",
    "generic",
    "\u3000Zoe\u0301 Ångström\uFEFF",
  ],
  ["field without a format", "default", 1, "note", null, "  Order #42: 🚀  "],
  // U+001C and U+0085 are not white space to JavaScript's trim (Python's strip and Go's unicode.IsSpace
  // disagree), so they stay.
  ["characters that only some languages call white space", "default", 1, "note", null, "\u001cAb\u0085 \t"],
  ["long field name", "cards-eu", 7, "f".repeat(256), null, "v"],
  // Adversarial inputs: each language must apply the same rules and nothing more.
  [
    "card between a BOM and an ideographic space",
    "default",
    1,
    "credit_card",
    "card",
    "\uFEFF4111 1111 1111 1111\u3000",
  ],
  [
    "phone between a no-break space and a line separator",
    "default",
    1,
    "phone",
    "phone",
    "\u00A0+1 (555) 010-9999\u2028",
  ],
  // Kelvin sign and dotted capital I are letters but not A-Z: left as written (no Unicode case mapping).
  [
    "e-mail with letters that Unicode lowercasing would change",
    "default",
    1,
    "email",
    "email",
    "\u212A\u0130x@EXAMPLE.com",
  ],
  // NFKC turns the ligature, circled twelve, roman twelve, Kelvin sign and full-width separators into ASCII.
  [
    "national id written with compatibility characters",
    "default",
    1,
    "ssn",
    "national_id",
    "\uFB01\uFF0D\u246B\uFF0E\u216B\u3000\u212A",
  ],
  // NFC reorders combining marks by class (dot below before dot above) and composes Hangul jamo.
  [
    "generic needing canonical reordering and jamo composition",
    "default",
    1,
    "name",
    "generic",
    "q\u0307\u0323 \u1100\u1161\u11A8",
  ],
  // Zero-width space, bidi override and NEL are not white space to trim: they stay, in every language.
  [
    "generic with invisible characters at its ends",
    "default",
    1,
    "note",
    null,
    "\u200B\u202Eabc\u202C\u0085",
  ],
  ["generic with astral characters", "default", 1, "note", null, "\u{1D400}\u{1F468}\u200D\u{1F469}"],
  // Field names are bytes: the NFC and NFD spellings of one name are two fields with two index keys.
  ["field name in NFC", "default", 1, "caf\u00E9", null, "v"],
  ["field name in NFD", "default", 1, "cafe\u0301", null, "v"],
  ["field name with a trailing space", "default", 1, "credit_card ", null, "4111111111111111"],
];

const formats = {
  card: { format: "card" },
  email: { format: "email" },
  phone: { format: "phone", last: 4 },
  national_id: { format: "national_id" },
  generic: { format: "generic", first: 0, last: 4 },
};

const out = {
  description:
    "Fieldseal blind index test vectors (docs/security.md, Blind indexes). index_key = HKDF-SHA256(key, salt empty, info 'fieldseal index v1' NUL keyring NUL field, 32 bytes); index = fx1.<keyring>.<version>.<base64url of HMAC-SHA256(index_key, UTF-8 normalized)[:16]>. normalize(format, input) must give `normalized`. Keys are test data derived from fixed labels.",
  keys,
  cases: cases.map(([name, keyring, version, field, format, input]) => {
    const k = key(keyring, version);
    const normalized = normalizeForIndex(field, format === null ? undefined : formats[format], input);
    return {
      name,
      keyring,
      version,
      field,
      format,
      input,
      normalized,
      index_key_hex: hex(indexKey(k, field)),
      index: blindIndex(k, field, normalized),
    };
  }),
};

writeFileSync(new URL("../test/vectors/indexes.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote test/vectors/indexes.json (${out.cases.length} cases)`);
