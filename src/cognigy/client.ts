/**
 * CognigyClient writes keys into a running Cognigy.AI session over its REST API, with retries that respect
 * `Retry-After`, back off with full jitter, stop at an overall deadline and never apply one push twice on
 * purpose.
 *
 * Exactly-once, and what it rests on: every attempt of one push carries the same `Idempotency-Key` header,
 * and a server that honours it applies the push once however many attempts reach it. A server that ignores
 * the header cannot be given exactly-once by any client: when the connection drops after the server applied
 * the push but before it answered, the client cannot tell that apart from a drop before applying. This
 * client then retries (unless `retryAmbiguous: false`), which is safe for what it sends: a push only *sets*
 * absolute values under named keys (`__enc_<field>` and nulls), so applying it twice leaves the same state.
 * What the client does guarantee on its own: it never sends a push again after a definite success, and a
 * push submitted again under an applied key (in this process, within the TTL) is answered from memory with
 * `deduplicated: true`, without a request.
 *
 * Rate limit: every attempt first takes a token from a CognigyRequestBudget (1,000 requests per 5 minutes
 * by default, Cognigy's shared SaaS limit), shared by every push of this client, so the process never goes
 * over the tenant's limit by itself. When none is free before the push deadline, the push fails with
 * `cognigy_rate_limited` without sending; a 429 from Cognigy pauses the budget for its `Retry-After` (at
 * most one window). A push waits out a `Retry-After` of up to `retryAfterCapMs` itself and retries; a longer
 * one fails it at once with `cognigy_rate_limited`: retrying before Cognigy's time would only be refused
 * again and spend the tenant's requests.
 */
import { createHash } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import { FieldsealError, type FieldsealErrorCode, isFieldsealError } from "../errors.js";
import { keepAliveTransport, type PushTransport } from "./http-transport.js";
import { AppliedPushCache } from "./idempotency-cache.js";
import { describeProblem, parseProblem } from "./problem.js";
import { type BudgetToken, CognigyRequestBudget } from "./request-budget.js";
import { fullJitterDelay, parseRetryAfter } from "./retry.js";

/** Which Cognigy.AI endpoint a push writes to. */
export type CognigyPushMode = "context_inject" | "variables_put";

/** One attempt as reported to `onAttempt`; never carries request values. */
export interface CognigyAttemptEvent {
  attempt: number;
  status?: number;
  error?: string;
  /** The delay before the next attempt, when there will be one. */
  delayMs?: number;
}

export interface CognigyClientOptions {
  /** Scheme and host, e.g. `https://api-trial.cognigy.ai`; a trailing slash is ignored. */
  baseUrl: string;
  /** Sent as `X-API-Key` for context inject. */
  apiKey?: string;
  /** Sent as `Authorization: Bearer` for variables PUT (and for context inject when there is no API key). */
  bearerToken?: string;
  /** Default endpoint; a push may override it. */
  mode: CognigyPushMode;
  /** Path prefix of the context inject endpoint: `/new/v2.0` (default) or `/v2.0`. */
  pathPrefix?: string;
  /** Overall time for one push including retries. Default 6000, inside the HTTP Request node's 8 s. */
  deadlineMs?: number;
  /** Default 5. */
  maxAttempts?: number;
  /**
   * Longest `Retry-After` a push waits out before retrying; a longer one fails the push at once (the budget
   * still holds every push back for all of it). Default 5000.
   */
  retryAfterCapMs?: number;
  /** Default 100. */
  baseBackoffMs?: number;
  /** Upper bound of the exponential backoff window. Default 2000. */
  backoffCapMs?: number;
  /** Largest JSON body sent; Cognigy.AI caps request bodies at 60 kB. Default 60_000. */
  maxBodyBytes?: number;
  /** Retry after a connection error that may have reached the server (see the file comment). Default true. */
  retryAmbiguous?: boolean;
  /** Applied-push memory bound. Default 10_000 keys. */
  dedupMaxEntries?: number;
  /** Applied-push memory lifetime. Default 15 minutes. */
  dedupTtlMs?: number;
  random?: () => number;
  /** Waits between attempts. The rate-limit budget's own waits use real timers (see `rateLimit`). */
  sleep?: (ms: number) => Promise<void>;
  /** The clock of deadlines, backoff and the rate-limit budget. */
  now?: () => number;
  onAttempt?: (event: CognigyAttemptEvent) => void;
  /** How requests are sent. Default: Node's keep-alive agents (`keepAliveTransport`); `fetch` also fits. */
  transport?: PushTransport;
  /**
   * Cognigy's REST rate limit as this client keeps to it: `limit` requests per `windowMs`, counted over
   * every attempt of every push. Default 1000 per 300_000 ms (shared SaaS). Ignored when `budget` is given.
   */
  rateLimit?: { limit: number; windowMs: number };
  /** A budget shared with other clients of the same tenant in this process. */
  budget?: CognigyRequestBudget;
}

