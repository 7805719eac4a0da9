/**
 * HMAC-SHA256 webhook signatures, for callers (a Cognigy flow) that cannot hold a bearer token safely or
 * prefer a shared secret per principal.
 *
 *   X-Fieldseal-Key-Id:    <principal>
 *   X-Fieldseal-Timestamp: <unix seconds>
 *   X-Fieldseal-Signature: v2=<lower-case hex of HMAC-SHA256(secret, signed text)>
 *
 * Version 2's signed text (docs/cognigy.md has a worked example) is the bytes
 *
 *   "fieldseal-webhook-v2\n" METHOD "\n" PATH "\n" TIMESTAMP "\n" X-SENSITIVE-METADATA "\n" BODY
 *
 * METHOD as sent ("POST"); PATH the request target as sent, query included; X-SENSITIVE-METADATA the header's
 * value (empty when absent), which decides what gets sealed, so it cannot be swapped on a captured request.
 * None of the first five parts can contain "\n" (HTTP forbids it in a method, target or header value), so
 * the text is unambiguous. Version 1 (`v1=`, HMAC over "<timestamp>.<body>") covers the body only; it is
 * refused unless `acceptV1` is set for a migration.
 *
 * The timestamp must be within the tolerance of now, and a signature is accepted once, per signer: each
 * key id has its own bounded replay cache (signer-replay-cache.ts), so one signer can never lock out another.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { FieldsealError } from "../errors.js";
import { SignerReplayCache } from "./signer-replay-cache.js";

export const keyIdHeader = "x-fieldseal-key-id";
export const timestampHeader = "x-fieldseal-timestamp";
export const signatureHeader = "x-fieldseal-signature";

/** What a v2 signature covers besides the secret. Strings are taken as their UTF-8 bytes. */
export interface SignedRequest {
  method: string;
  /** The request target as sent: path and query. */
  path: string | Uint8Array;
  timestampSec: number;
  /** The X-Sensitive-Metadata value; undefined or "" when the header is absent. */
  sensitiveMetadata: string | Uint8Array | undefined;
  body: string | Uint8Array;
}

/** The exact bytes a v2 signature is computed over. */
export function webhookSignedTextV2(req: SignedRequest): Buffer {
  const newline = Buffer.from("\n", "utf8");
  return Buffer.concat([
    Buffer.from(`fieldseal-webhook-v2\n${req.method}\n`, "utf8"),
    toBytes(req.path),
    Buffer.from(`\n${req.timestampSec}\n`, "utf8"),
    toBytes(req.sensitiveMetadata ?? ""),
    newline,
    toBytes(req.body),
  ]);
}

/** Computes the `v2=<hex>` signature value of a request; for senders and tests. */
export function signWebhookV2(secret: string, req: SignedRequest): string {
  return `v2=${createHmac("sha256", secret).update(webhookSignedTextV2(req)).digest("hex")}`;
}

/** Computes the legacy `v1=<hex>` value (body only); for senders still migrating, and tests. */
export function signWebhookBody(secret: string, timestampSec: number, rawBody: Uint8Array | string): string {
  const mac = createHmac("sha256", secret).update(`${timestampSec}.`).update(rawBody).digest("hex");
  return `v1=${mac}`;
}

export interface WebhookSignatureVerifierOptions {
  /** Principal name (the key id) → shared secret. */
  secrets: Record<string, string>;
  /** Default 300 seconds. */
  toleranceSec?: number;
  /** Signatures remembered per signer; when full, that signer's window shrinks. Default 100_000. */
  replayCapacityPerSigner?: number;
  /** Accept body-only v1 signatures (for a migration); default false. */
  acceptV1?: boolean;
  now?: () => number;
}

/** The headers of a signed request and the parts of the request that are signed besides the body. */
export interface SignedHeaders {
  keyId: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
  method: string;
  path: string;
  /** X-Sensitive-Metadata as Node hands it over (one char per byte), undefined when absent. */
  sensitiveMetadata: string | undefined;
}

/** A signer went over its replay capacity: refused with 429 and `Retry-After`, others are unaffected. */
export class SignerOverCapacityError extends FieldsealError {
  readonly retryAfterSec: number;

  constructor(retryAfterSec: number) {
    super(
      "rate_limited",
      "this signer sent more signed requests than its replay capacity holds: sign again with a fresh timestamp",
    );
    this.retryAfterSec = retryAfterSec;
  }
}

/**
 * An authentic signature that was used before: the request is a byte-for-byte copy of one already admitted
 * (a retry of Cognigy's HTTP Request node, or a replay). `principal` is its signer.
 */
export class SignatureReplayedError extends FieldsealError {
  readonly principal: string;

  constructor(principal: string) {
    super("unauthenticated", "signature was already used");
    this.principal = principal;
  }
}

