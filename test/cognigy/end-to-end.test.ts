/**
 * The Cognigy.AI integration end to end: a real Fieldseal server (webhook adapter, Connect handlers, auth,
 * key store, Cognigy client) pushing into a real Cognigy simulator, driven over real loopback sockets by
 * fetch (HTTP/1.1), node:http2, a Connect client and @grpc/grpc-js.
 */
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FieldsealService, PushMode, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { signWebhookBody, signWebhookV2 } from "../../src/cognigy/webhook-signature.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type grpc, grpcJsClient, unary } from "../support/grpc-js.js";
import { hashUnit } from "../support/seeded-random.js";

const CARD = "4111111111111111";
const SSN = "999-99-0000";
const FLAGGED = "field:credit_card,field:ssn";
const HMAC_SECRET = "flow-signing-secret-0123456789-abcdef";

const PRINCIPALS = [
  { name: "bot", scopes: ["encrypt", "push"] },
  { name: "sealer", scopes: ["encrypt"] },
  { name: "billing", scopes: ["decrypt:credit_card"] },
  { name: "hr", scopes: ["decrypt:ssn"] },
  { name: "flow", scopes: ["encrypt", "push"] },
];

const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });

interface Answer {
  status: number;
  contentType: string | undefined;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: an answer's JSON is asserted field by field
  json: any;
}

interface WebhookCall {
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
  method?: string;
  /** Request target; default /webhooks/cognigy. */
  path?: string;
}

/** POSTs to /webhooks/cognigy over HTTP/1.1 (fetch). */
async function viaHttp1(baseUrl: string, call: WebhookCall): Promise<Answer> {
  const method = call.method ?? "POST";
  const res = await fetch(`${baseUrl}${call.path ?? "/webhooks/cognigy"}`, {
    method,
    headers: { "content-type": call.contentType ?? "application/json", ...call.headers },
    ...(method === "GET" ? {} : { body: call.body }),
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get("content-type") ?? undefined,
    text,
    json: parseOrUndefined(text),
  };
}

/** POSTs to /webhooks/cognigy over cleartext HTTP/2 (node:http2, prior knowledge). */
async function viaHttp2(baseUrl: string, call: WebhookCall): Promise<Answer> {
  const client = http2.connect(baseUrl);
  try {
    return await new Promise<Answer>((resolve, reject) => {
      client.once("error", reject);
      const req = client.request({
        ":method": call.method ?? "POST",
        ":path": call.path ?? "/webhooks/cognigy",
        "content-type": call.contentType ?? "application/json",
        ...call.headers,
      });
      let status = 0;
      let contentType: string | undefined;
      const chunks: Buffer[] = [];
      req.on("response", (headers) => {
        status = Number(headers[":status"]);
        contentType = headers["content-type"];
      });
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status, contentType, text, json: parseOrUndefined(text) });
      });
      req.on("error", reject);
      req.end(call.body);
    });
  } finally {
    client.close();
  }
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function jsonCall(sessionId: string, token: string, extra: Record<string, unknown> = {}): WebhookCall {
  return {
    body: JSON.stringify({
      sessionId,
      userId: "user-1",
      variables: { credit_card: CARD, ssn: SSN, language: "en" },
      ...extra,
    }),
    headers: { authorization: `Bearer ${token}`, "x-sensitive-metadata": FLAGGED },
  };
}

/** What a Cognigy HTTP Request node sends by default: a form body. */
function formCall(sessionId: string, token: string): WebhookCall {
  const form = new URLSearchParams({
    sessionId,
    userId: "user-1",
    "variables[credit_card]": CARD,
    "variables[ssn]": SSN,
    "variables[language]": "en",
  });
  return {
    body: form.toString(),
    contentType: "application/x-www-form-urlencoded",
    headers: { authorization: `Bearer ${token}`, "x-sensitive-metadata": FLAGGED },
  };
}