export interface CognigyPushRequest {
  sessionId: string;
  /** Required by context inject. */
  userId?: string;
  /** Exactly the keys to set; values are sent as given and never logged. */
  context: Record<string, JsonValue>;
  /** Same key on every attempt and every resubmission of one logical push. */
  idempotencyKey: string;
  /** Overrides the client's default mode. */
  mode?: CognigyPushMode;
  /** Aborts the push (no further attempts). */
  signal?: AbortSignal;
}

export interface CognigyPushResult {
  attempts: number;
  httpStatus: number;
  traceId?: string;
  /** True when this push had already been applied under the same key and nothing was sent. */
  deduplicated: boolean;
}

/** A push that did not succeed: a FieldsealError that also says how far it got. */
export class CognigyPushError extends FieldsealError {
  readonly attempts: number;
  readonly httpStatus: number | undefined;
  readonly traceId: string | undefined;

  constructor(
    code: FieldsealErrorCode,
    message: string,
    details: { attempts: number; httpStatus?: number; traceId?: string; cause?: unknown },
  ) {
    super(code, message, { cause: details.cause });
    this.attempts = details.attempts;
    this.httpStatus = details.httpStatus;
    this.traceId = details.traceId;
  }
}

interface AppliedPush {
  fingerprint: string;
  httpStatus: number;
  traceId?: string;
}

type AttemptOutcome =
  | { kind: "answered"; status: number; retryAfter: string | null; body: string; traceId?: string }
  | { kind: "network"; error: string; ambiguous: boolean; timedOut: boolean };

/** Statuses that fail at once: retrying cannot change the answer. */
const PERMANENT = new Set([400, 401, 403, 404, 405, 409, 410, 413, 415, 422]);

export class CognigyClient {
  readonly #baseUrl: string;
  readonly #pathPrefix: string;
  readonly #opts: CognigyClientOptions;
  readonly #deadlineMs: number;
  readonly #maxAttempts: number;
  readonly #retryAfterCapMs: number;
  readonly #baseBackoffMs: number;
  readonly #backoffCapMs: number;
  readonly #maxBodyBytes: number;
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;
  readonly #transport: PushTransport;
  readonly #applied: AppliedPushCache<AppliedPush>;
  readonly #budget: CognigyRequestBudget;
  readonly #inFlight = new Map<string, { fingerprint: string; promise: Promise<CognigyPushResult> }>();

