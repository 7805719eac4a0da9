/**
 * HMAC-SHA256 webhook signatures, for callers (a Cognigy flow) that cannot hold a bearer token safely or
 * prefer a shared secret per principal.
 *
 *   X-Fieldseal-Key-Id:    <principal>
 *   X-Fieldseal-Timestamp: <unix seconds>
 *   X-Fieldseal-Signature: v1=<hex of HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 * The timestamp must be within the tolerance of now, and a signature is accepted once: a replay within
 * the window is refused. Outside the window the timestamp check refuses it, so remembered signatures can
 * be forgotten when their window closes, which bounds the memory.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { FieldsealError } from "../errors.js";

export const keyIdHeader = "x-fieldseal-key-id";
export const timestampHeader = "x-fieldseal-timestamp";
export const signatureHeader = "x-fieldseal-signature";

/** Computes the `v1=<hex>` signature value for a body; for senders and tests. */
export function signWebhookBody(secret: string, timestampSec: number, rawBody: Uint8Array | string): string {
  const mac = createHmac("sha256", secret).update(`${timestampSec}.`).update(rawBody).digest("hex");
  return `v1=${mac}`;
}

export interface WebhookSignatureVerifierOptions {
  /** Principal name → shared secret. */
  secrets: Record<string, string>;
  /** Default 300 seconds. */
  toleranceSec?: number;
  /** Remembered signatures at most; when full of live ones, new requests are refused. Default 100_000. */
  maxRemembered?: number;
  now?: () => number;
}

export interface SignedHeaders {
  keyId: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** Verifies signatures and refuses replays; one instance per process (the replay memory is in it). */
export class WebhookSignatureVerifier {
  readonly #secrets: Map<string, Buffer>;
  readonly #toleranceSec: number;
  readonly #maxRemembered: number;
  readonly #now: () => number;
  /** signature id → expiry (ms); insertion order is close to expiry order, so purging scans the front. */
  readonly #seen = new Map<string, number>();

  constructor(options: WebhookSignatureVerifierOptions) {
    this.#secrets = new Map(Object.entries(options.secrets).map(([k, v]) => [k, Buffer.from(v, "utf8")]));
    this.#toleranceSec = options.toleranceSec ?? 300;
    this.#maxRemembered = options.maxRemembered ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** The principal that signed `rawBody`; throws FieldsealError("unauthenticated") otherwise. */
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
    if (!/^\d{1,12}$/.test(timestamp)) {
      throw new FieldsealError("unauthenticated", "X-Fieldseal-Timestamp must be unix seconds");
    }
    const nowMs = this.#now();
    const ts = Number(timestamp);
    if (Math.abs(nowMs / 1000 - ts) > this.#toleranceSec) {
      throw new FieldsealError("unauthenticated", "signature timestamp is outside the allowed window");
    }
    const match = /^v1=([0-9a-f]{64})$/i.exec(signature.trim());
    if (match?.[1] === undefined) {
      throw new FieldsealError("unauthenticated", 'X-Fieldseal-Signature must be "v1=<64 hex digits>"');
    }
    const given = Buffer.from(match[1], "hex");
    const expected = createHmac("sha256", secret).update(`${timestamp}.`).update(rawBody).digest();
    // Both are 32 bytes here; timingSafeEqual keeps the comparison from leaking how many bytes matched.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new FieldsealError("unauthenticated", "signature does not match");
    }
    this.#remember(`${keyId}:${match[1].toLowerCase()}`, (ts + this.#toleranceSec) * 1000, nowMs);
    return keyId;
  }

  #remember(id: string, expiresAt: number, nowMs: number): void {
    for (const [key, expiry] of this.#seen) {
      if (expiry > nowMs) break;
      this.#seen.delete(key);
    }
    if (this.#seen.has(id)) throw new FieldsealError("unauthenticated", "signature was already used");
    if (this.#seen.size >= this.#maxRemembered) {
      // Fail closed: forgetting a live signature would let it be replayed.
      throw new FieldsealError("store_unavailable", "too many signed requests in the replay window");
    }
    this.#seen.set(id, expiresAt);
  }
}
