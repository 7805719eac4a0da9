import { describe, expect, it } from "vitest";
import { parseGrants } from "../../src/auth/policy.js";
import {
  authorize,
  hashToken,
  isAllowed,
  type Principal,
  TokenAuthenticator,
} from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";

const principal = (...scopes: string[]): Principal => ({
  name: "p",
  grants: parseGrants(scopes, undefined, "p"),
});

describe("bearer tokens", () => {
  const billingToken = generateToken();
  const adminToken = generateToken();
  const auth = new TokenAuthenticator([
    {
      name: "billing",
      tokenSha256: hashToken(billingToken),
      grants: parseGrants(["decrypt:credit_card"], undefined, "b"),
    },
    { name: "admin", tokenSha256: hashToken(adminToken), grants: parseGrants(["admin"], undefined, "a") },
  ]);

  it("generates 256-bit tokens with a recognisable prefix", () => {
    expect(billingToken).toMatch(/^fsk_[A-Za-z0-9_-]{43}$/);
    expect(billingToken).not.toBe(adminToken);
  });

  it("resolves a token to its principal by hash", () => {
    expect(auth.authenticate(billingToken)?.name).toBe("billing");
    expect(auth.authenticate(adminToken)?.name).toBe("admin");
    expect(auth.authenticate(`${billingToken}x`)).toBeUndefined();
    expect(auth.authenticate("")).toBeUndefined();
  });

  it("refuses a malformed stored hash at start-up", () => {
    expect(() => new TokenAuthenticator([{ name: "x", tokenSha256: "ABC", grants: [] }])).toThrow(
      /tokenSha256/,
    );
  });
});

describe("scope shorthands", () => {
  it("allow decrypt only for the named field, or every field with decrypt:*", () => {
    expect(isAllowed(principal("decrypt:credit_card"), "decrypt", { field: "credit_card" })).toBe(true);
    expect(isAllowed(principal("decrypt:credit_card"), "decrypt", { field: "ssn" })).toBe(false);
    expect(isAllowed(principal("decrypt:*"), "decrypt", { field: "ssn" })).toBe(true);
    expect(isAllowed(principal("encrypt"), "decrypt", { field: "ssn" })).toBe(false);
  });

  it("give admin everything and others only what they hold", () => {
    for (const op of ["encrypt", "rewrap", "rotate", "push"] as const) {
      expect(isAllowed(principal("admin"), op)).toBe(true);
      expect(isAllowed(principal(), op)).toBe(false);
      expect(isAllowed(principal(op), op)).toBe(true);
    }
    expect(isAllowed(principal("rotate"), "describe")).toBe(true);
    expect(isAllowed(principal("rotate"), "retire")).toBe(true);
  });

  it("say who may not do what, without values", () => {
    expect(() => authorize(principal("encrypt"), "decrypt", { field: "ssn" })).toThrow(
      expect.objectContaining({ code: "permission_denied", message: expect.stringContaining('"p"') }),
    );
  });
});

describe("legacy values' own permission", () => {
  const rules = (...allow: unknown[]): Principal => ({
    name: "r",
    grants: parseGrants(undefined, allow, "r"),
  });

  it("is granted by legacy:decrypt and legacy:rewrap, and by admin", () => {
    expect(isAllowed(principal("legacy:decrypt"), "legacy_decrypt")).toBe(true);
    expect(isAllowed(principal("legacy:decrypt"), "legacy_rewrap")).toBe(false);
    expect(isAllowed(principal("legacy:rewrap"), "legacy_rewrap")).toBe(true);
    expect(isAllowed(principal("legacy:rewrap"), "rewrap")).toBe(false);
    expect(isAllowed(principal("admin"), "legacy_decrypt")).toBe(true);
    expect(isAllowed(principal("admin"), "legacy_rewrap")).toBe(true);
  });

  it("is never implied by decrypt:<field>, decrypt:*, rewrap or rotate", () => {
    const p = principal("decrypt:credit_card", "decrypt:*", "rewrap", "rotate", "encrypt", "push");
    for (const field of [undefined, "credit_card"]) {
      expect(isAllowed(p, "legacy_decrypt", { field })).toBe(false);
      expect(isAllowed(p, "legacy_rewrap", { field })).toBe(false);
    }
  });

  it("comes with '*' only when the rule has no field list, and follows keyring lists", () => {
    expect(isAllowed(rules({ ops: ["*"] }), "legacy_decrypt")).toBe(true);
    expect(isAllowed(rules({ ops: ["*"], fields: ["*"] }), "legacy_decrypt")).toBe(true);
    const limited = rules({ ops: ["*"], fields: ["credit_card"] });
    expect(isAllowed(limited, "decrypt", { field: "credit_card" })).toBe(true);
    expect(isAllowed(limited, "legacy_decrypt", { field: "credit_card" })).toBe(false);
    const oneRing = rules({ ops: ["legacy_decrypt"], keyrings: ["cognigy"] });
    expect(isAllowed(oneRing, "legacy_decrypt", { keyring: "cognigy" })).toBe(true);
    expect(isAllowed(oneRing, "legacy_decrypt", { keyring: "other" })).toBe(false);
  });

  it("leaves destroy and forget out of '*' beside a field list, and refuses them named beside one", () => {
    // Both erase every field at once (a key version, a whole scope): a field list cannot limit them.
    const limited = rules({ ops: ["*"], fields: ["credit_card"] });
    expect(isAllowed(limited, "encrypt", { field: "credit_card" })).toBe(true);
    for (const op of ["destroy", "forget"] as const) {
      expect(isAllowed(limited, op, { keyring: "crm" })).toBe(false);
      // Without a field list (or with "*"), "*" means everything, as admin does.
      expect(isAllowed(rules({ ops: ["*"] }), op, { keyring: "crm" })).toBe(true);
      expect(isAllowed(rules({ ops: ["*"], fields: ["*"] }), op, { keyring: "crm" })).toBe(true);
      expect(isAllowed(rules({ ops: [op], keyrings: ["crm"] }), op, { keyring: "crm" })).toBe(true);
      expect(() => rules({ ops: ["decrypt", op], fields: ["credit_card"] })).toThrow(
        new RegExp(`r\\.allow\\[0\\]\\.ops\\[1\\]: "${op}" cannot be limited by fields`),
      );
    }
  });

  it("refuses a legacy operation named beside a field list, naming the exact path", () => {
    expect(() => rules({ ops: ["decrypt", "legacy_rewrap"], fields: ["credit_card"] })).toThrow(
      /r\.allow\[0\]\.ops\[1\]: "legacy_rewrap" cannot be limited by fields/,
    );
    expect(() => parseGrants(["legacy:open"], undefined, "p")).toThrow(
      /unknown scope "legacy:open" \(expected .*legacy:decrypt or legacy:rewrap\)/,
    );
  });
});
