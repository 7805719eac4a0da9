import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
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

const session = { kind: "session", id: "sess-1" } as const;
const key = (generation = 1, scope: { kind: "session" | "user"; id: string } = session) =>
  scopedKey("crm", 2, generation, scope, deriveValueKey(randomBytes(32), randomBytes(32)));

describe("scope-keyed envelopes (fs1s)", () => {
  it("seals and opens typed values, and names keyring, version and generation in the clear", () => {
    const k = key(3);
    for (const value of ["4111 1111 1111 1111", 42, { a: [1, null] }, true, ""]) {
      const text = sealScopedField(k, { scope: session, field: "card" }, value);
      expect(text).toMatch(/^fs1s\.crm\.2\.3\.[A-Za-z0-9_-]+$/);
      const env = parseScopedEnvelope(text);
      expect(env).toMatchObject({ keyring: "crm", version: 2, generation: 3 });
      expect(openScopedField(k, { scope: session, field: "card" }, env)).toStrictEqual(value);
    }
  });

  it("refuses a value moved to another scope, field or generation, or relabelled", () => {
    const k = key(1);
    const text = sealScopedField(k, { scope: session, field: "card" }, "v");
    const env = parseScopedEnvelope(text);
    const tampered = expect.objectContaining({ code: "envelope_tampered" });
    // Even with the same value key (which another scope never has), the AAD names the scope.
    for (const other of [
      { kind: "session", id: "sess-2" },
      { kind: "user", id: "sess-1" },
    ] as const) {
      const moved = scopedKey("crm", 2, 1, other, k.material);
      expect(() => openScopedField(moved, { scope: other, field: "card" }, env)).toThrow(tampered);
    }
    expect(() => openScopedField(k, { scope: session, field: "ssn" }, env)).toThrow(tampered);
    const relabelled = parseScopedEnvelope(text.replace("fs1s.crm.2.1.", "fs1s.crm.2.2."));
    const sameKeyNextGeneration = scopedKey("crm", 2, 2, session, k.material);
    expect(() =>
      openScopedField(sameKeyNextGeneration, { scope: session, field: "card" }, relabelled),
    ).toThrow(tampered);
  });

  it("refuses to use a scope key for another scope or generation than its own (a bug, never a value)", () => {
    const k = key(1);
    const text = sealScopedField(k, { scope: session, field: "card" }, "v");
    const internal = expect.objectContaining({ code: "internal" });
    expect(() => sealScopedField(k, { scope: { kind: "session", id: "x" }, field: "card" }, "v")).toThrow(
      internal,
    );
    expect(() =>
      openScopedField(
        k,
        { scope: session, field: "card" },
        parseScopedEnvelope(text.replace(".2.1.", ".2.3.")),
      ),
    ).toThrow(internal);
  });

  it("binds the generation and the fs1s tag into the AAD", () => {
    const aad = Buffer.from(scopedAad("crm", 2, 7, { scope: session, field: "card" })).toString("utf8");
    expect(aad).toBe("fs1s\0crm\x002\x007\0session:sess-1\0card");
  });

  it("refuses malformed fs1s text with envelope_malformed, never anything else", () => {
    const good = sealScopedField(key(), { scope: session, field: "f" }, "x");
    const payload = good.split(".")[4] as string;
    for (const bad of [
      "fs1s.crm.2.1",
      `fs1s.crm.2.${payload}`,
      `fs1s.crm.2.0.${payload}`,
      `fs1s.crm.02.1.${payload}`,
      `fs1s.crm.2.4294967296.${payload}`,
      `fs1s.CRM.2.1.${payload}`,
      `fs1s.crm.2.1.${payload}=`,
      `fs1s.crm.2.1.${payload}\n`,
      `fs1s.crm.2.1.${payload.slice(0, 20)}`,
      `fs1s.crm.2.1.1.${payload}`,
      `fs1.crm.2.1.${payload}`,
    ]) {
      expect(() => parseScopedEnvelope(bad), bad).toThrow(
        expect.objectContaining({ code: "envelope_malformed" }),
      );
    }
  });

  it("needs both secrets: another data key or another version's material gives another value key", () => {
    const data = randomBytes(32);
    const v1 = randomBytes(32);
    const base = Buffer.from(deriveValueKey(data, v1));
    expect(Buffer.from(deriveValueKey(data, v1))).toEqual(base);
    expect(Buffer.from(deriveValueKey(randomBytes(32), v1))).not.toEqual(base);
    expect(Buffer.from(deriveValueKey(data, randomBytes(32)))).not.toEqual(base);
  });

  it("wraps a data key bound to keyring, version, scope and generation", () => {
    const material = randomBytes(32);
    const data = randomBytes(32);
    const ctx = { keyring: "crm", version: 4, scope: "user:u42", generation: 2 };
    const wrapped = wrapDataKey(material, ctx, data);
    expect(wrapped.length).toBe(60);
    expect(Buffer.from(unwrapDataKey(material, ctx, wrapped))).toEqual(data);
    for (const other of [
      { ...ctx, scope: "user:u43" },
      { ...ctx, generation: 3 },
      { ...ctx, version: 5 },
      { ...ctx, keyring: "crm2" },
    ]) {
      expect(() => unwrapDataKey(material, other, wrapped)).toThrow(
        expect.objectContaining({ code: "internal" }),
      );
    }
    expect(() => unwrapDataKey(randomBytes(32), ctx, wrapped)).toThrow(/does not authenticate/);
  });
});
