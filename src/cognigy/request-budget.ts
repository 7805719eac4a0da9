/**
 * CognigyRequestBudget keeps one process's requests to Cognigy.AI's REST API under the tenant's rate limit:
 * shared SaaS allows 1,000 requests per 5 minutes from one IP address (Cognigy's "Quotas and Limits" page).
 *
 * It is a token bucket whose tokens come back one window after they were used, not at a steady drip: a
 * bucket of 1,000 refilled at 3.3 per second would let 1,000 requests out at once and then 1,000 more within
 * the same 5 minutes, twice the limit in one window. Here a token is taken before a request is sent and
 * returns `windowMs` after its answer (or failure) arrived; one whose request never left (`release()`)
 * returns at once. Cognigy counts a request when it arrives, which
 * is before the answer, so any two requests that share one token arrive at least a window apart, and no
 * window at Cognigy's side can hold more than `limit` of them, however the network delays them.
 *
 * A 429 from Cognigy pauses the whole budget (every push of the process) until its `Retry-After` has passed,
 * so one push's refusal is not followed by a burst from the others.
 */
import { FieldsealError } from "../errors.js";

export interface CognigyRequestBudgetOptions {
  /** Requests per window. Default 1000. */
  limit?: number;
  /** Window length in ms. Default 300_000 (5 minutes). */
  windowMs?: number;
  now?: () => number;
  /**
   * How waiting is done; default real timers. A given sleep is raced against tokens coming back, so a
   * waiter also wakes when an answer frees a token.
   */
  sleep?: (ms: number) => Promise<void>;
}

/** One taken token: give it back once the request it was taken for has its answer or has failed. */
export interface BudgetToken {
  /** Returns the token `windowMs` from now. Idempotent. */
  done(): void;
  /**
   * Returns the token unused, as it was before it was taken: for a request that was never sent (its
   * deadline passed while it waited). Does nothing after done().
   */
  release(): void;
}

/** In flight: the token returns one window after the answer, which is not known yet. */
const IN_FLIGHT = Number.POSITIVE_INFINITY;

export class CognigyRequestBudget {
  readonly limit: number;
  readonly windowMs: number;
  readonly #now: () => number;
  readonly #sleep: ((ms: number) => Promise<void>) | undefined;
  /** When each of the `limit` tokens is back: a time, IN_FLIGHT, or 0 for never used. */
  readonly #returnsAt: number[];
  #pausedUntil = 0;
  readonly #waiters = new Set<() => void>();

  constructor(options: CognigyRequestBudgetOptions = {}) {
    this.limit = wholePositive(options.limit ?? 1000, "limit");
    this.windowMs = wholePositive(options.windowMs ?? 300_000, "windowMs");
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep;
    this.#returnsAt = new Array<number>(this.limit).fill(0);
  }

  /**
   * Takes a token, waiting for one to come back while that can happen before `deadlineAt`. Throws a
   * FieldsealError `cognigy_rate_limited` as soon as it is clear none can (or at `deadlineAt`), and
   * `push_failed` when `signal` aborts the wait. `waitedUntil`: the end of a pause the caller set and has
   * already waited out itself; a pause that ends no later is not waited for again.
   */
  async take(deadlineAt: number, signal?: AbortSignal, waitedUntil = 0): Promise<BudgetToken> {
    for (;;) {
      if (signal?.aborted === true) throw new FieldsealError("push_failed", "cancelled by the caller");
      const now = this.#now();
      let earliest = Number.POSITIVE_INFINITY;
      let slot = -1;
      for (let i = 0; i < this.#returnsAt.length; i++) {
        // A token in flight is back no sooner than a window from now.
        const at = Math.min(this.#returnsAt[i] as number, now + this.windowMs);
        if (at < earliest) {
          earliest = at;
          slot = i;
        }
      }
      const paused = this.#pausedUntil > waitedUntil ? this.#pausedUntil : 0;
      const readyAt = Math.max(earliest, paused);
      if (readyAt <= now) {
        const before = this.#returnsAt[slot] as number;
        this.#returnsAt[slot] = IN_FLIGHT;
        return this.#token(slot, before);
      }
      if (readyAt > deadlineAt) throw this.#exhausted(readyAt - now);
      await this.#wait(Math.min(readyAt, deadlineAt) - now, signal);
    }
  }

  /** Holds every request back until `at` (a 429's Retry-After), never longer than one window from now. */
  pauseUntil(at: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, Math.min(at, this.#now() + this.windowMs));
  }

  /** Tokens free right now (for metrics and tests). */
  available(): number {
    const now = this.#now();
    if (this.#pausedUntil > now) return 0;
    return this.#returnsAt.filter((at) => at <= now).length;
  }

  #token(slot: number, before: number): BudgetToken {
    let returned = false;
    const giveBack = (at: number): void => {
      if (returned) return;
      returned = true;
      this.#returnsAt[slot] = at;
      // The waiters now know when this token is back and can stop waiting on the unknown.
      for (const wake of [...this.#waiters]) wake();
    };
    return {
      done: () => giveBack(this.#now() + this.windowMs),
      // Nothing reached Cognigy, so nothing is counted there: the token is as free as it was.
      release: () => giveBack(before),
    };
  }

  #exhausted(waitMs: number): FieldsealError {
    const windowSec = this.windowMs / 1000;
    return new FieldsealError(
      "cognigy_rate_limited",
      `Cognigy.AI allows ${this.limit} requests per ${windowSec} s and this process has used them all; ` +
        `the next one could go out in ${Math.ceil(waitMs / 1000)} s, after the push deadline, so nothing ` +
        "more was sent. Retry later, spread pushes out (the HTTP Request node's own answer needs no push), " +
        "or, if your installation's quota is higher, raise FIELDSEAL_COGNIGY_RATE_LIMIT",
    );
  }

  #wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.#waiters.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
      if (this.#sleep !== undefined) this.#sleep(Math.max(0, ms)).then(wake, wake);
      else timer = setTimeout(wake, Math.max(0, ms));
    });
  }
}

function wholePositive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new FieldsealError("invalid_argument", `${name} must be a positive whole number`);
  }
  return value;
}
