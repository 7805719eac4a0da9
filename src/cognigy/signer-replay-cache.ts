/**
 * The signatures one signer used inside the acceptance window, so that each is accepted once.
 *
 * Bounded: at most `capacity` signatures. When full, the signature with the oldest timestamp is forgotten
 * and the signer's *floor* rises to that timestamp: from then on every signature of this signer timestamped
 * at or before the floor is refused. A forgotten signature can therefore never be replayed; the cost of a
 * full cache is that this signer's window shrinks (its older timestamps are refused with a retry hint),
 * and nobody else is affected, because every signer has its own cache.
 *
 * Invariant: every signature accepted with a timestamp above the floor and inside the window is remembered.
 *
 * The window's lower edge never moves back, even when the clock does: buckets are dropped at the highest
 * cutoff ever applied, and a timestamp below that cutoff is refused as expired, so a clock stepped back (an
 * NTP correction, a VM resumed) cannot bring a forgotten signature back inside the window.
 */

/** What `admit` decided. */
export type Admission =
  | { readonly kind: "accepted" }
  | { readonly kind: "replayed" }
  /** Timestamp below a cutoff already applied (the clock went back since): outside the window. */
  | { readonly kind: "expired" }
  /** Timestamp at or before the floor: sign again with a fresh timestamp in `retryAfterSec` seconds. */
  | { readonly kind: "over_capacity"; readonly retryAfterSec: number };

/** The ids of one timestamp second, in arrival order (evicted from `head`), with a set for lookups. */
interface Bucket {
  readonly ids: Set<string>;
  order: string[];
  head: number;
}

export class SignerReplayCache {
  readonly #capacity: number;
  readonly #toleranceSec: number;
  /** timestamp (unix seconds) → signature ids with that timestamp. */
  readonly #buckets = new Map<number, Bucket>();
  #size = 0;
  /** No bucket below this timestamp holds anything. */
  #lowest = Number.POSITIVE_INFINITY;
  #floorSec = Number.NEGATIVE_INFINITY;
  /** The highest cutoff applied: buckets below it are gone, so timestamps below it are refused. */
  #cutoffSec = Number.NEGATIVE_INFINITY;

  constructor(capacity: number, toleranceSec: number) {
    this.#capacity = capacity;
    this.#toleranceSec = toleranceSec;
  }

  /** Signatures remembered now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Accepts `id` (timestamped `tsSec`, already checked to be within the window of `nowSec`) once.
   * Only authentic signatures may be admitted: admitting is what spends capacity.
   */
  admit(id: string, tsSec: number, nowSec: number): Admission {
    this.#cutoffSec = Math.max(this.#cutoffSec, Math.floor(nowSec) - this.#toleranceSec);
    this.#forgetBefore(this.#cutoffSec);
    if (tsSec < this.#cutoffSec) return { kind: "expired" };
    if (tsSec <= this.#floorSec) {
      return { kind: "over_capacity", retryAfterSec: Math.max(1, Math.ceil(this.#floorSec + 1 - nowSec)) };
    }
    if (this.#buckets.get(tsSec)?.ids.has(id)) return { kind: "replayed" };
    if (this.#size >= this.#capacity) {
      this.#evictOldest();
      // The eviction may have raised the floor to this very timestamp: then this signature is covered by
      // the floor and need not be remembered.
      if (tsSec <= this.#floorSec) return { kind: "accepted" };
    }
    let into = this.#buckets.get(tsSec);
    if (into === undefined) {
      into = { ids: new Set(), order: [], head: 0 };
      this.#buckets.set(tsSec, into);
    }
    into.ids.add(id);
    into.order.push(id);
    this.#size += 1;
    if (tsSec < this.#lowest) this.#lowest = tsSec;
    return { kind: "accepted" };
  }

  /** Drops buckets timestamped before `cutoffSec`: the window check refuses those timestamps already. */
  #forgetBefore(cutoffSec: number): void {
    while (this.#size > 0 && this.#lowest < cutoffSec) {
      const bucket = this.#buckets.get(this.#lowest);
      if (bucket !== undefined) {
        this.#size -= bucket.ids.size;
        this.#buckets.delete(this.#lowest);
      }
      this.#lowest = this.#size === 0 ? Number.POSITIVE_INFINITY : this.#lowest + 1;
    }
  }

  #evictOldest(): void {
    while (this.#size > 0) {
      const bucket = this.#buckets.get(this.#lowest);
      if (bucket === undefined) {
        this.#lowest += 1;
        continue;
      }
      // A queue, not `ids.values().next()`: a Set's iterator walks past every deleted slot from the start,
      // which made a run of evictions from one large bucket quadratic.
      const oldest = bucket.order[bucket.head] as string;
      bucket.head += 1;
      bucket.ids.delete(oldest);
      this.#size -= 1;
      // Drop the evicted front once it is most of the queue, so evicted ids are not held (amortised O(1)).
      if (bucket.head >= 1024 && bucket.head * 2 >= bucket.order.length) {
        bucket.order = bucket.order.slice(bucket.head);
        bucket.head = 0;
      }
      if (bucket.ids.size === 0) this.#buckets.delete(this.#lowest);
      if (this.#lowest > this.#floorSec) this.#floorSec = this.#lowest;
      return;
    }
  }
}
