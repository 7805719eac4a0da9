// Writes test/vectors/envelopes.json from the compiled engine (run `npm run vectors`). Keys and nonces are
// derived from fixed labels so the file is reproducible; they are test data, never real keys.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { aesGcmSeal } from "../dist/src/engine/aead.js";
import { buildAad, sealField } from "../dist/src/engine/index.js";
import { encodeValue } from "../dist/src/engine/value-codec.js";

const derive = (label, n) => createHash("sha256").update(label).digest().subarray(0, n);
const key = (keyring, version) => derive(`fieldseal test key ${keyring} v${version}`, 32);
const nonce = (i) => derive(`fieldseal test nonce ${i}`, 12);
const b64 = (b) => Buffer.from(b).toString("base64");
const hex = (b) => Buffer.from(b).toString("hex");

const keys = {
  default: { 1: b64(key("default", 1)), 2: b64(key("default", 2)), 3: b64(key("default", 3)) },
  "cards-eu": { 1: b64(key("cards-eu", 1)), 7: b64(key("cards-eu", 7)) },
};
const session = (id) => ({ kind: "session", id });
const user = (id) => ({ kind: "user", id });

const cases = [
  ["card number string", "default", 1, session("sess_8f3a2c1d"), "credit_card", "4111111111111111"],
  ["national id under version 2", "default", 2, session("sess_8f3a2c1d"), "ssn", "999-99-0000"],
  ["empty string", "default", 3, session("s-1"), "note", ""],
  ["unicode string", "default", 3, session("s-1"), "name", "Zoë Ångström 🚀"],
  ["integer", "default", 1, session("s-1"), "pin_attempts", 3],
  ["float", "default", 2, session("s-1"), "balance", -1234.5],
  ["boolean", "default", 1, session("s-1"), "verified", true],
  ["null", "default", 1, session("s-1"), "cleared", null],
  [
    "nested object",
    "cards-eu",
    7,
    user("profile-42"),
    "card",
    { pan: "5500005555555559", exp: { m: 12, y: 2030 }, tags: ["a", 1, false, null] },
  ],
  ["array", "cards-eu", 1, user("profile-42"), "ids", ["A-1", "B-2"]],
  ["long field and scope names", "default", 3, session("x".repeat(200)), "f".repeat(256), "v"],
  ["string starting with a byte-order mark", "default", 1, session("s-1"), "note", "\uFEFFabc"],
  // The exact JSON text of a `j` value (docs/envelope.md, "JSON text"): integer-like keys first in ascending
  // order, then insertion order; shortest round-trip numbers with exponents past 1e21 and below 1e-6; only `"`,
  // `\` and control characters escaped, everything else raw UTF-8. See plaintext_hex.
  [
    "JSON text of numbers, key order and escapes",
    "default",
    2,
    session("s-1"),
    "profile",
    {
      z: 1,
      10: "ten",
      a: [1e21, 1.5e-7, 0.1, -0, 123456789012, -2.5e300],
      2: "two",
      s: 'q" b\\ n\n t\t c\u0001 d\u007f ls\u2028 é 😀 </',
    },
  ],
];

const valid = cases.map(([name, keyring, version, scope, field, value], i) => {
  const k = { keyring, version, material: key(keyring, version) };
  return {
    name,
    keyring,
    version,
    scope,
    field,
    value,
    nonce_hex: hex(nonce(i)),
    plaintext_hex: hex(encodeValue(value)),
    aad_hex: hex(buildAad(keyring, version, { scope, field })),
    envelope: sealField(k, { scope, field }, value, nonce(i)),
  };
});

