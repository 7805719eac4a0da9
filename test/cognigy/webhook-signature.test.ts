import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SignerReplayCache } from "../../src/cognigy/signer-replay-cache.js";
import {
  type SignedHeaders,
  SignerOverCapacityError,
  signWebhookBody,
  signWebhookV2,
  WebhookSignatureVerifier,
  webhookSignedTextV2,
} from "../../src/cognigy/webhook-signature.js";
import { FieldsealError } from "../../src/errors.js";

const SECRET_A = "signer-a-secret-0123456789abcdefghij";
const SECRET_B = "signer-b-secret-0123456789abcdefghij";
const NOW_SEC = 1_800_000_000;
const BODY = '{"sessionId":"s","variables":{"credit_card":"4111111111111111"}}';

function request(overrides: Partial<SignedHeaders> & { body?: string; secret?: string; ts?: number } = {}) {
  const ts = overrides.ts ?? NOW_SEC;
  const signed = {
    method: "POST",
    path: "/webhooks/cognigy",
    timestampSec: ts,
    sensitiveMetadata: "field:credit_card",
    body: overrides.body ?? BODY,
  };
  const headers: SignedHeaders = {
    keyId: "a",
    timestamp: String(ts),
    signature: signWebhookV2(overrides.secret ?? SECRET_A, signed),
    method: signed.method,
    path: signed.path,
    sensitiveMetadata: signed.sensitiveMetadata,
    ...overrides,
  };
  return { headers, body: Buffer.from(signed.body) };
}

function verifier(options: { capacity?: number; acceptV1?: boolean; nowSec?: () => number } = {}) {
  return new WebhookSignatureVerifier({
    secrets: { a: SECRET_A, b: SECRET_B },
    toleranceSec: 300,
    ...(options.capacity === undefined ? {} : { replayCapacityPerSigner: options.capacity }),
    ...(options.acceptV1 === undefined ? {} : { acceptV1: options.acceptV1 }),
    now: () => (options.nowSec?.() ?? NOW_SEC) * 1000,
  });
}

function refusal(fn: () => unknown): FieldsealError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FieldsealError);
    return err as FieldsealError;
  }
  throw new Error("expected a refusal");
}

