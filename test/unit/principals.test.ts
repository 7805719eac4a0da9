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
