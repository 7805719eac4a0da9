// Writes test/vectors/scoped.json, the vectors of scope-keyed fs1s values (docs/envelope.md, "Scope-keyed
// values"), from the compiled engine; run by `npm run vectors` after generate-vectors.mjs. Keys, data keys
// and nonces are derived from fixed labels so the file is reproducible; they are test data, never real keys.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import {
  deriveValueKey,
  scopedAad,
  scopedKey,
  sealScopedField,
  wrapDataKey,
} from "../dist/src/engine/scoped.js";
import { encodeValue } from "../dist/src/engine/value-codec.js";

const derive = (label, n) => createHash("sha256").update(label).digest().subarray(0, n);
const key = (keyring, version) => derive(`fieldseal test key ${keyring} v${version}`, 32);
const dataKey = (keyring, scope, generation) =>
  derive(`fieldseal test data key ${keyring} ${scope} g${generation}`, 32);
const nonce = (i) => derive(`fieldseal test scoped nonce ${i}`, 12);
const b64 = (b) => Buffer.from(b).toString("base64");
const hex = (b) => Buffer.from(b).toString("hex");
const scopeText = (s) => `${s.kind}:${s.id}`;

const keys = { crm: { 1: b64(key("crm", 1)), 2: b64(key("crm", 2)) } };
const user = { kind: "user", id: "u42" };
const session = { kind: "session", id: "sess_8f3a2c1d" };

// The scopes' data keys, as the scope key database holds them unwrapped; with each one's wrapping.
const scopeKeyCases = [
  ["crm", user, 1, 1],
  ["crm", user, 2, 2],
  ["crm", session, 1, 1],
];
const scopeKeys = scopeKeyCases.map(([keyring, scope, generation, wrapVersion], i) => {
  const data = dataKey(keyring, scopeText(scope), generation);
  const ctx = { keyring, version: wrapVersion, scope: scopeText(scope), generation };
  return {
    keyring,
    scope: scopeText(scope),
    generation,
    data_key: b64(data),
    wrap_version: wrapVersion,
    wrapped_hex: hex(wrapDataKey(key(keyring, wrapVersion), ctx, data, nonce(100 + i))),
  };
});

const cases = [
  ["card number under version 1", "crm", 1, 1, user, "credit_card", "4111111111111111"],
  ["same scope under version 2", "crm", 2, 1, user, "credit_card", "5500005555555559"],
  ["second generation after a forget", "crm", 2, 2, user, "credit_card", "4000056655665556"],
  ["JSON object in a session scope", "crm", 1, 1, session, "address", { city: "Zürich", zip: 8001 }],
];
const valid = cases.map(([name, keyring, version, generation, scope, field, value], i) => {
  const valueKey = deriveValueKey(dataKey(keyring, scopeText(scope), generation), key(keyring, version));
  const k = scopedKey(keyring, version, generation, scope, valueKey);
  return {
    name,
    keyring,
    version,
    generation,
    scope,
    field,
    value,
    nonce_hex: hex(nonce(i)),
    plaintext_hex: hex(encodeValue(value)),
    aad_hex: hex(scopedAad(keyring, version, generation, { scope, field })),
    value_key_hex: hex(valueKey),
    envelope: sealScopedField(k, { scope, field }, value, nonce(i)),
  };
});

const base = valid[0];
const ctx = { scope: base.scope, field: base.field };
const flip = (text, at) => text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
const invalid = [
  {
    name: "tampered payload byte",
    ...ctx,
    envelope: flip(base.envelope, base.envelope.length - 30),
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
    name: "moved to another scope with a data key",
    scope: session,
    field: base.field,
    envelope: base.envelope,
    error: "envelope_tampered",
  },
  {
    name: "relabelled to another generation",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.1.2."),
    error: "envelope_tampered",
  },
  {
    name: "relabelled to another key version",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.2.1."),
    error: "envelope_tampered",
  },
  {
    name: "generation without a data key (forgotten)",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.1.3."),
    error: "scope_key_not_found",
  },
  {
    name: "unknown key version",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.9.1."),
    error: "key_version_not_found",
  },
  {
    name: "generation zero",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.1.0."),
    error: "envelope_malformed",
  },
  {
    name: "generation with a leading zero",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.1.01."),
    error: "envelope_malformed",
  },
  {
    name: "missing generation",
    ...ctx,
    envelope: base.envelope.replace("fs1s.crm.1.1.", "fs1s.crm.1."),
    error: "envelope_malformed",
  },
  {
    name: "fs1 tag with five parts",
    ...ctx,
    envelope: base.envelope.replace("fs1s.", "fs1."),
    error: "envelope_malformed",
  },
  { name: "padding characters", ...ctx, envelope: `${base.envelope}=`, error: "envelope_malformed" },
  { name: "trailing newline", ...ctx, envelope: `${base.envelope}\n`, error: "envelope_malformed" },
];

const out = {
  description:
    "Fieldseal fs1s (scope-keyed) envelope test vectors (docs/envelope.md). Keys and data keys are test data " +
    "derived from fixed labels. `keys` are keyring versions; `scope_keys` are the scopes' data keys (an offline " +
    "opener is given them) with their wrapping under `wrap_version`. The value key is HMAC-SHA256(data key, " +
    "'fs1s' NUL || version key) (`value_key_hex`). Every `valid` envelope must open to `value`; sealing it with " +
    "`nonce_hex` must reproduce `envelope`. Every `invalid` case must fail with `error` (`scope_key_not_found`: " +
    "no data key of that keyring, scope and generation was given).",
  keys,
  scope_keys: scopeKeys,
  valid,
  invalid,
};
writeFileSync(new URL("../test/vectors/scoped.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
console.log(
  `wrote ${valid.length} valid, ${invalid.length} invalid scoped vectors, ${scopeKeys.length} scope keys`,
);