/** Cognigy's Form-Data payload: one multipart/form-data part per key (RFC 7578). */
function multipartCall(sessionId: string, token: string): WebhookCall {
  const boundary = "----e2eBoundary";
  const parts: Array<[string, string]> = [
    ["sessionId", sessionId],
    ["userId", "user-1"],
    ["variables[credit_card]", CARD],
    ["variables[ssn]", SSN],
    ["variables[language]", "en"],
  ];
  return {
    body: `${parts
      .map(([n, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`)
      .join("")}--${boundary}--\r\n`,
    contentType: `multipart/form-data; boundary=${boundary}`,
    headers: { authorization: `Bearer ${token}`, "x-sensitive-metadata": FLAGGED },
  };
}

/** The variables a sealed answer must carry: an envelope and a null per flagged field, nothing else. */
function expectSealedVariables(variables: Record<string, unknown>): void {
  expect(Object.keys(variables).sort()).toEqual(["__enc_credit_card", "__enc_ssn", "credit_card", "ssn"]);
  expect(variables.credit_card).toBeNull();
  expect(variables.ssn).toBeNull();
  expect(variables.__enc_credit_card).toMatch(/^fs1\.default\.\d+\./);
  expect(variables.__enc_ssn).toMatch(/^fs1\.default\.\d+\./);
}

/** Runs `tasks` with at most `limit` at a time. */
async function boundedAll<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

const MODES = [
  { mode: "context_inject", method: "POST", path: (s: string) => `/new/v2.0/sessions/${s}/context/inject` },
  { mode: "variables_put", method: "PUT", path: (s: string) => `/api/v1/sessions/${s}/variables` },
] as const;

const SENDERS = [
  { name: "JSON over HTTP/1.1", send: viaHttp1, body: jsonCall },
  { name: "form over HTTP/1.1", send: viaHttp1, body: formCall },
  { name: "JSON over HTTP/2", send: viaHttp2, body: jsonCall },
  { name: "form over HTTP/2", send: viaHttp2, body: formCall },
  { name: "multipart over HTTP/1.1", send: viaHttp1, body: multipartCall },
  { name: "multipart over HTTP/2", send: viaHttp2, body: multipartCall },
] as const;

describe.each(MODES)("webhook → sealed answer → pushed context ($mode)", ({ mode, method, path }) => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: {
          baseUrl: sim.url,
          apiKey: sim.apiKey,
          bearerToken: sim.bearerToken,
          mode,
          pushEnabled: true,
        },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });

  it.each(SENDERS)(
    "$name: answers sealed values, pushes exactly them, and they open only for their field's reader",
    async ({ name, send, body }) => {
      const sessionId = `e2e-${mode}-${name.replace(/\W+/g, "-")}`;
      const answer = await send(fs.url, body(sessionId, fs.tokens.bot ?? ""));

      expect(answer.status).toBe(200);
      expect(answer.contentType).toBe("application/json");
      expect(answer.text).not.toContain(CARD);
      expect(answer.text).not.toContain(SSN);
      expect(answer.json).toMatchObject({
        status: "sealed",
        sessionId,
        keyring: "default",
        pushed: { attempts: 1, httpStatus: 200, deduplicated: false },
      });
      expect(answer.json.keyVersion).toBeGreaterThanOrEqual(1);
      expectSealedVariables(answer.json.variables);

      // The adapter sends only the sealed keys and the nulls: the unflagged "language" never leaves Fieldseal.
      const sent = sim.requests.filter((r) => r.path === path(sessionId));
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({ method, status: 200 });
      expect(sim.contexts.get(sessionId)).toEqual(answer.json.variables);

      const billing = fs.client("billing");
      const hr = fs.client("hr");
      const opened = await billing.decryptField({
        scope: session(sessionId),
        field: "credit_card",
        sealed: answer.json.variables.__enc_credit_card,
      });
      expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
      const ssn = await hr.decryptField({
        scope: session(sessionId),
        field: "ssn",
        sealed: answer.json.variables.__enc_ssn,
      });
      expect(ssn.value?.kind).toEqual({ case: "stringValue", value: SSN });
      await expect(
        hr.decryptField({
          scope: session(sessionId),
          field: "credit_card",
          sealed: answer.json.variables.__enc_credit_card,
        }),
      ).rejects.toMatchObject({ code: Code.PermissionDenied });
      await expect(
        billing.decryptField({
          scope: session(sessionId),
          field: "ssn",
          sealed: answer.json.variables.__enc_ssn,
        }),
      ).rejects.toMatchObject({ code: Code.PermissionDenied });
    },
  );
});

describe("200 concurrent webhooks under 429s, 5xx and dropped connections", () => {
  const SEED = 20_251_107;
  const COUNT = 200;
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  /** Attempts seen per session, so each attempt's fault depends on the seed, not on arrival order. */
  const attemptsBySession = new Map<string, number>();

  beforeAll(async () => {
    sim = await startCognigySimulator({
      rateLimit: { limit: 100_000, windowSec: 300 },
      faults: (req) => {
        const n = (attemptsBySession.get(req.sessionId) ?? 0) + 1;
        attemptsBySession.set(req.sessionId, n);
        const r = hashUnit(SEED, `${req.sessionId}#${n}`);
        if (r < 0.12) return { rateLimit: hashUnit(SEED, `ra:${req.sessionId}#${n}`) < 0.5 ? 0 : 1 };
        if (r < 0.22) return { status: 503 };
        if (r < 0.28) return { status: 500 };
        if (r < 0.37) return { drop: "before" };
        if (r < 0.46) return { drop: "after" };
        return undefined;
      },
    });
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: {
          baseUrl: sim.url,
          apiKey: sim.apiKey,
          mode: "context_inject",
          deadlineMs: 5000,
          maxAttempts: 4,
          baseBackoffMs: 5,
          backoffCapMs: 40,
          // A Retry-After of 1 s is past this cap: that push fails at once, and every push waits out the
          // 1 s pause of the request budget before its next request (a Retry-After of 0 is retried at once).
          retryAfterCapMs: 50,
          pushEnabled: true,
        },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });

  it("ends every webhook pushed exactly once or reported failed, and Cognigy's state matches the answers", async () => {
    const token = fs.tokens.bot ?? "";
    const answers = await boundedAll(COUNT, 50, async (i) => {
      const sessionId = `storm-${i}`;
      return { sessionId, answer: await viaHttp1(fs.url, jsonCall(sessionId, token)) };
    });

    let pushed = 0;
    let failed = 0;
    for (const { sessionId, answer } of answers) {
      // One webhook, one push: every attempt of it carries the same idempotency key.
      const keys = new Set(
        sim.requests
          .filter((r) => r.path === `/new/v2.0/sessions/${sessionId}/context/inject`)
          .map((r) => r.idempotencyKey),
      );
      expect(keys.size).toBeLessThanOrEqual(1);
      const [key] = [...keys];
      const applied = key === undefined ? 0 : (sim.applications.get(key) ?? 0);
      expect(answer.text).not.toContain(CARD);

      expect(answer.status).toBe(200);
      if (answer.json.status === "sealed") {
        pushed++;
        expect(answer.json.pushed).toMatchObject({ httpStatus: 200, deduplicated: false });
        expect(answer.json.pushed.attempts).toBeGreaterThanOrEqual(1);
        expect(answer.json.pushed.attempts).toBeLessThanOrEqual(4);
        expect(applied).toBe(1);
        expect(sim.contexts.get(sessionId)).toEqual(answer.json.variables);
      } else {
        failed++;
        expect(answer.json).toMatchObject({ status: "sealed_not_pushed", pushed: null });
        // cognigy_rate_limited: a 429's Retry-After that did not fit the push deadline (docs/cognigy.md).
        expect([
          "unavailable",
          "push_failed",
          "rate_limited",
          "cognigy_rate_limited",
          "deadline_exceeded",
        ]).toContain(answer.json.reason);
        expectSealedVariables(answer.json.variables);
        // A failed answer may still have been applied once (a drop after applying, then no confirmation);
        // when it was, the session holds exactly the values the flow was told to keep.
        expect(applied).toBeLessThanOrEqual(1);
        if (applied === 1) expect(sim.contexts.get(sessionId)).toEqual(answer.json.variables);
        else expect(sim.contexts.has(sessionId)).toBe(false);
      }
    }
    expect(pushed + failed).toBe(COUNT);
    // The seed makes both outcomes occur; without both the test would prove half of what it says.
    expect(pushed).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(0);
    expect([...sim.applications.values()].every((n) => n === 1)).toBe(true);
    expect(sim.appliedCount()).toBe(sim.applications.size);
    expect(sim.contexts.size).toBe(sim.applications.size);
  });
});

