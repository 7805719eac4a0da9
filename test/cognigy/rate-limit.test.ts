/**
 * Cognigy's REST rate limit, kept by Fieldseal itself: a real Fieldseal server pushes (PushSession over
 * Connect) into the Cognigy simulator, which enforces the same per-IP limit Cognigy documents.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { PushMode } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

let sim: CognigySimulator | undefined;
let fs: TestFieldseal | undefined;

afterEach(async () => {
  await fs?.close();
  await sim?.close();
  fs = undefined;
  sim = undefined;
});

async function start(opts: {
  simLimit: { limit: number; windowSec: number };
  rateLimit: number;
  rateWindowSec: number;
  deadlineMs: number;
  retryAfterCapMs?: number;
}): Promise<{ sim: CognigySimulator; fs: TestFieldseal }> {
  sim = await startCognigySimulator({ rateLimit: opts.simLimit });
  fs = await startTestFieldseal({
    settings: {
      cognigy: {
        baseUrl: sim.url,
        apiKey: sim.apiKey,
        mode: "context_inject",
        deadlineMs: opts.deadlineMs,
        rateLimit: opts.rateLimit,
        rateWindowSec: opts.rateWindowSec,
        ...(opts.retryAfterCapMs !== undefined ? { retryAfterCapMs: opts.retryAfterCapMs } : {}),
      },
    },
  });
  return { sim, fs };
}

type Outcome = { ok: true } | { ok: false; code: Code; reason: string | null; message: string };

async function push(f: TestFieldseal, sessionId: string): Promise<Outcome> {
  try {
    await f.client("bot").pushSession({
      sessionId,
      userId: "user-1",
      mode: PushMode.CONTEXT_INJECT,
      context: { __enc_card: { kind: { case: "stringValue", value: `fs1.sealed-${sessionId}` } } },
    });
    return { ok: true };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { ok: false, code: ce.code, reason: ce.metadata.get("fieldseal-reason"), message: ce.rawMessage };
  }
}

describe("the Cognigy REST rate limit, kept by Fieldseal", () => {
  it("a burst over the limit: the pushes past it fail with RESOURCE_EXHAUSTED cognigy_rate_limited, Cognigy sees no more than the limit", async () => {
    const { sim, fs } = await start({
      simLimit: { limit: 5, windowSec: 300 },
      rateLimit: 5,
      rateWindowSec: 300,
      deadlineMs: 2000,
    });
    const outcomes = await Promise.all(Array.from({ length: 12 }, (_, i) => push(fs, `burst-${i}`)));
    const ok = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(7);
    for (const r of refused) {
      expect(r.code).toBe(Code.ResourceExhausted);
      expect(r.reason).toBe("cognigy_rate_limited");
      expect(r.message).toMatch(
        /Cognigy push failed after 0 attempt\(s\): Cognigy.AI allows 5 requests per 300 s and this process has used them all/,
      );
      expect(r.message).toMatch(/Retry later/);
    }
    // The refused pushes never left the process: Cognigy saw exactly the five that fit, none of them a 429.
    expect(sim.requests).toHaveLength(5);
    expect(sim.requests.every((r) => r.status === 200)).toBe(true);
    expect(sim.peakWindowCount()).toBe(5);
  });

  it("pushes over the limit wait for a token within their deadline, and Cognigy's window never overflows", async () => {
    const { sim, fs } = await start({
      simLimit: { limit: 3, windowSec: 1 },
      rateLimit: 3,
      rateWindowSec: 1,
      deadlineMs: 10_000,
    });
    const outcomes = await Promise.all(Array.from({ length: 7 }, (_, i) => push(fs, `wait-${i}`)));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sim.requests).toHaveLength(7);
    // The simulator's own sliding window (3 per second) never had to refuse one.
    expect(sim.requests.filter((r) => r.status === 429)).toEqual([]);
    expect(sim.peakWindowCount()).toBeLessThanOrEqual(3);
    const times = sim.requests.map((r) => r.at).sort((a, b) => a - b);
    for (const start of times) {
      expect(times.filter((t) => t >= start && t < start + 1000).length).toBeLessThanOrEqual(3);
    }
  });

  it("honours a 429's Retry-After for every push of the process, not only the refused one", async () => {
    const { sim, fs } = await start({
      simLimit: { limit: 1000, windowSec: 300 },
      rateLimit: 1000,
      rateWindowSec: 300,
      deadlineMs: 8000,
      retryAfterCapMs: 5000,
    });
    sim.setFaults([{ rateLimit: 1 }]);
    const first = push(fs, "limited");
    // Once Fieldseal has the 429 (its attempt log says so), a second push starts; it must not reach
    // Cognigy before Retry-After has passed.
    const took429 = () =>
      fs.logs.some((l) => l.includes("cognigy push attempt") && l.includes('"status":429'));
    for (let i = 0; i < 300 && !took429(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(took429()).toBe(true);
    const refusedAt = sim.requests.find((r) => r.status === 429)?.at;
    expect(refusedAt).toBeDefined();
    const second = await push(fs, "bystander");
    expect(second).toEqual({ ok: true });
    expect(await first).toEqual({ ok: true });
    const later = sim.requests.filter((r) => r.status === 200);
    expect(later).toHaveLength(2);
    for (const r of later) expect(r.at - (refusedAt as number)).toBeGreaterThanOrEqual(1000);
  });

  it("a Retry-After past the deadline fails the push at once, and holds back the next push without a request", async () => {
    const { sim, fs } = await start({
      simLimit: { limit: 1000, windowSec: 300 },
      rateLimit: 1000,
      rateWindowSec: 300,
      deadlineMs: 2000,
      retryAfterCapMs: 60_000,
    });
    sim.setFaults([{ rateLimit: 30 }]);
    const first = await push(fs, "refused");
    expect(first).toMatchObject({ ok: false, code: Code.ResourceExhausted, reason: "cognigy_rate_limited" });
    expect(first.ok === false && first.message).toMatch(
      /HTTP 429: Too Many Requests Error: rate limit exceeded .*next attempt would pass the deadline/,
    );
    const second = await push(fs, "held-back");
    expect(second).toMatchObject({ ok: false, code: Code.ResourceExhausted, reason: "cognigy_rate_limited" });
    expect(second.ok === false && second.message).toMatch(/after 0 attempt\(s\)/);
    expect(sim.requests).toHaveLength(1);
  });

  it("a slow Cognigy holds its tokens until it answers: a push that cannot get one fails at once, sending nothing", async () => {
    const { sim, fs } = await start({
      simLimit: { limit: 1000, windowSec: 300 },
      rateLimit: 2,
      rateWindowSec: 300,
      deadlineMs: 4000,
    });
    sim.setFaults([{ delayMs: 1500 }, { delayMs: 1500 }]);
    const slow = [push(fs, "slow-1"), push(fs, "slow-2")];
    for (let i = 0; i < 300 && sim.requests.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sim.requests).toHaveLength(2);
    // Both tokens are in flight: the earliest one could come back is a window after an answer.
    const third = await push(fs, "third");
    expect(third).toMatchObject({ ok: false, code: Code.ResourceExhausted, reason: "cognigy_rate_limited" });
    expect(await Promise.all(slow)).toEqual([{ ok: true }, { ok: true }]);
    expect(sim.requests).toHaveLength(2);
  });
});
