import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CognigyClient, type CognigyClientOptions, CognigyPushError } from "../../src/cognigy/client.js";
import { CognigyRequestBudget } from "../../src/cognigy/request-budget.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { hashUnit } from "../support/seeded-random.js";

/** A sleep that records the delays asked for and returns at once: no test waits on real time. */
function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

/** A clock that only moves when the client sleeps. */
function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  const delays: number[] = [];
  return {
    delays,
    now: () => t,
    sleep: async (ms: number) => {
      delays.push(ms);
      t += ms;
    },
  };
}

async function pushError(p: Promise<unknown>): Promise<CognigyPushError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CognigyPushError);
  return err as CognigyPushError;
}

describe("CognigyClient against the simulator", () => {
  let sim: CognigySimulator;
  const client = (opts: Partial<CognigyClientOptions> = {}) =>
    new CognigyClient({
      baseUrl: sim.url,
      apiKey: sim.apiKey,
      bearerToken: sim.bearerToken,
      mode: "context_inject",
      sleep: recordingSleep().sleep,
      ...opts,
    });
  const sealed = { __enc_card: "fs1.sealed-card", card: null };

  beforeAll(async () => {
    sim = await startCognigySimulator();
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(() => {
    sim.reset();
  });

  describe("success", () => {
    it("injects context through /new/v2.0 with the API key and the idempotency key", async () => {
      const result = await client().push({
        sessionId: "s1",
        userId: "u1",
        context: sealed,
        idempotencyKey: "k1",
      });
      expect(result).toMatchObject({ attempts: 1, httpStatus: 200, deduplicated: false });
      expect(result.traceId).toMatch(/^trace-/);
      expect(sim.contexts.get("s1")).toEqual(sealed);
      expect(sim.requests).toEqual([
        {
          method: "POST",
          path: "/new/v2.0/sessions/s1/context/inject",
          idempotencyKey: "k1",
          status: 200,
          at: expect.any(Number),
        },
      ]);
    });

    it("accepts the /v2.0 prefix some clients use", async () => {
      await client({ pathPrefix: "/v2.0" }).push({
        sessionId: "s1",
        userId: "u1",
        context: sealed,
        idempotencyKey: "k1",
      });
      expect(sim.requests[0]?.path).toBe("/v2.0/sessions/s1/context/inject");
      expect(sim.contexts.get("s1")).toEqual(sealed);
    });

    it("puts variables with a bearer token in the tutorial's mode", async () => {
      const c = new CognigyClient({ baseUrl: sim.url, bearerToken: sim.bearerToken, mode: "variables_put" });
      const result = await c.push({ sessionId: "s2", context: sealed, idempotencyKey: "k2" });
      expect(result).toMatchObject({ attempts: 1, httpStatus: 200 });
      expect(sim.requests[0]).toMatchObject({ method: "PUT", path: "/api/v1/sessions/s2/variables" });
      expect(sim.contexts.get("s2")).toEqual(sealed);
    });

    it("merges only the keys it sends into the session", async () => {
      const c = client();
      await c.push({ sessionId: "s1", userId: "u", context: { language: "en" }, idempotencyKey: "a" });
      await c.push({ sessionId: "s1", userId: "u", context: sealed, idempotencyKey: "b" });
      expect(sim.contexts.get("s1")).toEqual({ language: "en", ...sealed });
    });

    it("URL-encodes the session id", async () => {
      await client().push({ sessionId: "a/b c?d", userId: "u", context: sealed, idempotencyKey: "k" });
      expect(sim.requests[0]?.path).toBe("/new/v2.0/sessions/a%2Fb%20c%3Fd/context/inject");
      expect(sim.contexts.get("a/b c?d")).toEqual(sealed);
    });
  });

  describe("idempotency", () => {
    it("answers a resubmitted push from memory without sending it", async () => {
      const c = client();
      const req = { sessionId: "s1", userId: "u", context: sealed, idempotencyKey: "same" };
      await c.push(req);
      const again = await c.push(req);
      expect(again).toMatchObject({ deduplicated: true, attempts: 0, httpStatus: 200 });
      expect(sim.requests).toHaveLength(1);
    });

    it("joins a resubmission that arrives while the first push is in flight", async () => {
      const c = client();
      sim.setFaults([{ delayMs: 20 }]);
      const req = { sessionId: "s1", userId: "u", context: sealed, idempotencyKey: "same" };
      const [a, b] = await Promise.all([c.push(req), c.push(req)]);
      expect([a.deduplicated, b.deduplicated]).toEqual([false, true]);
      expect(sim.requests).toHaveLength(1);
    });

    it("refuses an idempotency key reused for a different push", async () => {
      const c = client();
      await c.push({ sessionId: "s1", userId: "u", context: sealed, idempotencyKey: "k" });
      await expect(
        c.push({ sessionId: "s1", userId: "u", context: { other: 1 }, idempotencyKey: "k" }),
      ).rejects.toMatchObject({ code: "conflict" });
      expect(sim.requests).toHaveLength(1);
    });

    it("applies exactly once when the connection drops after applying and the server honours the key", async () => {
      sim.setFaults([{ drop: "after" }]);
      const result = await client().push({
        sessionId: "s1",
        userId: "u",
        context: sealed,
        idempotencyKey: "k",
      });
      expect(result.attempts).toBe(2);
      expect(sim.requests.map((r) => r.idempotencyKey)).toEqual(["k", "k"]);
      expect(sim.applications.get("k")).toBe(1);
      expect(sim.contexts.get("s1")).toEqual(sealed);
    });

    describe("when the server ignores idempotency keys", () => {
      let bare: CognigySimulator;
      beforeAll(async () => {
        bare = await startCognigySimulator({ honourIdempotencyKey: false });
      });
      afterAll(async () => {
        await bare.close();
      });
      beforeEach(() => bare.reset());
      const bareClient = (opts: Partial<CognigyClientOptions> = {}) =>
        client({ baseUrl: bare.url, apiKey: bare.apiKey, ...opts });

      it("applies exactly once when the connection drops before applying", async () => {
        bare.setFaults([{ drop: "before" }]);
        const result = await bareClient().push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        });
        expect(result.attempts).toBe(2);
        expect(bare.applications.get("k")).toBe(1);
      });

      it("after a drop past applying, retries into the same state and never sends again once confirmed", async () => {
        // No client can make this exactly-once: the drop looks the same as a drop before applying. What
        // holds is that the push only sets absolute values, so the second application changes nothing.
        bare.setFaults([{ drop: "after" }]);
        const c = bareClient();
        const req = { sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k" };
        const result = await c.push(req);
        expect(result.attempts).toBe(2);
        expect(bare.applications.get("k")).toBe(2);
        expect(bare.contexts.get("s")).toEqual(sealed);
        await c.push(req);
        expect(bare.requests).toHaveLength(2);
      });

      it("with retryAmbiguous off, applies at most once and says the outcome is unknown", async () => {
        bare.setFaults([{ drop: "after" }]);
        const err = await pushError(
          bareClient({ retryAmbiguous: false }).push({
            sessionId: "s",
            userId: "u",
            context: sealed,
            idempotencyKey: "k",
          }),
        );
        expect(err.code).toBe("push_failed");
        expect(err.message).toMatch(/may or may not have been applied/);
        expect(err.attempts).toBe(1);
        expect(bare.applications.get("k")).toBe(1);
      });
    });
  });

  describe("retries", () => {
    it("waits the Retry-After seconds of a 429", async () => {
      const rec = recordingSleep();
      sim.setFaults([{ rateLimit: 2 }]);
      const result = await client({ sleep: rec.sleep }).push({
        sessionId: "s",
        userId: "u",
        context: sealed,
        idempotencyKey: "k",
      });
      expect(result.attempts).toBe(2);
      expect(rec.delays).toEqual([2000]);
    });

    it("waits until the Retry-After HTTP-date of a 429", async () => {
      const clock = fakeClock(Date.UTC(2030, 0, 1, 12, 0, 0));
      sim.setFaults([{ status: 429, retryAfter: new Date(clock.now() + 3000).toUTCString() }]);
      await client({ now: clock.now, sleep: clock.sleep }).push({
        sessionId: "s",
        userId: "u",
        context: sealed,
        idempotencyKey: "k",
      });
      expect(clock.delays).toEqual([3000]);
    });

    it("fails at once on a Retry-After longer than it waits, and holds back the next push for all of it", async () => {
      const clock = fakeClock();
      sim.setFaults([{ rateLimit: 120 }]);
      const c = client({ now: clock.now, sleep: clock.sleep, retryAfterCapMs: 1500, deadlineMs: 60_000 });
      const err = await pushError(
        c.push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k" }),
      );
      expect(err.code).toBe("cognigy_rate_limited");
      expect(err.attempts).toBe(1);
      expect(err.message).toMatch(/Cognigy asks to wait 120 s, longer than a push waits \(1500 ms\)$/);
      // No early retry that Cognigy would refuse again: one request, no sleep.
      expect(sim.requests).toHaveLength(1);
      expect(clock.delays).toEqual([]);
      // Another push, with a deadline inside Cognigy's 120 s, fails without a request.
      const held = await pushError(
        c.push({ sessionId: "s2", userId: "u", context: sealed, idempotencyKey: "k2" }),
      );
      expect(held.code).toBe("cognigy_rate_limited");
      expect(held.attempts).toBe(0);
      expect(sim.requests).toHaveLength(1);
    });

    it.each([
      ["more seconds than a number holds", "9".repeat(400)],
      ["more seconds than a safe integer holds", "99999999999999999999"],
    ])("reads a Retry-After of %s as the longest wait, not as a malformed value", async (_name, value) => {
      const clock = fakeClock();
      sim.setFaults([{ status: 429, retryAfter: value }]);
      const err = await pushError(
        client({ now: clock.now, sleep: clock.sleep }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(err.code).toBe("cognigy_rate_limited");
      expect(err.message).toMatch(/Cognigy asks to wait indefinitely/);
      expect(sim.requests).toHaveLength(1);
    });

    it.each([
      ["0", "0"],
      ["an HTTP-date in the past", "Thu, 01 Jan 1970 00:00:00 GMT"],
    ])("retries at once on a Retry-After of %s", async (_name, value) => {
      const clock = fakeClock();
      sim.setFaults([{ status: 429, retryAfter: value }]);
      const result = await client({ now: clock.now, sleep: clock.sleep }).push({
        sessionId: "s",
        userId: "u",
        context: sealed,
        idempotencyKey: "k",
      });
      expect(result.attempts).toBe(2);
      expect(clock.delays).toEqual([0]);
    });

    it.each([
      ["negative", "-5"],
      ["not a number or a date", "soon"],
    ])("backs off on a %s Retry-After as if there were none", async (_name, value) => {
      const clock = fakeClock();
      sim.setFaults([{ status: 429, retryAfter: value }]);
      const result = await client({
        now: clock.now,
        sleep: clock.sleep,
        random: () => 0.5,
        baseBackoffMs: 100,
      }).push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k" });
      expect(result.attempts).toBe(2);
      expect(clock.delays).toEqual([50]);
    });

    it("backs off with full jitter on 5xx and then succeeds", async () => {
      const rec = recordingSleep();
      sim.setFaults([{ status: 503 }, { status: 500 }, { status: 502 }]);
      const result = await client({ sleep: rec.sleep, random: () => 0.5, baseBackoffMs: 100 }).push({
        sessionId: "s",
        userId: "u",
        context: sealed,
        idempotencyKey: "k",
      });
      expect(result).toMatchObject({ attempts: 4, httpStatus: 200 });
      // random() * min(cap, base * 2^retry): 0.5 * 100, 0.5 * 200, 0.5 * 400
      expect(rec.delays).toEqual([50, 100, 200]);
      expect(sim.appliedCount()).toBe(1);
    });

    it("retries a refused connection", async () => {
      const closed = await startCognigySimulator();
      const url = closed.url;
      await closed.close();
      const events: Array<{ attempt: number; error?: string }> = [];
      const err = await pushError(
        client({ baseUrl: url, maxAttempts: 2, onAttempt: (e) => events.push(e) }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(err.attempts).toBe(2);
      expect(events.map((e) => e.error)).toEqual(["ECONNREFUSED", "ECONNREFUSED"]);
    });

    it("spends no rate-limit token on an attempt that never reached Cognigy (connection refused)", async () => {
      const closed = await startCognigySimulator();
      const url = closed.url;
      await closed.close();
      const budget = new CognigyRequestBudget({ limit: 3, windowMs: 300_000 });
      await pushError(
        client({ baseUrl: url, maxAttempts: 3, budget }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(budget.available()).toBe(3);
      // An attempt Cognigy answered is counted: its token returns only a window later.
      await client({ budget }).push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k2" });
      expect(budget.available()).toBe(2);
    });

    it("reports the attempts when it runs out of them", async () => {
      sim.setFaults(() => ({ status: 503 }));
      const err = await pushError(
        client({ maxAttempts: 3 }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(err.code).toBe("push_failed");
      expect(err.attempts).toBe(3);
      expect(err.httpStatus).toBe(503);
      expect(err.message).toMatch(/after 3 attempt\(s\).*HTTP 503/);
      expect(sim.requests).toHaveLength(3);
    });

    it("never sleeps past the deadline and reports the attempts made", async () => {
      const clock = fakeClock();
      sim.setFaults(() => ({ status: 503 }));
      const err = await pushError(
        client({
          now: clock.now,
          sleep: clock.sleep,
          deadlineMs: 1000,
          baseBackoffMs: 200,
          backoffCapMs: 10_000,
          maxAttempts: 50,
          random: () => 0.99,
        }).push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k" }),
      );
      expect(err.code).toBe("deadline_exceeded");
      // Sleeps of 198 and 396 fit in 1000 ms; the next (792) would not, so no third sleep happens.
      expect(clock.delays).toEqual([198, 396]);
      expect(err.attempts).toBe(3);
      expect(err.message).toMatch(/after 3 attempt\(s\)/);
      expect(sim.requests).toHaveLength(3);
    });

    it("reports rate limiting when the Retry-After wait does not fit the deadline", async () => {
      const clock = fakeClock();
      sim.setFaults(() => ({ rateLimit: 4 }));
      const err = await pushError(
        client({ now: clock.now, sleep: clock.sleep, deadlineMs: 6000 }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(err.code).toBe("cognigy_rate_limited");
      expect(err.attempts).toBe(2);
      expect(clock.delays).toEqual([4000]);
    });

    it("is refused by the simulator's per-IP window when the client's own budget is set higher", async () => {
      const limited = await startCognigySimulator({ rateLimit: { limit: 1, windowSec: 300 } });
      try {
        const clock = fakeClock();
        const c = client({
          baseUrl: limited.url,
          apiKey: limited.apiKey,
          now: clock.now,
          sleep: clock.sleep,
          rateLimit: { limit: 10, windowMs: 300_000 },
        });
        await c.push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "a" });
        const err = await pushError(
          c.push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "b" }),
        );
        expect(err.code).toBe("cognigy_rate_limited");
        expect(err.httpStatus).toBe(429);
        expect(err.message).toMatch(/HTTP 429: Too Many Requests Error: rate limit exceeded \(code 429/);
      } finally {
        await limited.close();
      }
    });
  });

  describe("refusals", () => {
    it("fails at once on 401 with Cognigy's title, detail and traceId", async () => {
      const err = await pushError(
        client({ apiKey: "wrong" }).push({
          sessionId: "s",
          userId: "u",
          context: sealed,
          idempotencyKey: "k",
        }),
      );
      expect(err.code).toBe("push_failed");
      expect(err.attempts).toBe(1);
      expect(err.httpStatus).toBe(401);
      expect(err.message).toMatch(
        /HTTP 401: Unauthorized Error: missing or invalid credentials \(code 401, traceId trace-/,
      );
      expect(err.message).toContain(`traceId ${err.traceId}`);
      expect(err.traceId).toMatch(/^trace-/);
      expect(sim.requests).toHaveLength(1);
    });

    it("fails at once on 403", async () => {
      sim.setFaults([{ status: 403 }]);
      const err = await pushError(
        client().push({ sessionId: "s", userId: "u", context: sealed, idempotencyKey: "k" }),
      );
      expect(err.attempts).toBe(1);
      expect(err.message).toMatch(
        /HTTP 403: Forbidden Error: fault injected by the test \(code 403, traceId trace-/,
      );
    });

    it("fails at once on 404 for an unknown session", async () => {
      const strict = await startCognigySimulator({ knownSessions: ["known"] });
      try {
        const err = await pushError(
          client({ baseUrl: strict.url, apiKey: strict.apiKey }).push({
            sessionId: "unknown",
            userId: "u",
            context: sealed,
            idempotencyKey: "k",
          }),
        );
        expect(err.attempts).toBe(1);
        expect(err.message).toMatch(
          /HTTP 404: Not Found Error: session not found \(code 1002, traceId trace-/,
        );
        expect(strict.requests).toHaveLength(1);
      } finally {
        await strict.close();
      }
    });

    it("refuses a body over 60 kB before sending anything", async () => {
      const big = { __enc_blob: "x".repeat(60_000) };
      const err = await pushError(
        client().push({ sessionId: "s", userId: "u", context: big, idempotencyKey: "k" }),
      );
      expect(err.code).toBe("too_large");
      expect(err.attempts).toBe(0);
      expect(sim.requests).toHaveLength(0);
    });

    it("never puts context values into error messages", async () => {
      sim.setFaults(() => ({ status: 500 }));
      const err = await pushError(
        client({ maxAttempts: 2 }).push({
          sessionId: "s",
          userId: "u",
          context: { __enc_card: "SECRET-SEALED-VALUE" },
          idempotencyKey: "k",
        }),
      );
      expect(err.message).not.toContain("SECRET-SEALED-VALUE");
    });
  });

  it("ends 200 concurrent pushes under random faults either applied exactly once or reported failed", async () => {
    const seed = 20240611;
    const seen = new Map<string, number>();
    sim.setFaults((req) => {
      const key = req.idempotencyKey ?? "";
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      const r = hashUnit(seed, `${key}#${n}`);
      if (r < 0.1) return { rateLimit: 0 };
      if (r < 0.2) return { status: 503 };
      if (r < 0.27) return { drop: "before" };
      if (r < 0.35) return { drop: "after" };
      return undefined;
    });
    const c = client({ maxAttempts: 3, random: () => 0 });
    const pushes = Array.from({ length: 200 }, (_, i) => ({
      sessionId: `s${i}`,
      userId: `u${i}`,
      context: { [`__enc_f${i}`]: `sealed-${i}`, [`f${i}`]: null },
      idempotencyKey: `push-${i}`,
    }));
    const outcomes = await Promise.allSettled(pushes.map((p) => c.push(p)));

    let ok = 0;
    let failed = 0;
    outcomes.forEach((outcome, i) => {
      const p = pushes[i];
      if (p === undefined) throw new Error("unreachable");
      const applied = sim.applications.get(p.idempotencyKey) ?? 0;
      if (outcome.status === "fulfilled") {
        ok++;
        expect(applied).toBe(1);
        expect(sim.contexts.get(p.sessionId)).toEqual(p.context);
      } else {
        failed++;
        expect(outcome.reason).toBeInstanceOf(CognigyPushError);
        // A failed push may still have been applied once (a drop after applying on the last attempt).
        expect(applied).toBeLessThanOrEqual(1);
        if (applied === 0) expect(sim.contexts.has(p.sessionId)).toBe(false);
        else expect(sim.contexts.get(p.sessionId)).toEqual(p.context);
      }
    });
    expect(ok + failed).toBe(200);
    expect(ok).toBeGreaterThan(150);
    expect(failed).toBeGreaterThan(0);
    expect(sim.appliedCount()).toBe([...sim.applications.values()].reduce((a, b) => a + b, 0));
  });
});