describe("bad webhook requests are refused with RFC 7807 problems and nothing reaches Cognigy", () => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, mode: "context_inject", pushEnabled: true },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  const token = () => fs.tokens.bot ?? "";
  const cases: Array<{
    name: string;
    call: () => WebhookCall;
    status: number;
    code: string;
    detail: RegExp;
  }> = [
    {
      name: "bad JSON",
      call: () => ({
        ...jsonCall("bad-json", token()),
        body: `{"sessionId": "s", "variables": {"credit_card": "${CARD}"`,
      }),
      status: 400,
      code: "invalid_argument",
      detail: /not valid JSON/,
    },
    {
      name: "a missing sessionId",
      call: () => jsonCall("x", token(), { sessionId: undefined }),
      status: 400,
      code: "invalid_argument",
      detail: /"sessionId" is required/,
    },
    {
      name: "an X-Sensitive-Metadata header in a wrong format",
      call: () => {
        const c = jsonCall("bad-header", token());
        return { ...c, headers: { ...c.headers, "x-sensitive-metadata": "credit_card;ssn" } };
      },
      status: 400,
      code: "invalid_argument",
      detail: /entry 1 is not of the form "field:<name>"/,
    },
    {
      name: "an oversized body",
      call: () => jsonCall("big", token(), { padding: "x".repeat(70 * 1024) }),
      status: 413,
      code: "too_large",
      detail: /exceeds 65536 bytes/,
    },
    {
      name: "a wrong content type",
      call: () => ({ ...jsonCall("text", token()), contentType: "text/plain" }),
      status: 415,
      code: "unsupported_media_type",
      detail: /application\/json/,
    },
    {
      name: "a wrong method",
      call: () => ({ ...jsonCall("get", token()), method: "GET" }),
      status: 405,
      code: "method_not_allowed",
      detail: /POST/,
    },
    {
      name: "no token",
      call: () => {
        const c = jsonCall("no-token", token());
        return { ...c, headers: { "x-sensitive-metadata": FLAGGED } };
      },
      status: 401,
      code: "unauthenticated",
      detail: /Bearer/,
    },
    {
      name: "an unknown token",
      call: () => jsonCall("bad-token", "fsk_not-a-real-token"),
      status: 401,
      code: "unauthenticated",
      detail: /.+/,
    },
    {
      name: "a caller that may not seal",
      call: () => jsonCall("no-seal", fs.tokens.billing ?? ""),
      status: 403,
      code: "permission_denied",
      detail: /.+/,
    },
  ];

  it.each(cases)("$status for $name", async ({ call, status, code, detail }) => {
    const answer = await viaHttp1(fs.url, call());
    expect(answer.status).toBe(status);
    expect(answer.contentType).toBe("application/problem+json");
    expect(answer.text).not.toContain(CARD);
    expect(answer.text).not.toContain(SSN);
    expect(answer.json).toMatchObject({ type: `urn:fieldseal:problem:${code}`, status, code });
    expect(typeof answer.json.title).toBe("string");
    expect(answer.json.detail).toMatch(detail);
    expect(answer.json.variables).toBeUndefined();
    expect(sim.requests).toEqual([]);
  });

  it("200 sealed_not_pushed for a caller that may seal but not push, answering the sealed values", async () => {
    const answer = await viaHttp1(fs.url, jsonCall("seal-only", fs.tokens.sealer ?? ""));
    expect(answer.status).toBe(200);
    expect(answer.contentType).toBe("application/json");
    expect(answer.json).toMatchObject({
      status: "sealed_not_pushed",
      reason: "permission_denied",
      pushed: null,
    });
    expect(answer.json.message).toMatch(/sealed but the push to Cognigy.AI failed/);
    expectSealedVariables(answer.json.variables);
    expect(sim.requests).toEqual([]);
  });
});

