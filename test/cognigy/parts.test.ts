import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AppliedPushCache } from "../../src/cognigy/idempotency-cache.js";
import { createInternalPrincipalAuth, internalSecretHeader } from "../../src/cognigy/internal-auth.js";
import { fullJitterDelay, parseRetryAfter } from "../../src/cognigy/retry.js";
import { parseSensitiveMetadata } from "../../src/cognigy/sensitive-fields.js";
import { httpStatusForConnectCode, httpStatusForConnectError } from "../../src/service/error-map.js";

describe("parseSensitiveMetadata", () => {
  it("reads field entries, tolerating spaces and dropping duplicates", () => {
    expect(parseSensitiveMetadata(" field:a , field: b,field :a")).toEqual(["a", "b"]);
  });
  it("treats a missing or blank header as no fields", () => {
    expect(parseSensitiveMetadata(undefined)).toEqual([]);
    expect(parseSensitiveMetadata("  ")).toEqual([]);
  });
  it.each(["a", "field:", "field:a,,field:b", "key:a", "field:a,b"])("refuses %j", (header) => {
    expect(() => parseSensitiveMetadata(header)).toThrow(/X-Sensitive-Metadata entry/);
  });
});

describe("httpStatusForConnectCode", () => {
  it("follows the Connect protocol table", () => {
    expect(httpStatusForConnectCode(Code.InvalidArgument)).toBe(400);
    expect(httpStatusForConnectCode(Code.Unauthenticated)).toBe(401);
    expect(httpStatusForConnectCode(Code.PermissionDenied)).toBe(403);
    expect(httpStatusForConnectCode(Code.NotFound)).toBe(404);
    expect(httpStatusForConnectCode(Code.ResourceExhausted)).toBe(429);
    expect(httpStatusForConnectCode(Code.Unavailable)).toBe(503);
    expect(httpStatusForConnectCode(Code.DeadlineExceeded)).toBe(504);
    expect(httpStatusForConnectCode(Code.DataLoss)).toBe(500);
  });
  it("answers 413 for RESOURCE_EXHAUSTED the service marks as too large", () => {
    const err = new ConnectError("too big", Code.ResourceExhausted, { "fieldseal-reason": "too_large" });
    expect(httpStatusForConnectError(err)).toBe(413);
  });
});

describe("internal principal credentials", () => {
  it("name the principal only with this process's secret", () => {
    const auth = createInternalPrincipalAuth();
    expect(auth.verify(auth.headersFor("flow-a"))).toBe("flow-a");
    expect(auth.verify(new Headers())).toBeUndefined();
    const forged = auth.headersFor("flow-a");
    forged.set(internalSecretHeader, "AAAA");
    expect(() => auth.verify(forged)).toThrow(/invalid internal principal/);
    expect(() => auth.verify(createInternalPrincipalAuth().headersFor("flow-a"))).toThrow();
  });
});

describe("retry timing", () => {
  it("parses Retry-After seconds and HTTP-dates", () => {
    const now = Date.UTC(2030, 0, 1);
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 2000).toUTCString(), now)).toBe(2000);
    expect(parseRetryAfter(new Date(now - 2000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-1", now)).toBeUndefined();
  });
  it("draws full jitter below the capped exponential ceiling", () => {
    expect(fullJitterDelay(0, 100, 2000, () => 0.999)).toBe(99);
    expect(fullJitterDelay(3, 100, 2000, () => 0.5)).toBe(400);
    expect(fullJitterDelay(10, 100, 2000, () => 0.5)).toBe(1000);
    expect(fullJitterDelay(10, 100, 2000, () => 0)).toBe(0);
  });
});

describe("AppliedPushCache", () => {
  it("evicts the least recently used key and forgets expired ones", () => {
    let t = 0;
    const cache = new AppliedPushCache<number>({ maxEntries: 2, ttlMs: 100, now: () => t });
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1);
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(1);
    t = 200;
    expect(cache.get("a")).toBeUndefined();
  });
});
