/**
 * The webhook's memory of requests it has answered, keyed by a digest of the request (see
 * `webhookRequestKey` in webhook.ts): the sealed variables the first request answered, and the push that
 * delivered them once it succeeded. A retried request (Cognigy's HTTP Request node re-sends the same bytes)
 * is answered with these values and pushed under the same idempotency key, so the session and every answer
 * hold the same sealed values and Cognigy receives at most one applied push.
 *
 * Bounded in entries, in bytes and in time; past a bound, the caller holding the most loses its least
 * recently used entries first, so a caller flooding the memory with distinct requests evicts its own
 * answers, never those of a caller holding less. The byte count is an upper estimate of the V8 heap an
 * entry holds (`heapEstimate`), not its JSON length: an answer of 1,000 small fields held 2.8 times its
 * JSON length in heap (measured with `--expose-gc`), so a JSON-length bound of 16 MiB let distinct bodies
 * pin 45 MiB. It is memory of one process: a retry that reaches another replica is sealed afresh.
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

interface Entry {
  value: AnsweredRequest;
  bytes: number;
  expiresAt: number;
  owner: string;
}

/** What one caller holds: its bytes, and its keys from least to most recently used. */
interface Holdings {
  bytes: number;
  keys: Set<string>;
}

export class WebhookAnswerCache {
  readonly #entries = new Map<string, Entry>();
  readonly #owners = new Map<string, Holdings>();
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
    if (entry.expiresAt <= this.#now()) {
      this.#delete(key);
      return undefined;
    }
    const keys = this.#owners.get(entry.owner)?.keys;
    keys?.delete(key);
    keys?.add(key);
    return entry.value;
  }

  /**
   * Records `value` under `key` for caller `owner` (replacing what was there; the lifetime starts again).
   * Past either bound, entries are evicted from the caller holding the most (bytes past the byte bound,
   * entries past the entry bound), its least recently used first: a caller flooding the memory with
   * distinct requests evicts its own answers, not another caller's. A value larger than the byte bound is
   * not kept.
   */
  set(key: string, value: AnsweredRequest, owner: string): void {
    this.#delete(key);
    const bytes = ENTRY_OVERHEAD + stringBytes(key) + stringBytes(owner) + heapEstimate(value.variables);
    if (bytes > this.#maxBytes) return;
    this.#entries.set(key, { value, bytes, expiresAt: this.#now() + this.#ttlMs, owner });
    let holdings = this.#owners.get(owner);
    if (holdings === undefined) {
      holdings = { bytes: 0, keys: new Set() };
      this.#owners.set(owner, holdings);
    }
    holdings.bytes += bytes;
    holdings.keys.add(key);
    this.#bytes += bytes;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const byBytes = this.#bytes > this.#maxBytes;
      let heaviest: Holdings | undefined;
      for (const h of this.#owners.values()) {
        if (
          heaviest === undefined ||
          (byBytes ? h.bytes > heaviest.bytes : h.keys.size > heaviest.keys.size)
        ) {
          heaviest = h;
        }
      }
      const oldest = heaviest?.keys.values().next();
      if (oldest === undefined || oldest.done === true) break;
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

  /** Bytes held for `owner`. */
  bytesOf(owner: string): number {
    return this.#owners.get(owner)?.bytes ?? 0;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
    const holdings = this.#owners.get(entry.owner);
    if (holdings === undefined) return;
    holdings.bytes -= entry.bytes;
    holdings.keys.delete(key);
    if (holdings.keys.size === 0) this.#owners.delete(entry.owner);
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