describe("signed webhooks through the real server", () => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, mode: "context_inject", pushEnabled: true },
        webhook: { hmacSecrets: { flow: HMAC_SECRET } },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });

  const signed = (
    sessionId: string,
    ts = Math.floor(Date.now() / 1000),
    opts: { path?: string; flagged?: string } = {},
  ): WebhookCall => {
    const { body } = jsonCall(sessionId, "");
    const path = opts.path ?? "/webhooks/cognigy";
    const flagged = opts.flagged ?? FLAGGED;
    return {
      body,
      path,
      headers: {
        "x-sensitive-metadata": flagged,
        "x-fieldseal-key-id": "flow",
        "x-fieldseal-timestamp": String(ts),
        "x-fieldseal-signature": signWebhookV2(HMAC_SECRET, {
          method: "POST",
          path,
          timestampSec: ts,
          sensitiveMetadata: flagged,
          body,
        }),
      },
    };
  };

  it("acts as the signer once, answers the replay from memory, refuses a tampered body and a stale timestamp", async () => {
    const valid = signed("signed-1");
    const ok = await viaHttp1(fs.url, valid);
    expect(ok.status).toBe(200);
    expectSealedVariables(ok.json.variables);
    const audited = fs.audit.events.filter((e) => e.scopeId === "signed-1");
    expect(audited.map((e) => [e.action, e.principal, e.outcome])).toEqual([
      ["encrypt", "flow", "ok"],
      ["push", "flow", "ok"],
    ]);

    // A byte-for-byte copy (the HTTP Request node's own retry) gets the first answer: no seal, no push.
    const replay = await viaHttp1(fs.url, valid);
    expect(replay.status).toBe(200);
    expect(replay.json).toMatchObject({
      status: "sealed",
      variables: ok.json.variables,
      pushed: { attempts: 0, deduplicated: true },
    });

    const tamperedBody = valid.body.replace("signed-1", "signed-2");
    const tampered = await viaHttp1(fs.url, { ...valid, body: tamperedBody });
    expect(tampered.status).toBe(401);
    expect(tampered.json).toMatchObject({ code: "unauthenticated", detail: "signature does not match" });

    const stale = await viaHttp1(fs.url, signed("signed-3", Math.floor(Date.now() / 1000) - 400));
    expect(stale.status).toBe(401);
    expect(stale.json.detail).toMatch(/outside the allowed window/);

    expect(sim.requests).toHaveLength(1);
    expect(sim.requests[0]?.path).toBe("/new/v2.0/sessions/signed-1/context/inject");
    expect([...sim.contexts.keys()]).toEqual(["signed-1"]);
    expect(fs.audit.events.filter((e) => e.scopeId !== "signed-1")).toEqual([]);
  });

  it("refuses a captured request replayed with another X-Sensitive-Metadata, path or method", async () => {
    sim.reset();
    // Captured before it was delivered: nothing is in the replay cache, only the signature can refuse it.
    const captured = signed("captured-1", Math.floor(Date.now() / 1000), { flagged: "field:credit_card" });
    const headers = captured.headers ?? {};
    const swaps: WebhookCall[] = [
      // Seal less than the signer asked for (leave the SSN in plaintext), or more.
      { ...captured, headers: { ...headers, "x-sensitive-metadata": "field:ssn" } },
      { ...captured, headers: { ...headers, "x-sensitive-metadata": FLAGGED } },
      { ...captured, headers: { ...headers, "x-sensitive-metadata": "" } },
      { ...captured, path: "/webhooks/cognigy?variant=1" },
    ];
    for (const swap of swaps) {
      const answer = await viaHttp1(fs.url, swap);
      expect(answer.status).toBe(401);
      expect(answer.json).toMatchObject({ code: "unauthenticated", detail: "signature does not match" });
    }
    // Without the header at all (absent signs as empty).
    const { "x-sensitive-metadata": _, ...withoutHeader } = headers;
    const absent = await viaHttp1(fs.url, { ...captured, headers: withoutHeader });
    expect(absent.status).toBe(401);
    expect(absent.json.detail).toBe("signature does not match");
    // Another method never reaches the signature check: the adapter takes POST only.
    const put = await viaHttp1(fs.url, { ...captured, method: "PUT" });
    expect(put.status).toBe(405);
    expect(sim.requests).toEqual([]);
    // The original, unchanged, is still good once: over HTTP/2 this time (:path is the signed target).
    const original = await viaHttp2(fs.url, captured);
    expect(original.status).toBe(200);
    expect(Object.keys(original.json.variables).sort()).toEqual(["__enc_credit_card", "credit_card"]);
  });

  it("refuses v1 (body-only) signatures by default, naming v2", async () => {
    const ts = Math.floor(Date.now() / 1000);
    const { body } = jsonCall("v1-refused", "");
    const answer = await viaHttp1(fs.url, {
      body,
      headers: {
        "x-sensitive-metadata": FLAGGED,
        "x-fieldseal-key-id": "flow",
        "x-fieldseal-timestamp": String(ts),
        "x-fieldseal-signature": signWebhookBody(HMAC_SECRET, ts, body),
      },
    });
    expect(answer.status).toBe(401);
    expect(answer.json.detail).toMatch(/v1 signatures .* are refused: sign with v2/);
  });
});