describe("webhook signatures v2", () => {
  it("spells the signed text as documented: five lines, then the body", () => {
    const text = webhookSignedTextV2({
      method: "POST",
      path: "/webhooks/cognigy?x=1",
      timestampSec: 1_800_000_000,
      sensitiveMetadata: undefined,
      body: "{}",
    });
    expect(text.toString("utf8")).toBe("fieldseal-webhook-v2\nPOST\n/webhooks/cognigy?x=1\n1800000000\n\n{}");
  });

  it("accepts the signer's own request once", () => {
    const v = verifier();
    const { headers, body } = request();
    expect(v.verify(headers, body)).toBe("a");
    expect(refusal(() => v.verify(headers, body)).message).toBe("signature was already used");
  });

  it("refuses the request with another method, path, X-Sensitive-Metadata or body", () => {
    const v = verifier();
    const { headers, body } = request();
    const swaps: Array<[Partial<SignedHeaders>, Buffer]> = [
      [{ method: "PUT" }, body],
      [{ path: "/webhooks/cognigy/" }, body],
      [{ path: "/webhooks/cognigy?sensitive=ssn" }, body],
      [{ sensitiveMetadata: "field:ssn" }, body],
      [{ sensitiveMetadata: "field:credit_card,field:ssn" }, body],
      [{ sensitiveMetadata: undefined }, body],
      [{ sensitiveMetadata: "field:credit_card " }, body],
      [{}, Buffer.from(`${BODY} `)],
    ];
    for (const [change, b] of swaps) {
      const err = refusal(() => v.verify({ ...headers, ...change }, b));
      expect(err.code).toBe("unauthenticated");
      expect(err.message).toBe("signature does not match");
    }
    // None of the refusals spent the original's single use.
    expect(v.verify(headers, body)).toBe("a");
  });

  it("signs header and target bytes as sent: a non-ASCII field name signs as its UTF-8 bytes", () => {
    const v = verifier();
    const name = "field:café";
    const signature = signWebhookV2(SECRET_A, {
      method: "POST",
      path: "/webhooks/cognigy",
      timestampSec: NOW_SEC,
      sensitiveMetadata: name,
      body: BODY,
    });
    // Node hands the header over one char per byte.
    const onTheWire = Buffer.from(name, "utf8").toString("latin1");
    const headers = { ...request().headers, signature, sensitiveMetadata: onTheWire };
    expect(v.verify(headers, Buffer.from(BODY))).toBe("a");
  });

  it("refuses v1 by default, naming v2, and accepts it only when configured", () => {
    const v1 = signWebhookBody(SECRET_A, NOW_SEC, BODY);
    const { headers, body } = request();
    expect(refusal(() => verifier().verify({ ...headers, signature: v1 }, body)).message).toMatch(
      /v1 signatures \(body only\) are refused: sign with v2/,
    );
    const migrating = verifier({ acceptV1: true });
    expect(migrating.verify({ ...headers, signature: v1 }, body)).toBe("a");
    expect(refusal(() => migrating.verify({ ...headers, signature: v1 }, body)).message).toBe(
      "signature was already used",
    );
  });

  it("refuses a timestamp that is not canonical digits, though it would spell the same number", () => {
    const { headers, body } = request();
    for (const timestamp of [`0${NOW_SEC}`, ` ${NOW_SEC}`, `${NOW_SEC}.0`, `+${NOW_SEC}`, "1e9", ""]) {
      expect(refusal(() => verifier().verify({ ...headers, timestamp }, body)).message).toMatch(
        /X-Fieldseal-Timestamp must be unix seconds/,
      );
    }
  });

  it("refuses malformed signature values without comparing anything", () => {
    const { headers, body } = request();
    for (const signature of [
      "",
      "v2=",
      "v2=zz",
      `v3=${"0".repeat(64)}`,
      `v2=${"0".repeat(63)}`,
      "sha256=00",
    ]) {
      expect(refusal(() => verifier().verify({ ...headers, signature }, body)).message).toMatch(
        /must be "v2=<64 lower-case hex digits>"/,
      );
    }
  });

  it("accepts one spelling of a signature only, so a replay cannot be re-spelt past a cache", () => {
    // A load balancer routing by X-Fieldseal-Signature (docs/security.md) sends equal strings to one replica;
    // an upper-case or padded copy of a captured signature would be another string, routed elsewhere.
    const { headers, body } = request();
    const hex = (headers.signature as string).slice(3);
    for (const signature of [
      `v2=${hex.toUpperCase()}`,
      `V2=${hex}`,
      `v2=${hex.slice(0, 10).toUpperCase()}${hex.slice(10)}`,
      ` v2=${hex}`,
      `v2=${hex} `,
      `v2=${hex}\t`,
    ]) {
      expect(refusal(() => verifier().verify({ ...headers, signature }, body)).message).toMatch(
        /must be "v2=<64 lower-case hex digits>"/,
      );
    }
    expect(verifier().verify(headers, body)).toBe("a");
  });

  it("refuses a captured request again after the clock steps back past the window's edge", () => {
    let now = NOW_SEC;
    const v = verifier({ nowSec: () => now });
    const captured = request({ body: '{"captured":1}', ts: NOW_SEC });
    expect(v.verify(captured.headers, captured.body)).toBe("a");
    now = NOW_SEC + 301.5;
    const later = request({ body: '{"later":1}', ts: NOW_SEC + 301 });
    expect(v.verify(later.headers, later.body)).toBe("a");
    now = NOW_SEC + 299.5; // an NTP step of 2 s back: the captured timestamp is inside the window again
    expect(refusal(() => v.verify(captured.headers, captured.body)).message).toBe(
      "signature timestamp is outside the allowed window",
    );
    expect(refusal(() => v.verify(later.headers, later.body)).message).toBe("signature was already used");
  });

  it("keeps one bounded cache per signer: a flood by one leaves the other untouched", () => {
    let now = NOW_SEC;
    const v = verifier({ capacity: 50, nowSec: () => now });
    let accepted = 0;
    let limited = 0;
    // Signer a: 1,000 distinct requests over 10 seconds (100/s), far beyond 50 per 300 s.
    for (let i = 0; i < 1000; i++) {
      now = NOW_SEC + Math.floor(i / 100);
      const { headers, body } = request({ body: `{"n":${i}}`, ts: now });
      try {
        v.verify(headers, body);
        accepted++;
      } catch (err) {
        expect(err).toBeInstanceOf(SignerOverCapacityError);
        expect((err as SignerOverCapacityError).retryAfterSec).toBeGreaterThanOrEqual(1);
        limited++;
      }
      expect(v.remembered("a")).toBeLessThanOrEqual(50);
    }
    expect(accepted + limited).toBe(1000);
    expect(limited).toBeGreaterThan(0);
    // Signer b gets its own full capacity at the same moment.
    for (let i = 0; i < 50; i++) {
      const { headers, body } = request({ keyId: "b", secret: SECRET_B, body: `{"b":${i}}`, ts: now });
      expect(v.verify(headers, body)).toBe("b");
    }
    expect(v.remembered("b")).toBe(50);
  });

  it("steady traffic above capacity per window keeps being served when timestamps are fresh", () => {
    // 50 remembered over a 300 s window is 1 every 6 s; send 1 per second, 6 times that, for 20 minutes.
    let now = NOW_SEC;
    const v = verifier({ capacity: 50, nowSec: () => now });
    for (let i = 0; i < 1200; i++) {
      now = NOW_SEC + i;
      const { headers, body } = request({ body: `{"steady":${i}}`, ts: now });
      expect(v.verify(headers, body)).toBe("a");
    }
    // A request signed 60 s ago is now older than the floor (the window shrank to about 50 s): 429, not 401.
    const late = request({ body: '{"late":1}', ts: now - 60 });
    const err = refusal(() => v.verify(late.headers, late.body));
    expect(err).toBeInstanceOf(SignerOverCapacityError);
    expect(err.code).toBe("rate_limited");
    // Every accepted one is still refused as a replay or by the floor.
    for (const i of [0, 600, 1150, 1199]) {
      const again = request({ body: `{"steady":${i}}`, ts: NOW_SEC + i });
      expect(() => v.verify(again.headers, again.body)).toThrow(FieldsealError);
    }
  });

  it("unknown key ids and forged signatures spend no replay capacity", () => {
    const v = verifier({ capacity: 2 });
    for (let i = 0; i < 100; i++) {
      const forged = request({ body: `{"f":${i}}`, secret: "not-the-secret-0123456789abcdefghij" });
      expect(refusal(() => v.verify(forged.headers, forged.body)).code).toBe("unauthenticated");
      const unknown = request({ keyId: `z${i}`, body: `{"u":${i}}` });
      expect(refusal(() => v.verify(unknown.headers, unknown.body)).message).toBe("unknown signing key id");
    }
    expect(v.remembered("a")).toBe(0);
    const { headers, body } = request();
    expect(v.verify(headers, body)).toBe("a");
  });
});

