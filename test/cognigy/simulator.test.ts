/**
 * The Cognigy simulator behaves as Cognigy documents (docs/cognigy-sources.md lists the sources): the per-IP
 * rate limit, context inject's required userId, problem documents shaped as @cognigy/rest-api-client reads
 * them, and 404 for paths Cognigy does not have.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";

let sim: CognigySimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

const inject = (s: CognigySimulator, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/new/v2.0/sessions/s1/context/inject`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": s.apiKey, ...headers },
    body: JSON.stringify(body),
  });

/** The REST client's IErrorResponse: RFC 7807 members plus Cognigy's numeric code, traceId and details. */
async function expectProblem(res: Response, status: number, code: number, title: string, detail: RegExp) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, title, instance: expect.any(String), details: {} });
  expect(body.detail).toMatch(detail);
  expect(body.traceId).toMatch(/^trace-[0-9a-f]{16}$/);
  expect(res.headers.get("x-trace-id")).toBe(body.traceId);
  return body;
}

describe("Cognigy simulator", () => {
  it("defaults to 1,000 requests per 5 minutes per IP, like shared SaaS", async () => {
    let t = 1_000_000;
    sim = await startCognigySimulator({ now: () => t });
    const statuses: number[] = [];
    for (let i = 0; i < 1001; i++) {
      const res = await fetch(`${sim.url}/nowhere`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 1000).every((s) => s === 404)).toBe(true);
    expect(statuses[1000]).toBe(429);
    t += 300_000;
    expect((await inject(sim, { userId: "u", context: {} })).status).toBe(200);
  });

  it("counts every request from one address against one window, whatever its credential, and answers 429 with Retry-After", async () => {
    let t = 5_000_000;
    sim = await startCognigySimulator({ rateLimit: { limit: 3, windowSec: 60 }, now: () => t });
    expect((await inject(sim, { userId: "u", context: {} })).status).toBe(200);
    t += 20_000;
    expect((await inject(sim, { userId: "u", context: {} }, { "x-api-key": "wrong" })).status).toBe(401);
    t += 20_000;
    const bearer = await fetch(`${sim.url}/api/v1/sessions/s1/variables`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${sim.bearerToken}` },
      body: JSON.stringify({ variables: {} }),
    });
    expect(bearer.status).toBe(200);
    t += 1000;
    const limited = await inject(sim, { userId: "u", context: { a: 1 } });
    await expectProblem(limited, 429, 429, "Too Many Requests Error", /rate limit exceeded/);
    // The oldest request leaves the sliding window 60 s after it arrived: 19 s from now.
    expect(limited.headers.get("retry-after")).toBe("19");
    expect(sim.contexts.get("s1")).toEqual({});
    t += 19_000;
    expect((await inject(sim, { userId: "u", context: { a: 1 } })).status).toBe(200);
    expect(sim.peakWindowCount()).toBe(3);
  });

  it("refuses context inject without userId (400, MISSING_ARGUMENT code 1000) and applies nothing", async () => {
    sim = await startCognigySimulator();
    await expectProblem(
      await inject(sim, { context: { a: 1 } }),
      400,
      1000,
      "Invalid Argument Error",
      /"userId" is required/,
    );
    await expectProblem(
      await inject(sim, { userId: "", context: { a: 1 } }),
      400,
      1005,
      "Invalid Argument Error",
      /"userId" must be a non-empty string/,
    );
    await expectProblem(
      await inject(sim, { userId: 7, context: { a: 1 } }),
      400,
      1005,
      "Invalid Argument Error",
      /"userId" must be a non-empty string/,
    );
    await expectProblem(
      await inject(sim, { userId: "u" }),
      400,
      1000,
      "Invalid Argument Error",
      /"context" is required/,
    );
    expect(sim.appliedCount()).toBe(0);
  });

  it("answers 404 for paths Cognigy does not have, 405 for a wrong method, 401 for a wrong key", async () => {
    sim = await startCognigySimulator();
    const notFound = await fetch(`${sim.url}/new/v2.0/sessions/s1/variables`, { method: "POST" });
    await expectProblem(notFound, 404, 1002, "Not Found Error", /no route/);
    const wrongMethod = await fetch(`${sim.url}/new/v2.0/sessions/s1/context/inject`, { method: "PUT" });
    const body = await expectProblem(wrongMethod, 405, 1013, "Method Not Allowed Error", /use POST/);
    expect(body.instance).toBe("/new/v2.0/sessions/s1/context/inject");
    expect(wrongMethod.headers.get("allow")).toBe("POST");
    await expectProblem(
      await inject(sim, { userId: "u", context: {} }, { "x-api-key": "nope" }),
      401,
      401,
      "Unauthorized Error",
      /missing or invalid credentials/,
    );
  });

  it("accepts the API key as ?api_key=, as Cognigy's API documentation shows", async () => {
    sim = await startCognigySimulator();
    const res = await fetch(`${sim.url}/new/v2.0/sessions/s1/context/inject?api_key=${sim.apiKey}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "u", context: { a: 1 } }),
    });
    expect(res.status).toBe(200);
    expect(sim.contexts.get("s1")).toEqual({ a: 1 });
  });
});