const base = valid[0];
const ctx = { scope: base.scope, field: base.field };
const flip = (text, at) => {
  const c = text[at] === "A" ? "B" : "A";
  return text.slice(0, at) + c + text.slice(at + 1);
};
const invalid = [
  {
    name: "tampered payload byte",
    ...ctx,
    envelope: flip(base.envelope, base.envelope.length - 30),
    error: "envelope_tampered",
  },
  {
    name: "tampered tag byte",
    ...ctx,
    envelope: flip(base.envelope, base.envelope.length - 1),
    error: "envelope_tampered",
  },
  {
    name: "moved to another field",
    scope: base.scope,
    field: "ssn",
    envelope: base.envelope,
    error: "envelope_tampered",
  },
  {
    name: "moved to another session",
    scope: session("sess_other"),
    field: base.field,
    envelope: base.envelope,
    error: "envelope_tampered",
  },
  {
    name: "session value opened as user scope",
    scope: user("sess_8f3a2c1d"),
    field: base.field,
    envelope: base.envelope,
    error: "envelope_tampered",
  },
  {
    name: "relabelled to another existing version",
    ...ctx,
    envelope: base.envelope.replace("fs1.default.1.", "fs1.default.2."),
    error: "envelope_tampered",
  },
  {
    name: "unknown key version",
    ...ctx,
    envelope: base.envelope.replace("fs1.default.1.", "fs1.default.9."),
    error: "key_version_not_found",
  },
  {
    name: "unknown keyring",
    ...ctx,
    envelope: base.envelope.replace("fs1.default.1.", "fs1.nosuch.1."),
    error: "keyring_not_found",
  },
  { name: "truncated payload", ...ctx, envelope: base.envelope.slice(0, -8), error: "envelope_tampered" },
  {
    name: "payload shorter than nonce and tag",
    ...ctx,
    envelope: base.envelope.slice(0, 14 + 30),
    error: "envelope_malformed",
  },
  {
    name: "wrong format tag",
    ...ctx,
    envelope: base.envelope.replace("fs1.", "fs2."),
    error: "envelope_malformed",
  },
  {
    name: "missing part",
    ...ctx,
    envelope: base.envelope.replace("fs1.default.1.", "fs1.default."),
    error: "envelope_malformed",
  },
  {
    name: "version with leading zero",
    ...ctx,
    envelope: base.envelope.replace("fs1.default.1.", "fs1.default.01."),
    error: "envelope_malformed",
  },
  { name: "padding characters", ...ctx, envelope: `${base.envelope}=`, error: "envelope_malformed" },
];
// Non-canonical spellings of valid payloads. Each one decodes, with a lenient decoder (Node's Buffer, Python's
// urlsafe_b64decode, Go's non-Strict decoders), to exactly the bytes of a valid envelope, so an opener that
// does not insist on the canonical text opens it; a conforming opener must answer envelope_malformed.
// Payload lengths 2 and 3 mod 4 are the only ones with unused (padding) bits in the last character.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const payloadOf = (envelope) => envelope.slice(envelope.lastIndexOf(".") + 1);
const headerOf = (envelope) => envelope.slice(0, envelope.lastIndexOf(".") + 1);
const withPartialGroup = (charsMod4) => {
  const v = valid.find((c) => payloadOf(c.envelope).length % 4 === charsMod4);
  if (!v) throw new Error(`no valid vector has a payload of length ${charsMod4} mod 4`);
  return v;
};
const nonCanonical = [];
/** Each non-canonical case's valid original, for the check below (not written to the file). */
const originalOf = new Map();
for (const [charsMod4, unusedBits] of [
  [2, 4],
  [3, 2],
]) {
  const v = withPartialGroup(charsMod4);
  const payload = payloadOf(v.envelope);
  const last = ALPHABET.indexOf(payload.at(-1));
  if (last % 2 ** unusedBits !== 0) throw new Error("a canonical payload has zero unused bits");
  const header = headerOf(v.envelope);
  const body = payload.slice(0, -1);
  const at = (p) => {
    const c = { scope: v.scope, field: v.field, envelope: header + p, error: "envelope_malformed" };
    originalOf.set(c.envelope, v);
    return c;
  };
  nonCanonical.push(
    {
      name: `non-zero padding bits (length ${charsMod4} mod 4, lowest unused bit set)`,
      ...at(body + ALPHABET[last + 1]),
    },
    {
      name: `non-zero padding bits (length ${charsMod4} mod 4, all ${unusedBits} unused bits set)`,
      ...at(body + ALPHABET[last + 2 ** unusedBits - 1]),
    },
    { name: `= padding (length ${charsMod4} mod 4)`, ...at(payload + "=".repeat(4 - charsMod4)) },
  );
}
{
  const v = withPartialGroup(3);
  const payload = payloadOf(v.envelope);
  const header = headerOf(v.envelope);
  const at = (p) => {
    const c = { scope: v.scope, field: v.field, envelope: header + p, error: "envelope_malformed" };
    originalOf.set(c.envelope, v);
    return c;
  };
  nonCanonical.push(
    { name: "trailing newline", ...at(`${payload}\n`) },
    { name: "trailing CR LF", ...at(`${payload}\r\n`) },
    { name: "line break inside the payload", ...at(`${payload.slice(0, 20)}\n${payload.slice(20)}`) },
    { name: "space inside the payload", ...at(`${payload.slice(0, 20)} ${payload.slice(20)}`) },
    { name: "tab inside the payload", ...at(`${payload.slice(0, 20)}\t${payload.slice(20)}`) },
    { name: "standard base64 with = padding", ...at(Buffer.from(payload, "base64url").toString("base64")) },
  );
}
{
  // The base payload holds both "-" and "_": spelled in the standard alphabet it is the same bytes.
  const payload = payloadOf(base.envelope);
  if (!payload.includes("-") || !payload.includes("_")) throw new Error("base payload lacks - or _");
  const at = (p) => {
    const c = { ...ctx, envelope: headerOf(base.envelope) + p, error: "envelope_malformed" };
    originalOf.set(c.envelope, base);
    return c;
  };
  nonCanonical.push(
    { name: "standard alphabet + for -", ...at(payload.replaceAll("-", "+")) },
    { name: "standard alphabet / for _", ...at(payload.replaceAll("_", "/")) },
    { name: "dangling character (length 1 mod 4)", ...at(`${payload}A`) },
  );
}
for (const c of nonCanonical) {
  // Proof that each case is the bytes of a valid envelope to a lenient decoder (it ignores stray bits,
  // whitespace, "=", a lone last character and mixes both alphabets).
  const original = originalOf.get(c.envelope);
  const lenient = Buffer.from(payloadOf(c.envelope), "base64url");
  if (!original || !lenient.equals(Buffer.from(payloadOf(original.envelope), "base64url"))) {
    throw new Error(`non-canonical case "${c.name}" does not decode leniently to a valid payload`);
  }
  if (c.envelope === original.envelope) throw new Error(`non-canonical case "${c.name}" is canonical`);
}
invalid.push(...nonCanonical);

