/**
 * The webhook's memory of requests it has answered, keyed by a digest of the request (see
 * `webhookRequestKey` in webhook.ts): the sealed variables the first request answered, and the push that
 * delivered them once it succeeded. A retried request (Cognigy's HTTP Request node re-sends the same bytes)
 * is answered with these values and pushed under the same idempotency key, so the session and every answer
 * hold the same sealed values and Cognigy receives at most one applied push.
 *
 * Bounded in entries, in bytes and in time; the least recently used entries go first. The byte count is an
 * upper estimate of the V8 heap an entry holds (`heapEstimate`), not its JSON length: an answer of 1,000
 * small fields held 2.8 times its JSON length in heap (measured with `--expose-gc`), so a JSON-length bound
 * of 16 MiB let distinct bodies pin 45 MiB. It is memory of one process: a retry that reaches another
 * replica is sealed afresh.
 */
import type { JsonValue } from "@bufbuild/protobuf";

/** What the first answer to a request said. */
export interface AnsweredRequest {
  keyring: string;
  keyVersion: number;
  variables: Record<string, JsonValue>;
  /** The push that delivered `variables`, once one succeeded. */
  pushed?: { attempts: number; httpStatus: number };
}

export class WebhookAnswerCache {
  readonly #entries = new Map<string, { value: AnsweredRequest; bytes: number; expiresAt: number }>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #bytes = 0;

  constructor(options: { maxEntries: number; maxBytes: number; ttlMs: number; now: () => number }) {
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now;
  }

  /** The answer recorded under `key`, unless it expired or was evicted; refreshes its recency. */
  get(key: string): AnsweredRequest | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#delete(key);
    if (entry.expiresAt <= this.#now()) return undefined;
    this.#entries.set(key, entry);
    this.#bytes += entry.bytes;
    return entry.value;
  }

  /**
   * Records `value` under `key` (replacing what was there; the lifetime starts again), then evicts the
   * least recently used entries past either bound. A value larger than the byte bound is not kept.
   */
  set(key: string, value: AnsweredRequest): void {
    this.#delete(key);
    const bytes = ENTRY_OVERHEAD + stringBytes(key) + heapEstimate(value.variables);
    if (bytes > this.#maxBytes) return;
    this.#entries.set(key, { value, bytes, expiresAt: this.#now() + this.#ttlMs });
    this.#bytes += bytes;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#delete(oldest.value);
    }
  }

  /** Entries held (expired ones included until they are looked up or evicted). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held, as counted for the byte bound. */
  get bytes(): number {
    return this.#bytes;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/** The map slot, the entry and answer objects, the keyring name and version. */
const ENTRY_OVERHEAD = 256;
/** A property slot of an object in dictionary mode, rounded up. */
const PROPERTY_OVERHEAD = 48;
/** An object's header and its property store, rounded up. */
const OBJECT_OVERHEAD = 64;

/** A string's heap bytes, counted as two-byte (V8 keeps non-latin1 text in two bytes a character). */
function stringBytes(text: string): number {
  return 16 + 2 * text.length;
}

/**
 * An upper estimate of the heap `value` holds in V8 (64-bit, no pointer compression assumed): every string
 * counted as two bytes a character plus its header, every property and object with its overhead. Linear in
 * the value's size, which the body limit bounds.
 */
export function heapEstimate(value: JsonValue): number {
  if (typeof value === "string") return stringBytes(value);
  if (value === null || typeof value !== "object") return 16;
  let bytes = OBJECT_OVERHEAD;
  if (Array.isArray(value)) {
    for (const item of value) bytes += 8 + heapEstimate(item);
    return bytes;
  }
  for (const [name, item] of Object.entries(value)) {
    bytes += PROPERTY_OVERHEAD + stringBytes(name) + heapEstimate(item);
  }
  return bytes;
}
