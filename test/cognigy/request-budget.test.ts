import { describe, expect, it } from "vitest";
import { CognigyRequestBudget } from "../../src/cognigy/request-budget.js";
import { FieldsealError } from "../../src/errors.js";

/** A clock that moves only when the budget sleeps (or the test says so). */
function fakeClock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    sleep: async (ms: number) => {
      t += ms;
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<FieldsealError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FieldsealError);
  return err as FieldsealError;
}

describe("CognigyRequestBudget", () => {
  it("defaults to Cognigy's shared SaaS limit: 1,000 requests per 5 minutes", () => {
    const budget = new CognigyRequestBudget();
    expect(budget.limit).toBe(1000);
    expect(budget.windowMs).toBe(300_000);
    expect(budget.available()).toBe(1000);
  });

  it("hands out `limit` tokens, then refuses at once when none can come back before the deadline", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 3, windowMs: 60_000, ...clock });
    for (let i = 0; i < 3; i++) (await budget.take(clock.now() + 1000)).done();
    const err = await refusal(budget.take(clock.now() + 1000));
    expect(err.code).toBe("cognigy_rate_limited");
    expect(err.message).toMatch(/allows 3 requests per 60 s .* next one could go out in 60 s/);
    expect(err.message).toMatch(/FIELDSEAL_COGNIGY_RATE_LIMIT/);
    // Refused without waiting: the clock did not move.
    expect(clock.now()).toBe(1_000_000);
  });

  it("gives a token back one window after its request finished, not after it was sent", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 1, windowMs: 10_000, ...clock });
    const token = await budget.take(clock.now() + 100_000);
    clock.advance(4000); // the request took 4 s to answer
    token.done();
    token.done(); // a second done() changes nothing
    const before = clock.now();
    (await budget.take(clock.now() + 100_000)).done();
    expect(clock.now() - before).toBe(10_000);
  });

  it("takes back a token released unused at once, so a request never sent costs no window", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 1, windowMs: 10_000, ...clock });
    const unused = await budget.take(clock.now() + 1000);
    expect(budget.available()).toBe(0);
    unused.release();
    unused.done(); // after release, done() changes nothing
    expect(budget.available()).toBe(1);
    const used = await budget.take(clock.now() + 1000);
    used.done();
    used.release(); // after done(), release changes nothing: the request was sent
    expect(budget.available()).toBe(0);
    expect((await refusal(budget.take(clock.now() + 1000))).code).toBe("cognigy_rate_limited");
    expect(clock.now()).toBe(1_000_000);
  });

  it("never lets more than `limit` requests into any window, under a stream of takers", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 5, windowMs: 1000, ...clock });
    const sentAt: number[] = [];
    for (let i = 0; i < 40; i++) {
      const token = await budget.take(clock.now() + 60_000);
      sentAt.push(clock.now());
      clock.advance(i % 3); // answers take 0 to 2 ms
      token.done();
    }
    for (const start of sentAt) {
      expect(sentAt.filter((t) => t >= start && t < start + 1000).length).toBeLessThanOrEqual(5);
    }
    // And it did use the budget: 40 requests at 5 per second take 7 windows, not 40.
    expect(clock.now() - 1_000_000).toBeLessThan(8 * 1000 + 100);
  });

  it("counts a token in flight as gone for at least a window", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 1, windowMs: 5000, ...clock });
    await budget.take(clock.now() + 1000); // never finished
    const err = await refusal(budget.take(clock.now() + 4999));
    expect(err.code).toBe("cognigy_rate_limited");
  });

  it("wakes a waiter when another request's answer frees a token, and waits the window from then", async () => {
    const budget = new CognigyRequestBudget({ limit: 1, windowMs: 200 });
    const first = await budget.take(Date.now() + 10_000);
    const waiting = budget.take(Date.now() + 10_000);
    const finishedAt = Date.now();
    first.done();
    (await waiting).done();
    expect(Date.now() - finishedAt).toBeGreaterThanOrEqual(199);
  });

  it("holds every taker back during a 429 pause, and lets the pausing push through once it waited itself", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 100, windowMs: 60_000, ...clock });
    const until = clock.now() + 3000;
    budget.pauseUntil(until);
    expect(budget.available()).toBe(0);
    // The push that got the 429 already slept: it is not made to wait again.
    (await budget.take(clock.now() + 10_000, undefined, until)).done();
    expect(clock.now()).toBe(1_000_000);
    // Any other push waits the pause out...
    (await budget.take(clock.now() + 10_000)).done();
    expect(clock.now()).toBe(until);
    // ...or is refused at once when the pause outlasts its deadline.
    budget.pauseUntil(clock.now() + 5000);
    expect((await refusal(budget.take(clock.now() + 4000))).code).toBe("cognigy_rate_limited");
  });

  it("caps a pause at one window, whatever Retry-After said", async () => {
    const clock = fakeClock();
    const budget = new CognigyRequestBudget({ limit: 10, windowMs: 2000, ...clock });
    budget.pauseUntil(clock.now() + 86_400_000);
    (await budget.take(clock.now() + 10_000)).done();
    expect(clock.now()).toBe(1_002_000);
  });

  it("stops waiting when the caller aborts", async () => {
    const budget = new CognigyRequestBudget({ limit: 1, windowMs: 60_000 });
    const held = await budget.take(Date.now() + 120_000);
    const controller = new AbortController();
    const waiting = budget.take(Date.now() + 120_000, controller.signal);
    held.done();
    controller.abort();
    const err = await refusal(waiting);
    expect(err.code).toBe("push_failed");
    expect(err.message).toMatch(/cancelled/);
  });

  it("refuses a limit or window that is not a positive whole number", () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new CognigyRequestBudget({ limit: bad })).toThrow(/limit must be a positive whole number/);
      expect(() => new CognigyRequestBudget({ windowMs: bad })).toThrow(/windowMs must be/);
    }
  });
});