describe("webhook signature settings through the real server", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [...PRINCIPALS, { name: "other", scopes: ["encrypt"] }],
      settings: {
        webhook: {
          hmacSecrets: { flow: HMAC_SECRET, other: `${HMAC_SECRET}-other` },
          hmacAcceptV1: true,
          hmacReplayCapacityPerSigner: 3,
        },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
  });

  const signedAs = (keyId: string, secret: string, sessionId: string, ts: number): WebhookCall => {
    const { body } = jsonCall(sessionId, "");
    return {
      body,
      headers: {
        "x-sensitive-metadata": FLAGGED,
        "x-fieldseal-key-id": keyId,
        "x-fieldseal-timestamp": String(ts),
        "x-fieldseal-signature": signWebhookV2(secret, {
          method: "POST",
          path: "/webhooks/cognigy",
          timestampSec: ts,
          sensitiveMetadata: FLAGGED,
          body,
        }),
      },
    };
  };

  it("accepts v1 signatures once when the setting allows them", async () => {
    const ts = Math.floor(Date.now() / 1000);
    const { body } = jsonCall("v1-allowed", "");
    const call: WebhookCall = {
      body,
      headers: {
        "x-sensitive-metadata": FLAGGED,
        "x-fieldseal-key-id": "flow",
        "x-fieldseal-timestamp": String(ts),
        "x-fieldseal-signature": signWebhookBody(HMAC_SECRET, ts, body),
      },
    };
    const first = await viaHttp1(fs.url, call);
    expect(first.status).toBe(200);
    // Used once: a copy is answered with the first answer, never sealed again.
    const copy = await viaHttp1(fs.url, call);
    expect(copy.status).toBe(200);
    expect(copy.json.variables).toEqual(first.json.variables);
    expect(fs.audit.events.filter((e) => e.scopeId === "v1-allowed" && e.action === "encrypt")).toHaveLength(
      1,
    );
  });

  it("holds a flooding signer to its configured capacity without refusing another signer", async () => {
    const ts = Math.floor(Date.now() / 1000) + 1;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++)
      statuses.push((await viaHttp1(fs.url, signedAs("flow", HMAC_SECRET, `flood-${i}`, ts))).status);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(4);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    const other = await viaHttp1(fs.url, signedAs("other", `${HMAC_SECRET}-other`, "other-1", ts));
    expect(other.status).toBe(200);
  });
});

