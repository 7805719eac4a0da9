import { createCipheriv, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  envelopeKeyring,
  type JsonValue,
  openField,
  openLegacyBlob,
  parseEnvelope,
  parseLegacyBlob,
  type SealContext,
  sealField,
} from "../../src/engine/index.js";
import { MAX_VALUE_DEPTH } from "../../src/engine/value-codec.js";
import { FieldsealError } from "../../src/errors.js";

const key = { keyring: "default", version: 3, material: randomBytes(32) };
const ctx: SealContext = { scope: { kind: "session", id: "sess-1" }, field: "credit_card" };

function roundTrip(value: JsonValue, c: SealContext = ctx): JsonValue {
  return openField(key, c, parseEnvelope(sealField(key, c, value)));
}

function expectCode(fn: () => unknown, code: string): void {
  expect(fn).toThrow(expect.objectContaining({ name: "FieldsealError", code }));
}

describe("sealField / openField", () => {
  it("round-trips every JSON type as the type it was", () => {
    const values: JsonValue[] = [
      "4111111111111111",
      "",
      "ünïcödé 🚀",
      0,
      -0.5,
      1e300,
      Number.MAX_SAFE_INTEGER,
      true,
      false,
      null,
      [],
      {},
      [1, "two", null, [false]],
      { pan: "5500005555555559", exp: { m: 1, y: 2031 }, list: [{ a: null }] },
    ];
    for (const value of values) expect(roundTrip(value)).toStrictEqual(value);
  });

  it("keeps a leading byte-order mark and other invisible characters exactly", () => {
    for (const value of [
      "\uFEFFabc",
      "\uFEFF",
      "\uFEFF\uFEFF",
      "a\uFEFF",
      "\u200Bx",
      { k: "\uFEFFv" },
      ["\uFEFF"],
    ]) {
      expect(roundTrip(value)).toStrictEqual(value);
    }
  });

  it("opens a tutorial blob whose text starts with a byte-order mark with the mark kept", () => {
    const material = randomBytes(32);
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", material, nonce);
    const sealed = Buffer.concat([cipher.update("\uFEFF4111", "utf8"), cipher.final(), cipher.getAuthTag()]);
    const blob = Buffer.from(
      JSON.stringify({
        nonce: nonce.toString("base64"),
        ciphertext: sealed.toString("base64"),
        key_version: "v1",
        encrypted_at: "2024-01-01T00:00:00",
        original_field: "credit_card",
      }),
    ).toString("base64");
    expect(openLegacyBlob(material, "credit_card", parseLegacyBlob(blob))).toBe("\uFEFF4111");
  });

  it("round-trips arbitrary JSON values (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ noUnicodeString: false }), (value) => {
        // JSON has no -0: it comes back as 0, which is the JSON value it was.
        const expected = JSON.parse(JSON.stringify(value)) as JsonValue;
        expect(roundTrip(value as JsonValue)).toStrictEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("uses a fresh nonce for every seal", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(parseEnvelope(sealField(key, ctx, "x")).nonce.toString());
    expect(seen.size).toBe(2000);
  });

  it("keeps the envelope compact: under 60 characters beyond the value's base64", () => {
    const value = "4111111111111111";
    const sealed = sealField(key, ctx, value);
    const base64 = Buffer.from(value).toString("base64url").length;
    expect(sealed.length - base64).toBeLessThan(60);
    expect(sealed).toMatch(/^fs1\.default\.3\.[A-Za-z0-9_-]+$/);
  });

  it("refuses a sealed value moved to another field", () => {
    const sealed = sealField(key, ctx, "secret");
    expectCode(() => openField(key, { ...ctx, field: "ssn" }, parseEnvelope(sealed)), "envelope_tampered");
  });

  it("refuses a sealed value moved to another session", () => {
    const sealed = sealField(key, ctx, "secret");
    const other: SealContext = { scope: { kind: "session", id: "sess-2" }, field: ctx.field };
    expectCode(() => openField(key, other, parseEnvelope(sealed)), "envelope_tampered");
  });

  it("refuses a session-scoped value opened under a user scope of the same id", () => {
    const sealed = sealField(key, ctx, "secret");
    const asUser: SealContext = { scope: { kind: "user", id: "sess-1" }, field: ctx.field };
    expectCode(() => openField(key, asUser, parseEnvelope(sealed)), "envelope_tampered");
  });

  it("refuses a sealed value opened with another key", () => {
    const sealed = sealField(key, ctx, "secret");
    const other = { ...key, material: randomBytes(32) };
    expectCode(() => openField(other, ctx, parseEnvelope(sealed)), "envelope_tampered");
  });

  it("fails every single-character change of an envelope", () => {
    const sealed = sealField(key, ctx, { card: "4111111111111111" });
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let checked = 0;
    for (let i = 0; i < sealed.length; i++) {
      for (const replacement of [alphabet[(alphabet.indexOf(sealed[i] ?? "A") + 1) % alphabet.length], "."]) {
        if (replacement === undefined || replacement === sealed[i]) continue;
        const changed = sealed.slice(0, i) + replacement + sealed.slice(i + 1);
        expect(() => {
          const parsed = parseEnvelope(changed);
          // A changed header names another key; that key (when it exists) still gets this key's material.
          openField({ ...key, keyring: parsed.keyring, version: parsed.version }, ctx, parsed);
        }).toThrow(FieldsealError);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(sealed.length);
  });

  it("fails every single-byte change of the payload with envelope_tampered", () => {
    const sealed = sealField(key, ctx, "4111111111111111");
    const parsed = parseEnvelope(sealed);
    const payload = Buffer.concat([parsed.nonce, parsed.sealed]);
    for (let i = 0; i < payload.length; i++) {
      const changed = Buffer.from(payload);
      changed[i] = (changed[i] ?? 0) ^ 0x01;
      const text = `fs1.default.3.${changed.toString("base64url")}`;
      expectCode(() => openField(key, ctx, parseEnvelope(text)), "envelope_tampered");
    }
  });

  it("refuses values JSON cannot hold, with invalid_argument", () => {
    expectCode(() => sealField(key, ctx, Number.NaN), "invalid_argument");
    expectCode(() => sealField(key, ctx, Number.POSITIVE_INFINITY), "invalid_argument");
    expectCode(() => sealField(key, ctx, "\ud800"), "invalid_argument");
    expectCode(() => sealField(key, ctx, new Date() as unknown as JsonValue), "invalid_argument");
  });

  it("refuses values JSON cannot hold anywhere inside an object or array", () => {
    const nested = (inner: unknown) => ({ a: [1, { b: "x", c: inner }] }) as unknown as JsonValue;
    const bad = [Number.NaN, undefined, () => 1, new Date(), new Map(), Object.create(null), 1n, Symbol()];
    for (const inner of bad) expectCode(() => sealField(key, ctx, nested(inner)), "invalid_argument");
    let deep: JsonValue = "x";
    for (let i = 0; i < MAX_VALUE_DEPTH; i++) deep = [deep];
    expect(roundTrip(deep)).toStrictEqual(deep);
    expectCode(() => sealField(key, ctx, { deep }), "invalid_argument");
  });

  it("looks only at a value's own properties, as JSON.stringify does", () => {
    const prototype = Object.prototype as Record<string, unknown>;
    prototype.inherited = () => "not JSON";
    try {
      expect(roundTrip({ a: [{ b: 1 }] })).toStrictEqual({ a: [{ b: 1 }] });
    } finally {
      delete prototype.inherited;
    }
  });

  it("refuses a value over 64 KiB with too_large", () => {
    expectCode(() => sealField(key, ctx, "x".repeat(64 * 1024)), "too_large");
    expect(roundTrip("x".repeat(64 * 1024 - 1))).toHaveLength(64 * 1024 - 1);
  });

  it("refuses empty, NUL-bearing or oversized field and scope names", () => {
    expectCode(() => sealField(key, { ...ctx, field: "" }, 1), "invalid_argument");
    expectCode(() => sealField(key, { ...ctx, field: "a\0b" }, 1), "invalid_argument");
    expectCode(() => sealField(key, { ...ctx, field: "é".repeat(129) }, 1), "invalid_argument");
    expectCode(
      () => sealField(key, { scope: { kind: "session", id: "" }, field: "f" }, 1),
      "invalid_argument",
    );
    expectCode(() => sealField({ ...key, keyring: "Bad.Name" }, ctx, 1), "invalid_argument");
  });

  it("opens values sealed in more contexts than the engine keeps AAD for", () => {
    // Sessions interleaved across many fields: every kind of AAD cache miss, and more entries than it holds.
    const contexts = Array.from(
      { length: 3000 },
      (_, i): SealContext => ({ scope: { kind: "session", id: `sess-${i % 7}` }, field: `field_${i % 401}` }),
    );
    const sealed = contexts.map((c, i) => sealField(key, c, `value ${i}`));
    contexts.forEach((c, i) => {
      expect(openField(key, c, parseEnvelope(sealed[i] ?? ""))).toBe(`value ${i}`);
    });
    expectCode(() => openField(key, contexts[1] ?? ctx, parseEnvelope(sealed[0] ?? "")), "envelope_tampered");
    expectCode(() => openField(key, contexts[7] ?? ctx, parseEnvelope(sealed[0] ?? "")), "envelope_tampered");
  });

  it("refuses an invalid context every time, also after a valid one was used", () => {
    sealField(key, ctx, "x");
    const session = (id: string): SealContext => ({ scope: { kind: "session", id }, field: ctx.field });
    for (let i = 0; i < 2; i++) {
      expectCode(() => sealField(key, { ...ctx, field: "credit_card\0" }, "x"), "invalid_argument");
      expectCode(() => sealField({ ...key, keyring: "Default" }, ctx, "x"), "invalid_argument");
      expectCode(
        () => sealField(key, { scope: { kind: "user", id: "" }, field: "f" }, "x"),
        "invalid_argument",
      );
      // The same keyring, version and field as the valid context, with a bad session id.
      for (const id of ["", "a\0b", "\ud800", "é".repeat(129)]) {
        expectCode(() => sealField(key, session(id), "x"), "invalid_argument");
        expectCode(
          () => openField(key, session(id), parseEnvelope(sealField(key, ctx, "x"))),
          "invalid_argument",
        );
      }
    }
  });
});

describe("envelope parser", () => {
  it("reads the keyring from the clear header alone, and refuses a header without a valid one", () => {
    const sealed = sealField(key, ctx, "x");
    expect(envelopeKeyring(sealed)).toBe("default");
    expect(envelopeKeyring(sealed)).toBe(parseEnvelope(sealed).keyring);
    for (const bad of ["fs1.", "fs1.Bad.1.AAAA", "fs1.default", "fs2.default.1.AAAA", "nothing"]) {
      expectCode(() => envelopeKeyring(bad), "envelope_malformed");
    }
  });

  it("throws nothing but FieldsealError for any input (property)", () => {
    const arbitraryText = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc
        .tuple(fc.constantFrom("fs1", "fs2", ""), fc.string(), fc.string(), fc.base64String())
        .map((parts) => parts.join(".")),
    );
    fc.assert(
      fc.property(arbitraryText, (text) => {
        for (const parse of [parseEnvelope, parseLegacyBlob]) {
          try {
            parse(text);
          } catch (err) {
            expect(err).toBeInstanceOf(FieldsealError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("parses structured-random legacy blobs or refuses them with a FieldsealError (property)", () => {
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
    const field = <T>(good: fc.Arbitrary<T>) =>
      fc.oneof(good, fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined));
    const blob = fc.record({
      nonce: field(fc.uint8Array({ minLength: 0, maxLength: 16 }).map(b64)),
      ciphertext: field(fc.uint8Array({ minLength: 0, maxLength: 64 }).map(b64)),
      key_version: field(fc.oneof(fc.string({ maxLength: 10 }), fc.integer())),
      encrypted_at: field(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
      original_field: field(fc.string({ maxLength: 20 })),
    });
    const text = fc.oneof(
      blob.map((b) => Buffer.from(JSON.stringify(b)).toString("base64")),
      fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "").toString("base64")),
      fc.uint8Array({ maxLength: 300 }).map(b64),
    );
    fc.assert(
      fc.property(text, (t) => {
        try {
          const parsed = parseLegacyBlob(t);
          expect(parsed.nonce).toHaveLength(12);
          expect(parsed.sealed.length).toBeGreaterThanOrEqual(16);
        } catch (err) {
          expect(err).toBeInstanceOf(FieldsealError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("never opens random payloads (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 29, maxLength: 200 }), (bytes) => {
        const text = `fs1.default.3.${Buffer.from(bytes).toString("base64url")}`;
        expectCode(() => openField(key, ctx, parseEnvelope(text)), "envelope_tampered");
      }),
      { numRuns: 300 },
    );
  });

  it("refuses every spelling of a payload but the canonical one, although Node's decoder takes them", () => {
    const sealed = sealField(key, ctx, "4111111111111111");
    const payload = sealed.split(".")[3] ?? "";
    const head = sealed.slice(0, sealed.length - payload.length);
    const spellings = [
      "",
      `${payload}=`,
      `${payload}A`,
      ` ${payload}`,
      `${payload.slice(0, 10)}\n${payload.slice(10)}`,
      payload.replaceAll("-", "+").replaceAll("_", "/"),
      `${payload.slice(0, -1)}${String.fromCharCode(0x100 + payload.charCodeAt(payload.length - 1))}`,
    ].filter((p) => p !== payload);
    expect(spellings.length).toBeGreaterThanOrEqual(6);
    for (const spelling of spellings) expectCode(() => parseEnvelope(head + spelling), "envelope_malformed");
    expect(parseEnvelope(head + payload).sealed).toHaveLength(16 + 1 + 16);
  });

  it("rejects oversized input before decoding it", () => {
    expectCode(() => parseEnvelope(`fs1.default.1.${"A".repeat(100_000)}`), "too_large");
  });

  it("never quotes the sealed value in its messages", () => {
    const sealed = sealField(key, ctx, "CANARY-4111");
    const payload = sealed.split(".")[3] ?? "";
    try {
      openField(key, { ...ctx, field: "other" }, parseEnvelope(sealed));
    } catch (err) {
      expect(String(err)).not.toContain(payload.slice(0, 16));
      expect(String(err)).not.toContain("CANARY");
    }
  });
});
