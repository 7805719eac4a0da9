import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { CognigyClient, CognigyPushError } from "../../src/cognigy/client.js";
import { createInternalPrincipalAuth } from "../../src/cognigy/internal-auth.js";
import { createWebhookHandler, type WebhookDeps } from "../../src/cognigy/webhook.js";
import { signWebhookBody, signWebhookV2 } from "../../src/cognigy/webhook-signature.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";

const CARD = "4111111111111111";
const SSN = "999-99-0000";
const NOW_MS = 1_800_000_000_000;
const NOW_SEC = NOW_MS / 1000;

/** What the stand-in service answers for these session ids, as the real one would for its own faults. */
const SERVICE_FAULTS: Record<string, { code: Code; reason: string; message: string }> = {
  "fault-keyring": {
    code: Code.NotFound,
    reason: "keyring_not_found",
    message: 'keyring "default" not found',
  },
  "fault-store": { code: Code.Unavailable, reason: "store_unavailable", message: "key store unavailable" },
  "fault-deadline": {
    code: Code.DeadlineExceeded,
    reason: "deadline_exceeded",
    message: "deadline exceeded",
  },
  "fault-limited": { code: Code.ResourceExhausted, reason: "rate_limited", message: "seal budget exhausted" },
  "fault-bug": { code: Code.Internal, reason: "internal", message: "internal error" },
};