describe("SignerReplayCache", () => {
  it("forgets nothing it could still be asked about: a forgotten id is covered by the floor", () => {
    const cache = new SignerReplayCache(3, 300);
    expect(cache.admit("a", 100, 100).kind).toBe("accepted");
    expect(cache.admit("b", 101, 101).kind).toBe("accepted");
    expect(cache.admit("c", 102, 102).kind).toBe("accepted");
    // Full: "a" (timestamp 100, the oldest) is forgotten and the floor rises to 100.
    expect(cache.admit("d", 103, 103).kind).toBe("accepted");
    expect(cache.size).toBe(3);
    expect(cache.admit("a", 100, 103)).toEqual({ kind: "over_capacity", retryAfterSec: 1 });
    expect(cache.admit("b", 101, 103).kind).toBe("replayed");
    expect(cache.admit("e", 100, 103).kind).toBe("over_capacity");
    expect(cache.admit("e", 101, 103).kind).toBe("accepted");
  });

  it("expires ids once their timestamp leaves the window", () => {
    const cache = new SignerReplayCache(2, 10);
    expect(cache.admit("a", 100, 100).kind).toBe("accepted");
    expect(cache.admit("b", 105, 105).kind).toBe("accepted");
    expect(cache.admit("c", 111, 111).kind).toBe("accepted"); // 100 < 111 - 10: "a" expired, no eviction
    expect(cache.size).toBe(2);
    expect(cache.admit("d", 200, 200).kind).toBe("accepted");
    expect(cache.size).toBe(1);
  });

  it("a clock stepped back cannot bring a forgotten signature back inside the window", () => {
    const cache = new SignerReplayCache(10, 300);
    expect(cache.admit("a", 1000, 1000).kind).toBe("accepted");
    // 301.5 s later another request moves the window on: second 1000 is forgotten.
    expect(cache.admit("b", 1301, 1301.5).kind).toBe("accepted");
    // The clock steps back 2 s: 1000 is inside 299.5 - 300 of now again, but its bucket is gone.
    expect(cache.admit("a", 1000, 1299.5).kind).toBe("expired");
    expect(cache.admit("b", 1301, 1299.5).kind).toBe("replayed");
    expect(cache.admit("c", 1001, 1299.5).kind).toBe("accepted");
  });

  it("refuses the rest of a second once that second alone overflows the capacity", () => {
    const cache = new SignerReplayCache(2, 300);
    expect(cache.admit("a", 100, 100).kind).toBe("accepted");
    expect(cache.admit("b", 100, 100).kind).toBe("accepted");
    expect(cache.admit("c", 100, 100).kind).toBe("accepted"); // evicts one of second 100: floor = 100
    expect(cache.admit("d", 100, 100)).toEqual({ kind: "over_capacity", retryAfterSec: 1 });
    for (const id of ["a", "b", "c"]) expect(cache.admit(id, 100, 100).kind).not.toBe("accepted");
    expect(cache.admit("e", 101, 101).kind).toBe("accepted");
  });

  it("never accepts one signature twice inside its window and never holds more than its capacity (property)", () => {
    const tolerance = 5;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(
          fc.record({
            // Mostly forward, sometimes back: a stepped clock must not reopen anything.
            advance: fc.integer({ min: -3, max: 3 }),
            id: fc.integer({ min: 0, max: 7 }),
            skew: fc.integer({ min: -tolerance, max: tolerance }),
          }),
          { maxLength: 300 },
        ),
        (capacity, ops) => {
          const cache = new SignerReplayCache(capacity, tolerance);
          const accepted = new Set<string>();
          let now = 1000;
          let latest = now;
          for (const op of ops) {
            now += op.advance;
            latest = Math.max(latest, now);
            const ts = now + op.skew;
            const key = `${op.id}@${ts}`;
            const admission = cache.admit(key, ts, now);
            if (admission.kind === "accepted") {
              expect(accepted.has(key)).toBe(false);
              accepted.add(key);
            } else if (admission.kind === "over_capacity") {
              expect(admission.retryAfterSec).toBeGreaterThanOrEqual(1);
            } else if (admission.kind === "expired") {
              // Only below the window's edge at the latest clock reading (the clock went back since).
              expect(ts).toBeLessThan(latest - tolerance);
            } else {
              expect(accepted.has(key)).toBe(true);
            }
            expect(cache.size).toBeLessThanOrEqual(capacity);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