  constructor(options: CognigyClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new FieldsealError("invalid_argument", "Cognigy base URL must be http(s)");
    }
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    const prefix = options.pathPrefix ?? "/new/v2.0";
    if (prefix !== "/new/v2.0" && prefix !== "/v2.0") {
      throw new FieldsealError("invalid_argument", 'Cognigy path prefix must be "/new/v2.0" or "/v2.0"');
    }
    this.#pathPrefix = prefix;
    this.#opts = options;
    this.#deadlineMs = positive(options.deadlineMs ?? 6000, "deadlineMs");
    this.#maxAttempts = positive(options.maxAttempts ?? 5, "maxAttempts");
    this.#retryAfterCapMs = nonNegative(options.retryAfterCapMs ?? 5000, "retryAfterCapMs");
    this.#baseBackoffMs = nonNegative(options.baseBackoffMs ?? 100, "baseBackoffMs");
    this.#backoffCapMs = nonNegative(options.backoffCapMs ?? 2000, "backoffCapMs");
    this.#maxBodyBytes = positive(options.maxBodyBytes ?? 60_000, "maxBodyBytes");
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#now = options.now ?? Date.now;
    this.#transport = options.transport ?? keepAliveTransport();
    this.#budget =
      options.budget ??
      new CognigyRequestBudget({
        // Unset: the budget's own defaults (1000 per 300_000 ms).
        ...options.rateLimit,
        // The clock is shared so deadlines agree; waiting for a token uses real timers, because the
        // budget also wakes when another push's answer frees a token.
        now: this.#now,
      });
    this.#applied = new AppliedPushCache({
      maxEntries: options.dedupMaxEntries ?? 10_000,
      ttlMs: options.dedupTtlMs ?? 15 * 60_000,
      now: this.#now,
    });
  }

  /**
   * Writes `context` into the session. Resolves once Cognigy.AI confirmed it (or it was confirmed before
   * under the same idempotency key); rejects with a CognigyPushError otherwise.
   */
  async push(req: CognigyPushRequest): Promise<CognigyPushResult> {
    const prepared = this.#prepare(req);
    const applied = this.#applied.get(req.idempotencyKey);
    if (applied !== undefined) {
      this.#assertSameRequest(applied.fingerprint, prepared.fingerprint);
      return {
        attempts: 0,
        httpStatus: applied.httpStatus,
        ...(applied.traceId !== undefined ? { traceId: applied.traceId } : {}),
        deduplicated: true,
      };
    }
    // The same push submitted while it is still in flight joins it instead of racing it.
    const running = this.#inFlight.get(req.idempotencyKey);
    if (running !== undefined) {
      this.#assertSameRequest(running.fingerprint, prepared.fingerprint);
      return running.promise.then((r) => ({ ...r, attempts: 0, deduplicated: true }));
    }
    const promise = this.#send(prepared, req).finally(() => this.#inFlight.delete(req.idempotencyKey));
    this.#inFlight.set(req.idempotencyKey, { fingerprint: prepared.fingerprint, promise });
    return promise;
  }

  #prepare(req: CognigyPushRequest) {
    if (typeof req.sessionId !== "string" || req.sessionId === "") {
      throw new FieldsealError("invalid_argument", "sessionId is required");
    }
    if (typeof req.idempotencyKey !== "string" || req.idempotencyKey === "") {
      throw new FieldsealError("invalid_argument", "idempotencyKey is required");
    }
    if (req.idempotencyKey.length > 255 || !/^[\x21-\x7e]+$/.test(req.idempotencyKey)) {
      throw new FieldsealError(
        "invalid_argument",
        "idempotencyKey must be 1 to 255 visible ASCII characters",
      );
    }
    const mode = req.mode ?? this.#opts.mode;
    const session = encodeURIComponent(req.sessionId);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, application/problem+json",
      "idempotency-key": req.idempotencyKey,
    };
    let url: string;
    let body: string;
    if (mode === "context_inject") {
      if (req.userId === undefined || req.userId === "") {
        throw new FieldsealError("invalid_argument", "userId is required for context inject");
      }
      url = `${this.#baseUrl}${this.#pathPrefix}/sessions/${session}/context/inject`;
      body = JSON.stringify({ userId: req.userId, context: req.context });
      if (this.#opts.apiKey !== undefined) headers["x-api-key"] = this.#opts.apiKey;
      else if (this.#opts.bearerToken !== undefined)
        headers.authorization = `Bearer ${this.#opts.bearerToken}`;
      else
        throw new FieldsealError("failed_precondition", "context inject needs an API key or a bearer token");
    } else {
      url = `${this.#baseUrl}/api/v1/sessions/${session}/variables`;
      body = JSON.stringify({ variables: req.context });
      if (this.#opts.bearerToken === undefined) {
        throw new FieldsealError("failed_precondition", "variables PUT needs a bearer token");
      }
      headers.authorization = `Bearer ${this.#opts.bearerToken}`;
    }
    const bytes = Buffer.byteLength(body, "utf8");
    if (bytes > this.#maxBodyBytes) {
      throw new CognigyPushError(
        "too_large",
        `push body is ${bytes} bytes, over the ${this.#maxBodyBytes}-byte limit; nothing was sent`,
        { attempts: 0 },
      );
    }
    const method = mode === "context_inject" ? "POST" : "PUT";
    const fingerprint = createHash("sha256").update(`${method} ${url}\n${body}`).digest("base64url");
    return { mode, url, method, body, headers, fingerprint };
  }

  #assertSameRequest(expected: string, actual: string): void {
    if (expected !== actual) {
      throw new FieldsealError("conflict", "idempotency key was already used for a different push");
    }
  }

  async #send(
    p: { url: string; method: string; body: string; headers: Record<string, string>; fingerprint: string },
    req: CognigyPushRequest,
  ): Promise<CognigyPushResult> {
    const deadlineAt = this.#now() + this.#deadlineMs;
    let attempts = 0;
    let last: AttemptOutcome | undefined;
    let lastTraceId: string | undefined;
    /** The end of the 429 pause this push set and then slept through itself. */
    let sleptUntil = 0;

    const fail = (code: FieldsealErrorCode, why: string, cause?: unknown): never => {
      const status = last?.kind === "answered" ? last.status : undefined;
      throw new CognigyPushError(code, `Cognigy push failed after ${attempts} attempt(s): ${why}`, {
        attempts,
        ...(status !== undefined ? { httpStatus: status } : {}),
        ...(lastTraceId !== undefined ? { traceId: lastTraceId } : {}),
        cause,
      });
    };

    while (attempts < this.#maxAttempts) {
      if (req.signal?.aborted === true) fail("push_failed", "cancelled by the caller");
      const remaining = deadlineAt - this.#now();
      if (remaining <= 0) fail("deadline_exceeded", `deadline of ${this.#deadlineMs} ms passed`);
      let token: BudgetToken;
      try {
        token = await this.#budget.take(deadlineAt, req.signal, sleptUntil);
      } catch (err) {
        if (isFieldsealError(err)) fail(err.code, err.message);
        throw err;
      }
      if (deadlineAt - this.#now() <= 0) {
        token.release();
        fail("deadline_exceeded", `deadline of ${this.#deadlineMs} ms passed`);
      }
      attempts += 1;
      let outcome: AttemptOutcome;
      try {
        outcome = await this.#attempt(p, deadlineAt - this.#now(), req.signal);
      } catch (err) {
        token.done();
        throw err;
      }
      // A connection refused or a name not resolved never reached Cognigy, which counted nothing: the token
      // is as free as before. Anything else may have been counted, so it returns a window from now.
      if (outcome.kind === "network" && !outcome.ambiguous) token.release();
      else token.done();
      last = outcome;

      if (outcome.kind === "answered") {
        lastTraceId = outcome.traceId;
        if (outcome.status >= 200 && outcome.status <= 299) {
          this.#opts.onAttempt?.({ attempt: attempts, status: outcome.status });
          const applied: AppliedPush = { fingerprint: p.fingerprint, httpStatus: outcome.status };
          if (outcome.traceId !== undefined) applied.traceId = outcome.traceId;
          this.#applied.set(req.idempotencyKey, applied);
          return {
            attempts,
            httpStatus: outcome.status,
            ...(outcome.traceId !== undefined ? { traceId: outcome.traceId } : {}),
            deduplicated: false,
          };
        }
        const problem = parseProblem(outcome.body);
        const summary = `HTTP ${outcome.status}: ${describeProblem(problem)}`;
        const retryable = outcome.status === 429 || outcome.status === 408 || outcome.status >= 500;
        if (!retryable || PERMANENT.has(outcome.status)) {
          this.#opts.onAttempt?.({ attempt: attempts, status: outcome.status });
          fail("push_failed", summary);
        }
        let delay: number;
        if (outcome.status === 429) {
          const hinted = parseRetryAfter(outcome.retryAfter, this.#now());
          delay = hinted ?? this.#backoff(attempts);
          // Cognigy counts per IP, so every push of this process is held back for all of Cognigy's time,
          // not only this one.
          this.#budget.pauseUntil(this.#now() + delay);
          if (delay > this.#retryAfterCapMs) {
            this.#opts.onAttempt?.({ attempt: attempts, status: outcome.status });
            const asked = Number.isFinite(delay) ? `${Math.ceil(delay / 1000)} s` : "indefinitely";
            fail(
              "cognigy_rate_limited",
              `${summary}; Cognigy asks to wait ${asked}, longer than a push waits ` +
                `(${this.#retryAfterCapMs} ms)`,
            );
          }
          sleptUntil = this.#now() + delay;
        } else {
          delay = this.#backoff(attempts);
        }
        const code: FieldsealErrorCode = outcome.status === 429 ? "cognigy_rate_limited" : "push_failed";
        this.#beforeRetry(attempts, delay, deadlineAt, { status: outcome.status }, code, summary, fail);
        await this.#sleep(delay);
        continue;
      }

      // A connection error or an attempt timeout.
      if (req.signal?.aborted === true) fail("push_failed", "cancelled by the caller");
      const why = outcome.timedOut
        ? "attempt timed out at the deadline"
        : `connection error (${outcome.error})`;
      if (outcome.ambiguous && this.#opts.retryAmbiguous === false) {
        this.#opts.onAttempt?.({ attempt: attempts, error: outcome.error });
        fail("push_failed", `${why}; the push may or may not have been applied`);
      }
      const delay = this.#backoff(attempts);
      const code: FieldsealErrorCode = outcome.timedOut ? "deadline_exceeded" : "push_failed";
      this.#beforeRetry(attempts, delay, deadlineAt, { error: outcome.error }, code, why, fail);
      await this.#sleep(delay);
    }
    const why =
      last?.kind === "answered"
        ? `HTTP ${last.status}: ${describeProblem(parseProblem(last.body))}`
        : `connection error (${last?.error ?? "none"})`;
    return fail(
      last?.kind === "answered" && last.status === 429 ? "cognigy_rate_limited" : "push_failed",
      why,
    );
  }

  /** Reports the attempt and refuses a retry that could not start before the deadline or the attempt cap. */
  #beforeRetry(
    attempt: number,
    delay: number,
    deadlineAt: number,
    what: { status?: number; error?: string },
    code: FieldsealErrorCode,
    why: string,
    fail: (code: FieldsealErrorCode, why: string) => never,
  ): void {
    if (attempt >= this.#maxAttempts) {
      this.#opts.onAttempt?.({ attempt, ...what });
      fail(code, `${why}; no attempts left`);
    }
    if (this.#now() + delay >= deadlineAt) {
      this.#opts.onAttempt?.({ attempt, ...what });
      // A 429 whose wait does not fit is reported as rate limiting: that is what the caller can act on.
      fail(
        code === "cognigy_rate_limited" ? "cognigy_rate_limited" : "deadline_exceeded",
        `${why}; next attempt would pass the deadline`,
      );
    }
    this.#opts.onAttempt?.({ attempt, ...what, delayMs: delay });
  }

  #backoff(attempt: number): number {
    return fullJitterDelay(attempt - 1, this.#baseBackoffMs, this.#backoffCapMs, this.#random);
  }

  async #attempt(
    p: { url: string; method: string; body: string; headers: Record<string, string> },
    timeoutMs: number,
    callerSignal: AbortSignal | undefined,
  ): Promise<AttemptOutcome> {
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    const signal = callerSignal !== undefined ? AbortSignal.any([timeout, callerSignal]) : timeout;
    try {
      const res = await this.#transport(p.url, {
        method: p.method,
        headers: p.headers,
        body: p.body,
        signal,
      });
      const body = await res.text();
      const traceId = res.headers.get("x-trace-id") ?? parseProblem(body)?.traceId;
      return {
        kind: "answered",
        status: res.status,
        retryAfter: res.headers.get("retry-after"),
        body,
        ...(traceId !== undefined && traceId !== null ? { traceId } : {}),
      };
    } catch (err) {
      const code = errorCode(err);
      return {
        kind: "network",
        error: code,
        // Refused or unresolvable connections never reached the server; anything else might have.
        ambiguous: !NOT_SENT.has(code),
        timedOut: timeout.aborted,
      };
    }
  }
}

const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

/** A short, value-free name for a transport failure: the innermost system (or undici) error code. */
function errorCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === "object"; depth++) {
    const record = current as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof record.code === "string") return record.code;
    if (record.name === "TimeoutError" || record.name === "AbortError") return record.name;
    current = record.cause;
  }
  return err instanceof Error ? err.name : "unknown";
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be positive`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must not be negative`);
  return value;
}
