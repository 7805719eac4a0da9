import { describe, expect, it } from "vitest";
import { authorize, hashToken, isAllowed, TokenAuthenticator } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";

describe("bearer tokens", () => {
  const billingToken = generateToken();
  const adminToken = generateToken();
  const auth = new TokenAuthenticator([
    { name: "billing", tokenSha256: hashToken(billingToken), scopes: ["decrypt:credit_card"] },
    { name: "admin", tokenSha256: hashToken(adminToken), scopes: ["admin"] },
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
    expect(() => new TokenAuthenticator([{ name: "x", tokenSha256: "ABC", scopes: [] }])).toThrow(
      /tokenSha256/,
    );
  });
});

describe("scopes", () => {
  const p = (...scopes: string[]) => ({ name: "p", scopes: new Set(scopes) });

  it("allows decrypt only for the named field, or every field with decrypt:*", () => {
    expect(isAllowed(p("decrypt:credit_card"), "decrypt", "credit_card")).toBe(true);
    expect(isAllowed(p("decrypt:credit_card"), "decrypt", "ssn")).toBe(false);
    expect(isAllowed(p("decrypt:*"), "decrypt", "ssn")).toBe(true);
    expect(isAllowed(p("encrypt"), "decrypt", "ssn")).toBe(false);
  });

  it("gives admin everything and others only what they hold", () => {
    for (const op of ["encrypt", "rewrap", "rotate", "push", "admin"] as const) {
      expect(isAllowed(p("admin"), op)).toBe(true);
      expect(isAllowed(p(), op)).toBe(false);
      expect(isAllowed(p(op), op)).toBe(true);
    }
  });

  it("says who may not do what, without values", () => {
    expect(() => authorize(p("encrypt"), "decrypt", "ssn")).toThrow(
      expect.objectContaining({
        code: "permission_denied",
        message: 'principal "p" may not decrypt field "ssn"',
      }),
    );
  });
});