/** Verifies signatures and refuses replays; one instance per process (the replay memory is in it). */
export class WebhookSignatureVerifier {
  readonly #secrets: Map<string, Buffer>;
  readonly #toleranceSec: number;
  readonly #capacity: number;
  readonly #acceptV1: boolean;
  readonly #now: () => number;
  /** One cache per configured signer, made on its first authentic request. */
  readonly #caches = new Map<string, SignerReplayCache>();

  constructor(options: WebhookSignatureVerifierOptions) {
    this.#secrets = new Map(Object.entries(options.secrets).map(([k, v]) => [k, Buffer.from(v, "utf8")]));
    this.#toleranceSec = options.toleranceSec ?? 300;
    this.#capacity = options.replayCapacityPerSigner ?? 100_000;
    this.#acceptV1 = options.acceptV1 ?? false;
    this.#now = options.now ?? Date.now;
  }

  /** Signatures remembered for `keyId` now (0 for a signer not seen yet). */
  remembered(keyId: string): number {
    return this.#caches.get(keyId)?.size ?? 0;
  }

  /**
   * The principal that signed the request; throws FieldsealError("unauthenticated") for anything not
   * authentic, SignatureReplayedError for an authentic signature used before, SignerOverCapacityError when
   * the signer's cache had to shrink its window.
   */
  verify(headers: SignedHeaders, rawBody: Uint8Array): string {
    const { keyId, timestamp, signature } = headers;
    if (keyId === undefined || timestamp === undefined || signature === undefined) {
      throw new FieldsealError(
        "unauthenticated",
        "a signed request needs X-Fieldseal-Key-Id, X-Fieldseal-Timestamp and X-Fieldseal-Signature",
      );
    }
    const secret = this.#secrets.get(keyId);
    if (secret === undefined) throw new FieldsealError("unauthenticated", "unknown signing key id");
    // Canonical digits only: the signed text spells the number, so "0123" must not pass as "123".
    if (!/^(?:0|[1-9]\d{0,11})$/.test(timestamp)) {
      throw new FieldsealError(
        "unauthenticated",
        "X-Fieldseal-Timestamp must be unix seconds (digits, no leading zero)",
      );
    }
    const nowSec = this.#now() / 1000;
    const ts = Number(timestamp);
    if (Math.abs(nowSec - ts) > this.#toleranceSec) {
      throw new FieldsealError("unauthenticated", "signature timestamp is outside the allowed window");
    }
    // One spelling per signature (lower-case hex, nothing around it): a load balancer that routes by this
    // header's value (docs/security.md) must see every copy of a signature as the same string, or a replay
    // re-spelt in upper case would reach another replica's cache.
    const match = /^(v1|v2)=([0-9a-f]{64})$/.exec(signature);
    const version = match?.[1];
    const hex = match?.[2];
    if (version === undefined || hex === undefined) {
      throw new FieldsealError(
        "unauthenticated",
        'X-Fieldseal-Signature must be "v2=<64 lower-case hex digits>"',
      );
    }
    if (version === "v1" && !this.#acceptV1) {
      throw new FieldsealError(
        "unauthenticated",
        "v1 signatures (body only) are refused: sign with v2 (docs/cognigy.md, Signed webhooks)",
      );
    }
    const given = Buffer.from(hex, "hex");
    const expected =
      version === "v2"
        ? createHmac("sha256", secret)
            .update(
              webhookSignedTextV2({
                method: headers.method,
                // Node hands the request target and header values over one char per byte: the bytes sent.
                path: Buffer.from(headers.path, "latin1"),
                timestampSec: ts,
                sensitiveMetadata: Buffer.from(headers.sensitiveMetadata ?? "", "latin1"),
                body: rawBody,
              }),
            )
            .digest()
        : createHmac("sha256", secret).update(`${timestamp}.`).update(rawBody).digest();
    // Both are 32 bytes here; timingSafeEqual keeps the comparison from leaking how many bytes matched.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new FieldsealError("unauthenticated", "signature does not match");
    }
    let cache = this.#caches.get(keyId);
    if (cache === undefined) {
      cache = new SignerReplayCache(this.#capacity, this.#toleranceSec);
      this.#caches.set(keyId, cache);
    }
    // The MAC itself (32 bytes as 32 one-byte chars) is the id; the version keeps v1 and v2 apart.
    const admission = cache.admit(`${version}${given.toString("latin1")}`, ts, nowSec);
    if (admission.kind === "expired") {
      // The clock went back since this signer's cache moved its window on: still outside that window.
      throw new FieldsealError("unauthenticated", "signature timestamp is outside the allowed window");
    }
    if (admission.kind === "replayed") throw new SignatureReplayedError(keyId);
    if (admission.kind === "over_capacity") throw new SignerOverCapacityError(admission.retryAfterSec);
    return keyId;
  }
}

function toBytes(part: string | Uint8Array): Buffer {
  return typeof part === "string" ? Buffer.from(part, "utf8") : Buffer.from(part);
}