// A tutorial blob, made exactly as the tutorial's Python does (AESGCM(key).encrypt(nonce, utf8, None)).
const legacyKey = Buffer.from("0123456789abcdef0123456789abcdef", "utf8");
const legacyNonce = nonce(100);
const legacyCt = aesGcmSeal(legacyKey, legacyNonce, Buffer.from("4111111111111111", "utf8"));
const legacyJson = {
  nonce: b64(legacyNonce),
  ciphertext: b64(legacyCt),
  key_version: "2024-01",
  encrypted_at: "2024-05-01T10:00:00+00:00",
  original_field: "credit_card",
};
const legacy = [
  {
    name: "tutorial blob",
    key: b64(legacyKey),
    label: "2024-01",
    field: "credit_card",
    blob: Buffer.from(JSON.stringify(legacyJson)).toString("base64"),
    value: "4111111111111111",
  },
];

const out = {
  description:
    "Fieldseal fs1 envelope test vectors (docs/envelope.md). Keys are test data derived from fixed labels. " +
    "Every `valid` envelope must open to `value`; sealing `value` with `nonce_hex` must reproduce `envelope`. " +
    "Every `invalid` case must fail with `error`. `legacy` blobs open with the tutorial's raw key.",
  keys,
  valid,
  invalid,
  legacy,
};
writeFileSync(
  new URL("../test/vectors/envelopes.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log(`wrote ${valid.length} valid, ${invalid.length} invalid, ${legacy.length} legacy vectors`);