/** PushSession over one transport: resolves with the response or a normalized error. */
type PushCall = (
  fs: TestFieldseal,
  req: {
    sessionId: string;
    userId?: string;
    context: Record<string, string>;
    idempotencyKey?: string;
    mode?: PushMode;
  },
) => Promise<
  | { ok: { attempts: number; httpStatus: number; deduplicated: boolean; traceId: string } }
  | { code: Code; message: string }
>;

const toContext = (context: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(context).map(([k, v]) => [k, { kind: { case: "stringValue" as const, value: v } }]),
  );

const PUSH_TRANSPORTS: Array<{ name: string; call: PushCall }> = [
  {
    name: "gRPC (@grpc/grpc-js)",
    async call(fs, req) {
      const client = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
      try {
        const res = await unary(
          client,
          FieldsealService.method.pushSession,
          { ...req, userId: req.userId ?? "user-1", context: toContext(req.context) },
          fs.tokens.bot,
        );
        return { ok: res };
      } catch (err) {
        const e = err as grpc.ServiceError;
        // gRPC status numbers and Connect codes are the same numbers. connect-node percent-encodes
        // grpc-message with encodeURIComponent and grpc-js decodes it with decodeURI, which leaves
        // reserved characters (":", ",", ";") encoded; decode the rest as a Go or Java client would.
        return { code: e.code as number as Code, message: decodeURIComponent(e.details) };
      } finally {
        client.close();
      }
    },
  },
  {
    name: "Connect over HTTP/2",
    async call(fs, req) {
      const token = fs.tokens.bot ?? "";
      const client = createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: fs.url,
          httpVersion: "2",
          interceptors: [
            (next) => (r) => {
              r.header.set("authorization", `Bearer ${token}`);
              return next(r);
            },
          ],
        }),
      );
      try {
        const res = await client.pushSession({
          ...req,
          userId: req.userId ?? "user-1",
          context: toContext(req.context),
        });
        return { ok: res };
      } catch (err) {
        const e = ConnectError.from(err);
        return { code: e.code, message: e.rawMessage };
      }
    },
  },
];