describe("Cognigy webhook adapter", () => {
  let sim: CognigySimulator;
  let server: Server;
  let url: string;
  let deps: Partial<WebhookDeps>;
  const internal = createInternalPrincipalAuth();
  /** What the fake service saw: the principal of each call. */
  const calls: Array<{ rpc: string; principal: string }> = [];
  let seals = 0;

  /** A small stand-in for FieldsealService: bearer/internal auth, a fake seal, a real push. */
  const transport = createRouterTransport((router) => {
    const principalOf = (headers: Headers): string => {
      const internalPrincipal = internal.verify(headers);
      if (internalPrincipal !== undefined) return internalPrincipal;
      const auth = headers.get("authorization");
      if (auth === "Bearer good-token") return "flow-bearer";
      if (auth === "Bearer seal-only") return "seal-only";
      if (auth === "Bearer no-seal") return "no-seal";
      throw new ConnectError("unknown token", Code.Unauthenticated);
    };
    router.service(FieldsealService, {
      encryptFields(req, ctx) {
        const principal = principalOf(ctx.requestHeader);
        calls.push({ rpc: "encryptFields", principal });
        if (principal === "no-seal") throw new ConnectError("may not seal", Code.PermissionDenied);
        if (req.scope?.id.case !== "sessionId")
          throw new ConnectError("scope required", Code.InvalidArgument);
        const sessionId = req.scope.id.value;
        // Faults of the server, not of the input, by session id.
        const fault = SERVICE_FAULTS[sessionId];
        if (fault !== undefined) {
          const err = new ConnectError(fault.message, fault.code);
          err.metadata.set("fieldseal-reason", fault.reason);
          throw err;
        }
        const sealed: Record<string, string> = {};
        const masked: Record<string, { format: string; text: string; speakable: string }> = {};
        for (const [name, value] of Object.entries(req.fields)) {
          const json = toJson(ValueSchema, value);
          if (name === "credit_card" && typeof json === "string" && !/^\d{12,19}$/.test(json)) {
            // As the service answers a value its field's format refuses: INVALID_ARGUMENT with a reason.
            const err = new ConnectError(`field "${name}" does not match its format`, Code.InvalidArgument);
            err.metadata.set("fieldseal-reason", "field_format_invalid");
            throw err;
          }
          if (name === "credit_card" && typeof json === "string") {
            masked[name] = { format: "card", text: `•••• ${json.slice(-4)}`, speakable: "ending in 1 1 1 1" };
          }
          // Not encryption: a recognisable stand-in that carries no plaintext; the counter plays the nonce.
          seals += 1;
          sealed[name] =
            `fs1.test.${name}.${sessionId}.${JSON.stringify(toJson(ValueSchema, value)).length}.${seals}`;
        }
        return { sealed, masked, keyring: "default", keyVersion: 3 };
      },
      async pushSession(req, ctx) {
        const principal = principalOf(ctx.requestHeader);
        calls.push({ rpc: "pushSession", principal });
        if (principal === "seal-only") throw new ConnectError("may not push", Code.PermissionDenied);
        const context: JsonObject = {};
        for (const [k, v] of Object.entries(req.context)) context[k] = toJson(ValueSchema, v);
        try {
          const r = await cognigy.push({
            sessionId: req.sessionId,
            userId: req.userId,
            context,
            idempotencyKey: req.idempotencyKey,
          });
          return { attempts: r.attempts, httpStatus: r.httpStatus, deduplicated: r.deduplicated };
        } catch (err) {
          if (err instanceof CognigyPushError) {
            throw new ConnectError(
              err.message,
              err.code === "deadline_exceeded" ? Code.DeadlineExceeded : Code.Unavailable,
            );
          }
          throw err;
        }
      },
    });
  });
  const rpc = createClient(FieldsealService, transport);
  let cognigy: CognigyClient;

  beforeAll(async () => {
    sim = await startCognigySimulator();
    cognigy = new CognigyClient({
      baseUrl: sim.url,
      apiKey: sim.apiKey,
      mode: "context_inject",
      maxAttempts: 2,
      sleep: async () => {},
    });
    // One handler per deps object, so the replay memory lives as long as a real server's would.
    let built: { for: Partial<WebhookDeps>; handler: ReturnType<typeof createWebhookHandler> } | undefined;
    server = createServer((req, res) => {
      if (built?.for !== deps) {
        const handler = createWebhookHandler({
          client: rpc,
          pushEnabled: true,
          hmacSecrets: { "flow-a": "shared-secret-a", "flow-b": "shared-secret-b" },
          principalHeaders: (p) => internal.headersFor(p),
          now: () => NOW_MS,
          ...deps,
        });
        built = { for: deps, handler };
      }
      built.handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/cognigy`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await sim.close();
  });
  beforeEach(() => {
    // A fresh client per test, as each test gets a fresh handler: a server's two memories of pushes live
    // equally long.
    cognigy = new CognigyClient({
      baseUrl: sim.url,
      apiKey: sim.apiKey,
      mode: "context_inject",
      maxAttempts: 2,
      sleep: async () => {},
    });
    sim.reset();
    calls.length = 0;
    deps = { pushEnabled: true };
  });

  const payload = (extra: Record<string, unknown> = {}) => ({
    sessionId: "sess_8f3a2c1d",
    userId: "user-1",
    variables: { credit_card: CARD, ssn: SSN, language: "en" },
    ...extra,
  });
  const post = (body: string, headers: Record<string, string> = {}, method = "POST") =>
    fetch(url, {
      method,
      headers: {
        "content-type": "application/json",
        authorization: "Bearer good-token",
        "x-sensitive-metadata": "field:credit_card,field:ssn",
        ...headers,
      },
      ...(method === "GET" ? {} : { body }),
    });

  /** Asserts a problem answer that echoes no value and that nothing was sealed or pushed. */
  async function expectRefused(res: Response, status: number, detail?: RegExp) {
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const text = await res.text();
    expect(text).not.toContain(CARD);
    expect(text).not.toContain(SSN);
    const problem = JSON.parse(text) as { status: number; title: string; detail: string };
    expect(problem.status).toBe(status);
    if (detail !== undefined) expect(problem.detail).toMatch(detail);
    expect(sim.requests).toHaveLength(0);
    return problem;
  }

  describe("accepted requests", () => {
    it("seals the flagged variables, pushes them and answers them for the flow to store", async () => {
      const res = await post(JSON.stringify(payload()));
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        status: "sealed",
        sessionId: "sess_8f3a2c1d",
        keyVersion: 3,
        variables: {
          __enc_credit_card: expect.stringMatching(/^fs1\.test\.credit_card\./),
          credit_card: null,
          __mask_credit_card: { format: "card", text: "•••• 1111", speakable: "ending in 1 1 1 1" },
          __enc_ssn: expect.stringMatching(/^fs1\.test\.ssn\./),
          ssn: null,
        },
        pushed: { attempts: 1, httpStatus: 200, deduplicated: false },
      });
      // A field the service gives no mask has none in the answer.
      expect(Object.keys(body.variables as object)).not.toContain("__mask_ssn");
      expect(Object.keys(body.variables as object)).not.toContain("language");
      expect(sim.contexts.get("sess_8f3a2c1d")).toEqual(body.variables);
      expect(sim.requests[0]?.idempotencyKey).toMatch(/^fs-wh-/);
      expect(calls.map((c) => c.principal)).toEqual(["flow-bearer", "flow-bearer"]);
    });

    it("takes the token as Cognigy's HTTP Request node sends an API key: ApiKey scheme or X-API-Key", async () => {
      const viaScheme = await post(JSON.stringify(payload()), { authorization: "ApiKey good-token" });
      expect(viaScheme.status).toBe(200);
      const viaHeader = await post(JSON.stringify(payload({ sessionId: "sess-2" })), {
        authorization: "",
        "x-api-key": "good-token",
      });
      expect(viaHeader.status).toBe(200);
      expect(calls.map((c) => c.principal)).toEqual([
        "flow-bearer",
        "flow-bearer",
        "flow-bearer",
        "flow-bearer",
      ]);
    });

    it("answers without pushing when pushing is off", async () => {
      deps = { pushEnabled: false };
      const res = await post(JSON.stringify(payload()));
      expect(res.status).toBe(200);
      expect(((await res.json()) as { pushed: unknown }).pushed).toBeNull();
      expect(sim.requests).toHaveLength(0);
    });

    it("accepts a form body with variables as JSON text", async () => {
      const form = new URLSearchParams({
        sessionId: "s-form",
        userId: "u",
        variables: JSON.stringify({ credit_card: CARD, ssn: SSN }),
      });
      const res = await post(form.toString(), { "content-type": "application/x-www-form-urlencoded" });
      expect(res.status).toBe(200);
      expect(sim.contexts.get("s-form")).toMatchObject({ credit_card: null, ssn: null });
    });

    it("accepts a form body with variables[field] pairs", async () => {
      const form = new URLSearchParams();
      form.set("sessionId", "s-pairs");
      form.set("userId", "u");
      form.set("variables[credit_card]", CARD);
      form.set("variables[ssn]", SSN);
      const res = await post(form.toString(), {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
      });
      expect(res.status).toBe(200);
      expect(Object.keys(sim.contexts.get("s-pairs") ?? {}).sort()).toEqual([
        "__enc_credit_card",
        "__enc_ssn",
        "__mask_credit_card",
        "credit_card",
        "ssn",
      ]);
    });

    it("tolerates spaces in X-Sensitive-Metadata and takes a sensitive list from the body", async () => {
      const res = await post(JSON.stringify(payload({ sensitive: ["ssn"] })), {
        "x-sensitive-metadata": "  field: credit_card ,field:ssn ",
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { variables: object };
      expect(Object.keys(body.variables).sort()).toEqual([
        "__enc_credit_card",
        "__enc_ssn",
        "__mask_credit_card",
        "credit_card",
        "ssn",
      ]);
    });

    it("seals fields flagged only in the body", async () => {
      const res = await post(JSON.stringify(payload({ sensitive: ["credit_card"] })), {
        "x-sensitive-metadata": "",
      });
      expect(res.status).toBe(200);
      expect(Object.keys(((await res.json()) as { variables: object }).variables)).toEqual([
        "__enc_credit_card",
        "credit_card",
        "__mask_credit_card",
      ]);
    });
  });

  describe("refused requests reach neither the seal nor Cognigy", () => {
    it("405 for another method", async () => {
      const res = await post("", {}, "GET");
      await expectRefused(res, 405);
      expect(res.headers.get("allow")).toBe("POST");
      expect(calls).toHaveLength(0);
    });

    it("415 for another content type", async () => {
      await expectRefused(await post(JSON.stringify(payload()), { "content-type": "text/plain" }), 415);
      expect(calls).toHaveLength(0);
    });

    it("413 for a body over the limit", async () => {
      deps = { maxBodyBytes: 1024 };
      const big = JSON.stringify(payload({ padding: "x".repeat(4096) }));
      await expectRefused(await post(big), 413);
      expect(calls).toHaveLength(0);
    });

    it("400 for malformed JSON", async () => {
      await expectRefused(
        await post(`{"sessionId": "s", "variables": {"credit_card": "${CARD}"`),
        400,
        /JSON/,
      );
      expect(calls).toHaveLength(0);
    });

    it("400 for a missing sessionId", async () => {
      const { sessionId: _, ...rest } = payload();
      await expectRefused(await post(JSON.stringify(rest)), 400, /sessionId/);
      expect(calls).toHaveLength(0);
    });

    it("400 for an X-Sensitive-Metadata entry of another form", async () => {
      const res = await post(JSON.stringify(payload()), { "x-sensitive-metadata": "field:credit_card,ssn" });
      await expectRefused(res, 400, /entry 2/);
      expect(calls).toHaveLength(0);
    });

    it("400 when no field is flagged", async () => {
      await expectRefused(
        await post(JSON.stringify(payload()), { "x-sensitive-metadata": "" }),
        400,
        /no fields/,
      );
    });

    it("401 without credentials", async () => {
      await expectRefused(await post(JSON.stringify(payload()), { authorization: "" }), 401);
      expect(calls).toHaveLength(0);
    });

    it("401 for another authorization scheme", async () => {
      await expectRefused(
        await post(JSON.stringify(payload()), { authorization: "Basic Z29vZC10b2tlbg==" }),
        401,
      );
      expect(calls).toHaveLength(0);
    });

    it("401 when the service does not know the bearer token", async () => {
      await expectRefused(await post(JSON.stringify(payload()), { authorization: "Bearer nope" }), 401);
    });

    it("403 when the caller may not seal", async () => {
      const problem = await expectRefused(
        await post(JSON.stringify(payload()), { authorization: "Bearer no-seal" }),
        403,
      );
      expect(problem).toMatchObject({ code: "permission_denied" });
    });

    it("200 sealed_not_pushed when the caller may seal but not push, with the sealed values and nothing sent to Cognigy", async () => {
      const res = await post(JSON.stringify(payload()), { authorization: "Bearer seal-only" });
      expect(res.status).toBe(200);
      expect(res.headers.get("fieldseal-reason")).toBe("permission_denied");
      const answer = (await res.json()) as Record<string, unknown>;
      expect(answer).toMatchObject({
        status: "sealed_not_pushed",
        reason: "permission_denied",
        pushed: null,
      });
      expect(answer.message).toMatch(/sealed but the push/);
      expect(answer.variables).toMatchObject({ credit_card: null, ssn: null });
      expect(sim.requests).toHaveLength(0);
    });
  });

  describe("refused input is answered 200 with status refused, for the flow to branch on", () => {
    async function expectRefusedInput(res: Response, reason: string) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.headers.get("fieldseal-reason")).toBe(reason);
      const text = await res.text();
      expect(text).not.toContain(CARD);
      expect(text).not.toContain(SSN);
      const answer = JSON.parse(text) as Record<string, unknown>;
      expect(answer).toMatchObject({ status: "refused", reason });
      expect(answer).not.toHaveProperty("variables");
      expect(sim.requests).toHaveLength(0);
      return answer;
    }

    it.each([
      ["absent", { credit_card: CARD, language: "en" }],
      ["null (sealed already)", { credit_card: CARD, ssn: null }],
      ['"" (an unset {{context.x}} in CognigyScript)', { credit_card: CARD, ssn: "" }],
    ])("flagged_field_missing, naming the field, when it is %s", async (_, variables) => {
      const answer = await expectRefusedInput(
        await post(JSON.stringify(payload({ variables }))),
        "flagged_field_missing",
      );
      expect(answer.fields).toEqual(["ssn"]);
      expect(answer.message).toMatch(/"ssn"/);
    });

    it("lists every missing field and seals none of the present ones into the answer", async () => {
      const res = await post(JSON.stringify(payload({ variables: { language: "en" } })), {
        "x-sensitive-metadata": "field:credit_card,field:ssn,field:medical_id",
      });
      const answer = await expectRefusedInput(res, "flagged_field_missing");
      expect(answer.fields).toEqual(["credit_card", "ssn", "medical_id"]);
    });

    it("checks the caller before saying which fields are missing: 401 and 403 stay", async () => {
      const body = JSON.stringify(payload({ variables: { credit_card: CARD } }));
      await expectRefused(await post(body, { authorization: "Bearer nope" }), 401);
      await expectRefused(await post(body, { authorization: "Bearer no-seal" }), 403);
    });

    it("field_format_invalid from the service, with its message and no value", async () => {
      const bad = "4111-oops-1111";
      const res = await post(JSON.stringify(payload({ variables: { credit_card: bad, ssn: SSN } })));
      const answer = await expectRefusedInput(res, "field_format_invalid");
      expect(answer.message).toBe('field "credit_card" does not match its format');
      expect(JSON.stringify(answer)).not.toContain(bad);
    });

    it("a missing field wins over a format the service refuses", async () => {
      const res = await post(JSON.stringify(payload({ variables: { credit_card: "x" } })));
      expect((await expectRefusedInput(res, "flagged_field_missing")).fields).toEqual(["ssn"]);
    });
  });

  describe("faults of the server stay non-2xx: the flow's error path, not a branch on the input", () => {
    it.each([
      ["fault-keyring", 500, "keyring_not_found"],
      ["fault-store", 503, "store_unavailable"],
      ["fault-deadline", 504, "deadline_exceeded"],
      ["fault-limited", 429, "rate_limited"],
      ["fault-bug", 500, "internal"],
    ])("%s: %d with reason %s", async (sessionId, status, reason) => {
      const problem = await expectRefused(await post(JSON.stringify(payload({ sessionId }))), status);
      expect(problem).toMatchObject({ code: reason, title: "Seal Failed" });
    });
  });

  describe("push failures", () => {
    it("200 sealed_not_pushed saying the seal succeeded, with the sealed variables for the flow to store", async () => {
      sim.setFaults(() => ({ status: 503 }));
      const res = await post(JSON.stringify(payload()));
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(CARD);
      const answer = JSON.parse(text) as Record<string, unknown>;
      expect(answer).toMatchObject({
        status: "sealed_not_pushed",
        reason: "unavailable",
        keyVersion: 3,
        pushed: null,
        variables: { credit_card: null, ssn: null },
      });
      expect(answer.message).toMatch(/sealed but the push to Cognigy.AI failed/);
      expect(sim.appliedCount()).toBe(0);
    });

    it("a retry after a failed push pushes the first answer's values under the same key, and answers them", async () => {
      sim.setFaults([{ status: 503 }, { status: 503 }]);
      const body = JSON.stringify(payload({ sessionId: "retry-after-failure" }));
      const first = (await (await post(body)).json()) as { status: string; variables: object };
      expect(first.status).toBe("sealed_not_pushed");
      const second = (await (await post(body)).json()) as { status: string; variables: object };
      expect(second).toMatchObject({ status: "sealed", pushed: { attempts: 1, deduplicated: false } });
      expect(second.variables).toEqual(first.variables);
      expect(sim.contexts.get("retry-after-failure")).toEqual(first.variables);
      expect(new Set(sim.requests.map((r) => r.idempotencyKey)).size).toBe(1);
    });
  });

  describe("HMAC-signed requests", () => {
    const FLAGGED = "field:credit_card,field:ssn";
    const signed = (body: string, opts: { ts?: number; secret?: string; keyId?: string } = {}) => {
      const ts = opts.ts ?? NOW_SEC;
      return {
        authorization: "",
        "x-fieldseal-key-id": opts.keyId ?? "flow-a",
        "x-fieldseal-timestamp": String(ts),
        "x-fieldseal-signature": signWebhookV2(opts.secret ?? "shared-secret-a", {
          method: "POST",
          path: "/webhooks/cognigy",
          timestampSec: ts,
          sensitiveMetadata: FLAGGED,
          body,
        }),
      };
    };

    it("acts as the signing principal", async () => {
      const body = JSON.stringify(payload());
      const res = await post(body, signed(body));
      expect(res.status).toBe(200);
      expect(calls.map((c) => c.principal)).toEqual(["flow-a", "flow-a"]);
    });

    it("refuses a tampered body", async () => {
      const body = JSON.stringify(payload());
      const tampered = body.replace("sess_8f3a2c1d", "sess_other");
      await expectRefused(await post(tampered, signed(body)), 401, /does not match/);
      expect(calls).toHaveLength(0);
    });

    it("refuses a wrong secret and an unknown key id", async () => {
      const body = JSON.stringify(payload());
      await expectRefused(await post(body, signed(body, { secret: "guess" })), 401, /does not match/);
      await expectRefused(await post(body, signed(body, { keyId: "flow-z" })), 401, /unknown signing key/);
    });

    it("refuses an expired timestamp", async () => {
      const body = JSON.stringify(payload());
      await expectRefused(
        await post(body, signed(body, { ts: NOW_SEC - 301 })),
        401,
        /outside the allowed window/,
      );
    });

    it("answers a replayed signature with the first answer, sealing and pushing nothing again", async () => {
      const body = JSON.stringify(payload({ sessionId: "replay" }));
      const headers = signed(body, { ts: NOW_SEC - 5 });
      const first = (await (await post(body, headers)).json()) as { variables: object };
      expect(sim.appliedCount()).toBe(1);
      calls.length = 0;
      const again = await post(body, headers);
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({
        status: "sealed",
        variables: first.variables,
        pushed: { attempts: 0, deduplicated: true },
      });
      expect(calls).toHaveLength(0);
      expect(sim.appliedCount()).toBe(1);
    });

    it("refuses a replayed signature with 429 replayed when its first answer is no longer held", async () => {
      deps = { pushEnabled: false, answerMemory: { maxEntries: 1 } };
      const body = JSON.stringify(payload({ sessionId: "replay-forgotten" }));
      const headers = signed(body, { ts: NOW_SEC - 5 });
      expect((await post(body, headers)).status).toBe(200);
      const other = JSON.stringify(payload({ sessionId: "pushes-it-out" }));
      expect((await post(other, signed(other))).status).toBe(200);
      calls.length = 0;
      const problem = await expectRefused(await post(body, headers), 429, /already used/);
      expect(problem).toMatchObject({ code: "replayed", reason: "replayed" });
      expect(calls).toHaveLength(0);
    });

    it("answers 20 concurrent copies of a signed request alike from one seal", async () => {
      deps = { pushEnabled: false };
      const body = JSON.stringify(payload({ sessionId: "race" }));
      const headers = signed(body);
      const answers = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const res = await post(body, headers);
          return { status: res.status, text: await res.text() };
        }),
      );
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(new Set(answers.map((a) => a.text)).size).toBe(1);
      expect(calls.filter((c) => c.rpc === "encryptFields")).toHaveLength(1);
    });

    it("refuses v1 signatures unless the migration setting accepts them", async () => {
      const body = JSON.stringify(payload({ sessionId: "v1" }));
      const v1 = {
        ...signed(body),
        "x-fieldseal-signature": signWebhookBody("shared-secret-a", NOW_SEC, body),
      };
      await expectRefused(await post(body, v1), 401, /v1 signatures .* are refused: sign with v2/);
      deps = { pushEnabled: true, hmacAcceptV1: true };
      expect((await post(body, v1)).status).toBe(200);
      calls.length = 0;
      // Used once: a copy is answered from memory, never sealed or pushed again.
      expect(await (await post(body, v1)).json()).toMatchObject({ pushed: { deduplicated: true } });
      expect(calls).toHaveLength(0);
    });

    it("a signer flooding past its replay capacity is refused alone (429), another signer is served", async () => {
      deps = { pushEnabled: false, hmacReplayCapacityPerSigner: 5 };
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      const firstBody = JSON.stringify(payload({ sessionId: "flood-0" }));
      const first = signed(firstBody);
      for (let i = 0; i < 40; i++) {
        const body = i === 0 ? firstBody : JSON.stringify(payload({ sessionId: `flood-${i}` }));
        const res = await post(body, i === 0 ? first : signed(body));
        statuses.push(res.status);
        if (res.status === 429) {
          retryAfter = res.headers.get("retry-after");
          const problem = (await res.json()) as { code: string };
          expect(problem.code).toBe("rate_limited");
        } else {
          await res.arrayBuffer();
        }
      }
      // Capacity 5: five remembered, a sixth accepted by raising flow-a's floor to this second, then 429.
      expect(statuses.slice(0, 6)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(new Set(statuses.slice(6))).toEqual(new Set([429]));
      expect(retryAfter).toBe("1");
      // The forgotten first signature cannot be replayed: the floor covers it.
      expect((await post(firstBody, first)).status).toBe(429);
      // Another signer is unaffected, at the same second and with its own full capacity.
      for (let i = 0; i < 5; i++) {
        const body = JSON.stringify(payload({ sessionId: `other-${i}` }));
        const res = await post(body, signed(body, { keyId: "flow-b", secret: "shared-secret-b" }));
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      // flow-a itself recovers with a fresh timestamp: its window shrank, it was not shut.
      const later = JSON.stringify(payload({ sessionId: "flood-later" }));
      expect((await post(later, signed(later, { ts: NOW_SEC + 1 }))).status).toBe(200);
      // No signed request ever answered 5xx.
      expect(statuses.every((s) => s < 500)).toBe(true);
    });
  });
});
