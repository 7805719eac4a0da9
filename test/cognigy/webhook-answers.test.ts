/**
 * The webhook's answer table (src/cognigy/webhook.ts) through a real Fieldseal server and a real Cognigy
 * simulator: one test per row, every request carrying a canary value that no answer may contain; then the
 * retry rule: a request sent again (one after the other, or at once) is pushed once, and every answer holds
 * the values the session holds. Rows that need a fault the real server cannot be made to show on demand (a
 * store down, a missing keyring, a signer's replay) are in webhook.test.ts against a stand-in service.
 */
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const CANARY = "4111111111111111";
const FLAGGED = "field:credit_card";
const BOUNDARY = "----fieldsealTestBoundary";
const PRINCIPALS = [
  { name: "bot", scopes: ["encrypt", "push"] },
  { name: "bot2", scopes: ["encrypt", "push"] },
  { name: "billing", scopes: ["decrypt:credit_card"] },
];

interface Answer {
  status: number;
  contentType: string | null;
  reason: string | null;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: asserted field by field
  json: any;
}

/** Every answer any test here received; the canary test reads them all. */
const seen: Answer[] = [];

async function send(
  url: string,
  body: string | Buffer,
  headers: Record<string, string>,
  method = "POST",
): Promise<Answer> {
  const res = await fetch(`${url}/webhooks/cognigy`, {
    method,
    headers,
    ...(method === "GET" ? {} : { body }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const answer = {
    status: res.status,
    contentType: res.headers.get("content-type"),
    reason: res.headers.get("fieldseal-reason"),
    text,
    json,
  };
  seen.push(answer);
  return answer;
}

const json = (sessionId: string, variables: Record<string, unknown> = { credit_card: CANARY }) =>
  JSON.stringify({ sessionId, userId: "user-1", variables: { ...variables, language: "en" } });

/** A multipart body as Cognigy's Form-Data payload sends one. */
function multipart(parts: Array<[string, string]>, extraHeaders: string[] = []): Buffer {
  return Buffer.from(
    `${parts
      .map(
        ([name, value]) =>
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n${extraHeaders.map((h) => `${h}\r\n`).join("")}\r\n${value}\r\n`,
      )
      .join("")}--${BOUNDARY}--\r\n`,
  );
}

const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

describe("the webhook's answers, row by row, through a real server", () => {
  let sim: CognigySimulator;
  /** Pushing off (the default). */
  let fs: TestFieldseal;
  /** Pushing on, to a simulator that answers 503. */
  let failingPush: TestFieldseal;
  let headers: (extra?: Record<string, string>) => Record<string, string>;

  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey },
        webhook: { maxBodyBytes: 200 * 1024 },
      },
    });
    failingPush = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        cognigy: {
          baseUrl: sim.url,
          apiKey: sim.apiKey,
          pushEnabled: true,
          maxAttempts: 2,
          baseBackoffMs: 1,
        },
      },
    });
    headers = (extra = {}) => ({
      "content-type": "application/json",
      authorization: `Bearer ${fs.tokens.bot}`,
      "x-sensitive-metadata": FLAGGED,
      ...extra,
    });
  });
  afterAll(async () => {
    await fs.close();
    await failingPush.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  async function expectOpens(sessionId: string, sealed: string) {
    const opened = await fs.client("billing").decryptField({
      scope: create(ScopeSchema, { id: { case: "sessionId", value: sessionId } }),
      field: "credit_card",
      sealed,
    });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CANARY });
  }

  it("200 sealed: the sealed values for the flow to store, nothing pushed by default", async () => {
    const a = await send(fs.url, json("row-sealed"), headers());
    expect(a.status).toBe(200);
    expect(a.reason).toBeNull();
    expect(a.json).toMatchObject({
      status: "sealed",
      sessionId: "row-sealed",
      keyring: "default",
      variables: { credit_card: null },
      pushed: null,
    });
    expect(a.json.keyVersion).toBeGreaterThanOrEqual(1);
    await expectOpens("row-sealed", a.json.variables.__enc_credit_card);
    expect(sim.requests).toEqual([]);
  });

  it("200 sealed from a multipart/form-data body (variables[<f>] parts), the value sealed byte-exact", async () => {
    const body = multipart([
      ["sessionId", "row-multipart"],
      ["userId", "user-1"],
      ["variables[credit_card]", CANARY],
      ["variables[language]", "en"],
    ]);
    const a = await send(fs.url, body, headers({ "content-type": MULTIPART }));
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ status: "sealed", variables: { credit_card: null } });
    expect(Object.keys(a.json.variables)).not.toContain("language");
    await expectOpens("row-multipart", a.json.variables.__enc_credit_card);
  });

  it("200 sealed from multipart with variables as JSON text and the sensitive list as a part", async () => {
    const body = multipart([
      ["sessionId", "row-multipart-json"],
      ["variables", JSON.stringify({ credit_card: CANARY })],
      ["sensitive", "credit_card"],
    ]);
    const a = await send(fs.url, body, headers({ "content-type": MULTIPART, "x-sensitive-metadata": "" }));
    expect(a.json).toMatchObject({ status: "sealed", variables: { credit_card: null } });
    await expectOpens("row-multipart-json", a.json.variables.__enc_credit_card);
  });

  it("200 sealed_not_pushed: Cognigy answered 503, the values are sealed and in the answer with a reason", async () => {
    sim.setFaults(() => ({ status: 503 }));
    const a = await send(
      failingPush.url,
      json("row-not-pushed"),
      headers({ authorization: `Bearer ${failingPush.tokens.bot}` }),
    );
    expect(a.status).toBe(200);
    expect(a.reason).toBe("push_failed");
    expect(a.json).toMatchObject({
      status: "sealed_not_pushed",
      reason: "push_failed",
      pushed: null,
      variables: { credit_card: null, __enc_credit_card: expect.stringMatching(/^fs1/) },
    });
    expect(a.json.message).toMatch(/sealed but the push to Cognigy.AI failed.*503/);
    expect(sim.appliedCount()).toBe(0);
  });

  it.each([
    ["absent", { other: CANARY }],
    ["null", { credit_card: null, other: CANARY }],
    ['""', { credit_card: "", other: CANARY }],
  ])("200 refused flagged_field_missing when the flagged field is %s", async (_, variables) => {
    const a = await send(fs.url, json("row-missing", variables), headers());
    expect(a.status).toBe(200);
    expect(a.reason).toBe("flagged_field_missing");
    expect(a.json).toEqual({
      status: "refused",
      sessionId: "row-missing",
      reason: "flagged_field_missing",
      message: 'flagged fields are absent, null or empty: "credit_card"',
      fields: ["credit_card"],
    });
  });

  it("200 refused too_large for a value larger than the engine seals", async () => {
    const big = `${CANARY}${"0".repeat(70 * 1024)}`;
    const a = await send(fs.url, json("row-too-large", { credit_card: big }), headers());
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ status: "refused", reason: "too_large" });
    expect(a.json.message).toMatch(/limit is 65536 bytes/);
  });

  it("400 field_name_invalid for a name the engine cannot bind (NUL): the author's to fix, not the user's", async () => {
    const body = JSON.stringify({
      sessionId: "row-engine",
      variables: { "card\u0000x": CANARY },
      sensitive: ["card\u0000x"],
    });
    const a = await send(fs.url, body, headers({ "x-sensitive-metadata": "" }));
    expect(a.status).toBe(400);
    expect(a.json).toMatchObject({ code: "invalid_argument", reason: "field_name_invalid" });
    expect(a.json.detail).toMatch(/NUL/);
  });

  const problems: Array<[string, () => [string | Buffer, Record<string, string>, string?], number, string]> =
    [
      [
        "malformed JSON",
        () => [`{"sessionId":"x","variables":{"credit_card":"${CANARY}"`, headers()],
        400,
        "invalid_argument",
      ],
      [
        "no sessionId",
        () => [JSON.stringify({ variables: { credit_card: CANARY } }), headers()],
        400,
        "invalid_argument",
      ],
      [
        "no field flagged",
        () => [json("p"), headers({ "x-sensitive-metadata": "" })],
        400,
        "invalid_argument",
      ],
      [
        "invalid UTF-8",
        () => [
          Buffer.concat([Buffer.from(json("p").slice(0, -2)), Buffer.from([0xff, 0x22, 0x7d, 0x7d])]),
          headers(),
        ],
        400,
        "invalid_utf8",
      ],
      [
        "multipart without a boundary",
        () => [
          multipart([
            ["sessionId", "p"],
            ["variables[credit_card]", CANARY],
          ]),
          headers({ "content-type": "multipart/form-data" }),
        ],
        400,
        "no_boundary",
      ],
      [
        "an unterminated multipart body",
        () => [
          multipart([
            ["sessionId", "p"],
            ["variables[credit_card]", CANARY],
          ]).subarray(0, -8),
          headers({ "content-type": MULTIPART }),
        ],
        400,
        "multipart_unterminated",
      ],
      [
        "a multipart name given twice",
        () => [
          multipart([
            ["sessionId", "p"],
            ["variables[credit_card]", CANARY],
            ["variables[credit_card]", CANARY],
          ]),
          headers({ "content-type": MULTIPART }),
        ],
        400,
        "duplicate_name",
      ],
      [
        "a multipart file part",
        () => [
          Buffer.from(
            `--${BOUNDARY}\r\nContent-Disposition: form-data; name="variables[credit_card]"; filename="c.txt"\r\n\r\n${CANARY}\r\n--${BOUNDARY}--\r\n`,
          ),
          headers({ "content-type": MULTIPART }),
        ],
        400,
        "file_part",
      ],
      [
        "more multipart parts than the limit (64)",
        () => [
          multipart([
            ["sessionId", "p"],
            ["variables[credit_card]", CANARY],
            ...Array.from({ length: 63 }, (_, i): [string, string] => [`x${i}`, "y"]),
          ]),
          headers({ "content-type": MULTIPART }),
        ],
        400,
        "too_many_parts",
      ],
      [
        "multipart part headers over 1 KiB",
        () => [
          multipart(
            [
              ["sessionId", "p"],
              ["variables[credit_card]", CANARY],
            ],
            [`Content-Type: text/plain; x="${"y".repeat(1100)}"`],
          ),
          headers({ "content-type": MULTIPART }),
        ],
        400,
        "part_header_too_large",
      ],
      ["no credentials", () => [json("p"), headers({ authorization: "" })], 401, "unauthenticated"],
      [
        "an unknown token",
        () => [json("p"), headers({ authorization: "Bearer fsk_unknown" })],
        401,
        "unauthenticated",
      ],
      [
        "a caller that may not seal",
        () => [json("p"), headers({ authorization: `Bearer ${fs.tokens.billing}` })],
        403,
        "permission_denied",
      ],
      ["another method", () => ["", headers(), "GET"], 405, "method_not_allowed"],
      [
        "a body over the limit",
        () => [json("p", { credit_card: CANARY, pad: "x".repeat(210 * 1024) }), headers()],
        413,
        "too_large",
      ],
      [
        "another media type",
        () => [json("p"), headers({ "content-type": "text/plain" })],
        415,
        "unsupported_media_type",
      ],
      [
        "another charset",
        () => [json("p"), headers({ "content-type": "application/json; charset=latin1" })],
        415,
        "unsupported_media_type",
      ],
    ];

  it.each(problems)("%s: %d problem document", async (_, build, status, reason) => {
    const [body, h, method] = build();
    const a = await send(fs.url, body, h, method);
    expect(a.status).toBe(status);
    expect(a.contentType).toBe("application/problem+json");
    expect(a.json).toMatchObject({ status });
    expect(a.json.reason ?? a.json.code).toBe(reason);
    expect(a.json).not.toHaveProperty("variables");
    expect(fs.audit.events.filter((e) => e.scopeId === "p" && e.outcome === "ok")).toEqual([]);
  });

  it("no answer of any row contains the submitted value (canary)", () => {
    // Every row above sent CANARY (the 405 sends no body); none may answer it back in any form.
    expect(seen.length).toBeGreaterThanOrEqual(problems.length + 9);
    for (const a of seen) {
      expect(a.text).not.toContain(CANARY);
      expect(a.text).not.toContain(Buffer.from(CANARY).toString("base64"));
      expect(a.text).not.toContain(CANARY.slice(0, 8));
    }
  });
});

describe("a retried request is pushed once and answered with the values the session holds", () => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  let headers: Record<string, string>;

  beforeAll(async () => {
    // A Cognigy that ignores Idempotency-Key: exactly-once must come from Fieldseal itself.
    sim = await startCognigySimulator({ honourIdempotencyKey: false });
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: { cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, pushEnabled: true } },
    });
    headers = {
      "content-type": "application/json",
      authorization: `Bearer ${fs.tokens.bot}`,
      "x-sensitive-metadata": FLAGGED,
    };
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  it("the same request twice in a row: one push applied, the second answer deduplicated with the same values", async () => {
    const body = json("retry-seq");
    const first = await send(fs.url, body, headers);
    const second = await send(fs.url, body, headers);
    expect(first.json).toMatchObject({ status: "sealed", pushed: { attempts: 1, deduplicated: false } });
    expect(second.json).toMatchObject({ status: "sealed", pushed: { attempts: 0, deduplicated: true } });
    expect(second.json.variables).toEqual(first.json.variables);
    expect(sim.appliedCount()).toBe(1);
    expect(sim.contexts.get("retry-seq")).toEqual(first.json.variables);
    // The retry was still authenticated and authorized by a seal, whose values were thrown away.
    expect(fs.audit.events.filter((e) => e.scopeId === "retry-seq" && e.action === "encrypt")).toHaveLength(
      2,
    );
  });

  it("the same request twice at once: one push applied, both answers hold the session's values", async () => {
    const body = json("retry-concurrent");
    const answers = await Promise.all([send(fs.url, body, headers), send(fs.url, body, headers)]);
    expect(answers.map((a) => a.json.status)).toEqual(["sealed", "sealed"]);
    expect(answers[1]?.json.variables).toEqual(answers[0]?.json.variables);
    expect(answers.filter((a) => a.json.pushed.deduplicated === false)).toHaveLength(1);
    expect(sim.appliedCount()).toBe(1);
    expect(sim.contexts.get("retry-concurrent")).toEqual(answers[0]?.json.variables);
  });

  it("the same bytes as multipart twice: one push", async () => {
    const body = multipart([
      ["sessionId", "retry-multipart"],
      ["userId", "user-1"],
      ["variables[credit_card]", CANARY],
    ]);
    const h = { ...headers, "content-type": MULTIPART };
    const first = await send(fs.url, body, h);
    const second = await send(fs.url, body, h);
    expect(second.json.variables).toEqual(first.json.variables);
    expect(sim.appliedCount()).toBe(1);
  });

  it("another caller sending the same bytes gets its own seal and push, never the first caller's answer", async () => {
    const body = json("retry-two-callers");
    const first = await send(fs.url, body, headers);
    const other = await send(fs.url, body, { ...headers, authorization: `Bearer ${fs.tokens.bot2}` });
    expect(other.json).toMatchObject({ status: "sealed", pushed: { attempts: 1, deduplicated: false } });
    expect(other.json.variables.__enc_credit_card).not.toBe(first.json.variables.__enc_credit_card);
    expect(sim.appliedCount()).toBe(2);
    expect(sim.contexts.get("retry-two-callers")).toEqual(other.json.variables);
  });

  it("a caller that may not seal learns nothing from a retry of someone else's request: 403, nothing pushed", async () => {
    const body = json("retry-least-privileged");
    await send(fs.url, body, headers);
    const stolen = await send(fs.url, body, { ...headers, authorization: `Bearer ${fs.tokens.billing}` });
    expect(stolen.status).toBe(403);
    expect(stolen.text).not.toContain("fs1.");
    // Nor which flagged fields are missing: authorization comes before the refusal.
    const missing = await send(fs.url, json("retry-least-privileged", { other: "x" }), {
      ...headers,
      authorization: `Bearer ${fs.tokens.billing}`,
    });
    expect(missing.status).toBe(403);
    expect(sim.appliedCount()).toBe(1);
  });

  it("an unknown token replaying known bytes gets 401, not the remembered answer", async () => {
    const body = json("retry-unknown-token");
    await send(fs.url, body, headers);
    const replay = await send(fs.url, body, { ...headers, authorization: "Bearer fsk_guess" });
    expect(replay.status).toBe(401);
    expect(replay.text).not.toContain("fs1.");
  });

  it("a different body or another session is another request: pushed again", async () => {
    await send(fs.url, json("retry-other"), headers);
    await send(fs.url, json("retry-other", { credit_card: "4242424242424242" }), headers);
    await send(fs.url, json("retry-other-2"), headers);
    expect(sim.appliedCount()).toBe(3);
    expect(new Set(sim.requests.map((r) => r.idempotencyKey)).size).toBe(3);
  });
});

describe("fields with a format: masks beside the sealed values, a value that does not fit refused", () => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;
  let headers: Record<string, string>;

  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: {
        fields: { credit_card: { format: "card" } },
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, pushEnabled: true },
      },
    });
    headers = {
      "content-type": "application/json",
      authorization: `Bearer ${fs.tokens.bot}`,
      "x-sensitive-metadata": "field:credit_card,field:ssn",
    };
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });
  beforeEach(() => sim.reset());

  it("answers and pushes __mask_<field> as {format, text, speakable}, only for fields with a format", async () => {
    const a = await send(fs.url, json("mask-1", { credit_card: CANARY, ssn: "999-99-0000" }), headers);
    expect(a.json).toMatchObject({ status: "sealed", pushed: { httpStatus: 200 } });
    expect(a.json.variables.__mask_credit_card).toEqual({
      format: "card",
      text: "Visa •••• 1111",
      speakable: "Visa ending in 1 1 1 1",
    });
    expect(Object.keys(a.json.variables).sort()).toEqual([
      "__enc_credit_card",
      "__enc_ssn",
      "__mask_credit_card",
      "credit_card",
      "ssn",
    ]);
    expect(sim.contexts.get("mask-1")).toEqual(a.json.variables);
    expect(a.text).not.toContain(CANARY);
    expect(a.text).not.toContain("999-99-0000");
  });

  it("200 refused field_format_invalid for a card that fails the Luhn check: nothing sealed or pushed, no value", async () => {
    const typo = "4111111111111112";
    const a = await send(fs.url, json("mask-typo", { credit_card: typo, ssn: "999-99-0000" }), headers);
    expect(a.status).toBe(200);
    expect(a.reason).toBe("field_format_invalid");
    expect(a.json).toMatchObject({
      status: "refused",
      sessionId: "mask-typo",
      reason: "field_format_invalid",
    });
    expect(a.json.message).toMatch(/credit_card.*card/);
    expect(a.text).not.toContain(typo);
    expect(a.text).not.toContain("999-99-0000");
    expect(sim.requests).toEqual([]);
  });
});