describe.each(PUSH_TRANSPORTS)("PushSession over $name", ({ name, call }) => {
  const tag = name.startsWith("gRPC") ? "g" : "c";
  const sid = (what: string) => `${tag}-${what}`;
  const KNOWN = ["ok", "retry", "403", "5xx", "big", "dedup", "401", "modes"].map(sid);
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  /** The same Cognigy, but Fieldseal holds a wrong API key. */
  let wrongKey: TestFieldseal;
  beforeAll(async () => {
    sim = await startCognigySimulator({ knownSessions: KNOWN });
    const cognigy = {
      baseUrl: sim.url,
      apiKey: sim.apiKey,
      bearerToken: sim.bearerToken,
      mode: "context_inject",
      maxAttempts: 3,
      baseBackoffMs: 5,
      backoffCapMs: 20,
    };
    fs = await startTestFieldseal({ principals: PRINCIPALS, settings: { cognigy } });
    wrongKey = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: { cognigy: { ...cognigy, apiKey: "not-the-key" } },
    });
  });
  afterAll(async () => {
    await fs.close();
    await wrongKey.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  const expectFailed = (r: Awaited<ReturnType<PushCall>>, code: Code) => {
    if ("ok" in r) throw new Error(`expected ${Code[code]}, got a success`);
    expect(Code[r.code]).toBe(Code[code]);
    expect(r.message).not.toContain(CARD);
    return r.message;
  };

  it("reports the attempts and Cognigy's status after a retried 503", async () => {
    sim.setFaults([{ status: 503 }]);
    const r = await call(fs, { sessionId: sid("retry"), context: { __enc_card: "fs1.x", card: "" } });
    expect(r).toMatchObject({ ok: { attempts: 2, httpStatus: 200, deduplicated: false } });
    if ("ok" in r) expect(r.ok.traceId).toMatch(/^trace-/);
    expect(sim.requests.map((q) => q.status)).toEqual([503, 200]);
    expect(sim.contexts.get(sid("retry"))).toEqual({ __enc_card: "fs1.x", card: "" });
  });

  it("writes through either push mode", async () => {
    const inject = await call(fs, {
      sessionId: sid("modes"),
      context: { a: "1" },
      mode: PushMode.CONTEXT_INJECT,
    });
    const put = await call(fs, {
      sessionId: sid("modes"),
      context: { b: "2" },
      mode: PushMode.VARIABLES_PUT,
    });
    expect(inject).toMatchObject({ ok: { attempts: 1, httpStatus: 200 } });
    expect(put).toMatchObject({ ok: { attempts: 1, httpStatus: 200 } });
    expect(sim.requests.map((q) => `${q.method} ${q.path}`)).toEqual([
      `POST /new/v2.0/sessions/${sid("modes")}/context/inject`,
      `PUT /api/v1/sessions/${sid("modes")}/variables`,
    ]);
    expect(sim.contexts.get(sid("modes"))).toEqual({ a: "1", b: "2" });
  });

  it("fails at once on Cognigy's 401 with FAILED_PRECONDITION, quoting its title, detail and traceId", async () => {
    const message = expectFailed(
      await call(wrongKey, { sessionId: sid("401"), context: { a: "1" } }),
      Code.FailedPrecondition,
    );
    expect(message).toMatch(
      /after 1 attempt\(s\): HTTP 401: Unauthorized Error: missing or invalid credentials \(code 401, traceId trace-[0-9a-f]{16}\)/,
    );
    expect(sim.requests).toHaveLength(1);
    expect(sim.appliedCount()).toBe(0);
  });

  it("fails at once on Cognigy's 403 with FAILED_PRECONDITION", async () => {
    sim.setFaults([{ status: 403 }]);
    const message = expectFailed(
      await call(fs, { sessionId: sid("403"), context: { a: "1" } }),
      Code.FailedPrecondition,
    );
    expect(message).toMatch(
      /HTTP 403: Forbidden Error: fault injected by the test \(code 403, traceId trace-/,
    );
    expect(sim.requests).toHaveLength(1);
  });

  it("fails at once on Cognigy's 404 for an unknown session with FAILED_PRECONDITION", async () => {
    const message = expectFailed(
      await call(fs, { sessionId: sid("no-such-session"), context: { a: "1" } }),
      Code.FailedPrecondition,
    );
    expect(message).toMatch(/HTTP 404: Not Found Error: session not found \(code 1002, traceId trace-/);
    expect(sim.requests).toHaveLength(1);
  });

  it("answers UNAVAILABLE when Cognigy keeps answering 5xx until the attempts run out", async () => {
    sim.setFaults(() => ({ status: 503 }));
    const message = expectFailed(
      await call(fs, { sessionId: sid("5xx"), context: { a: "1" } }),
      Code.Unavailable,
    );
    expect(message).toMatch(
      /after 3 attempt\(s\): HTTP 503: Service Unavailable Error: fault injected by the test/,
    );
    expect(sim.requests).toHaveLength(3);
    expect(sim.appliedCount()).toBe(0);
  });

  it("refuses a body over 60 kB with RESOURCE_EXHAUSTED before sending anything", async () => {
    const message = expectFailed(
      await call(fs, { sessionId: sid("big"), context: { __enc_note: "x".repeat(61_000) } }),
      Code.ResourceExhausted,
    );
    expect(message).toMatch(/over the 60000-byte limit; nothing was sent/);
    expect(sim.requests).toEqual([]);
  });

  it("answers the same idempotency key again as deduplicated, applied once", async () => {
    const req = { sessionId: sid("dedup"), context: { a: "1" }, idempotencyKey: `${tag}-dedup-key-1` };
    expect(await call(fs, req)).toMatchObject({ ok: { attempts: 1, httpStatus: 200, deduplicated: false } });
    expect(await call(fs, req)).toMatchObject({ ok: { attempts: 0, httpStatus: 200, deduplicated: true } });
    expect(sim.requests).toHaveLength(1);
    expect(sim.applications.get(`${tag}-dedup-key-1`)).toBe(1);
  });
});
