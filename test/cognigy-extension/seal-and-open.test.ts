/**
 * The Extension's Seal fields and Open field nodes, run through a Cognigy runtime harness against a real
 * Fieldseal server on loopback: success, the failure branch for every way the call can fail, and that no
 * value ever reaches the context's failure record or a log call.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ANSWER_BYTES } from "../../clients/cognigy-extension/src/fieldseal-client.js";
import {
  OPEN_ON_FAILURE,
  OPEN_ON_SUCCESS,
  openField,
} from "../../clients/cognigy-extension/src/nodes/open-field.js";
import {
  SEAL_ON_FAILURE,
  SEAL_ON_SUCCESS,
  type SealFieldsParams,
  sealFields,
} from "../../clients/cognigy-extension/src/nodes/seal-fields.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { startDelayingProxy } from "./delaying-proxy.js";
import { type CognigyRun, children, cognigyRun } from "./harness.js";

const CARD = "4111111111111111";
const IBAN = "DE89370400440532013000";
const SSN = "078-05-1120";
const DOB = "1990-02-03";
const PLAINTEXTS = [CARD, IBAN, SSN, DOB];
/** A well-formed envelope from a stand-in server (its payload is 28 zero bytes). */
const WIRE_ENVELOPE = `fs1.k.3.${Buffer.alloc(28).toString("base64url")}`;

let fs: TestFieldseal;

beforeAll(async () => {
  fs = await startTestFieldseal({
    principals: [
      { name: "bot", scopes: ["encrypt"] },
      { name: "handoff", scopes: ["decrypt:*"] },
    ],
  });
});
afterAll(async () => {
  await fs?.close();
});

function connection(token = fs.tokens.bot as string, serviceUrl = fs.url) {
  return { serviceUrl, token };
}

async function seal(run: CognigyRun, config: SealFieldsParams["config"]): Promise<void> {
  await sealFields({
    cognigy: run.cognigy,
    config,
    childConfigs: children(SEAL_ON_SUCCESS, SEAL_ON_FAILURE),
    nodeId: "seal-node",
  });
}

async function open(run: CognigyRun, config: Record<string, unknown>): Promise<void> {
  await openField({
    cognigy: run.cognigy,
    config: { connection: connection(fs.tokens.handoff), targetKey: "opened", ...config },
    childConfigs: children(OPEN_ON_SUCCESS, OPEN_ON_FAILURE),
    nodeId: "open-node",
  });
}

/** Everything a run wrote or logged, as text, to look for plaintext in. */
function written(run: CognigyRun): string {
  return JSON.stringify(run.calls);
}

function expectNoPlaintextWritten(run: CognigyRun): void {
  const text = written(run);
  for (const value of PLAINTEXTS) expect(text).not.toContain(value);
}

function failureOf(run: CognigyRun, key = "fieldseal"): { ok: boolean; reason: string; message: string } {
  return run.context[key] as { ok: boolean; reason: string; message: string };
}

describe("Seal fields", () => {
  it("seals context and input values, clears the plaintext and takes On success", async () => {
    const run = cognigyRun(
      { sessionId: "sess-1", text: SSN, data: { dob: DOB }, traceId: "trace-1" },
      { credit_card: CARD, payment: { iban: IBAN, currency: "EUR" }, language: "de" },
    );
    await seal(run, {
      connection: connection(),
      fields: [
        { field: "credit_card" },
        { field: "iban", from: "context.payment.iban" },
        { field: "ssn", from: "input.text" },
      ],
    });
    expect(run.nextNodes).toEqual(["child-success"]);
    for (const field of ["credit_card", "iban", "ssn"]) {
      expect(run.context[`__enc_${field}`]).toMatch(/^fs1\./);
      expect(run.context[field]).toBeNull();
    }
    // The plaintext keys it read from context are cleared; the rest of the context is untouched. The
    // plaintext at context.credit_card is cleared by writing null there, not by a delete as well.
    expect(run.context.payment).toEqual({ currency: "EUR" });
    expect(run.context.language).toBe("de");
    expect(run.calls.filter((c) => c.method === "deleteContext").map((c) => c.args[0])).toEqual([
      "payment.iban",
    ]);
    expect(run.context.fieldseal).toEqual({
      ok: true,
      keyring: "default",
      keyVersion: 1,
      fields: ["credit_card", "iban", "ssn"],
    });
    expect(run.logs).toEqual([
      { level: "info", text: "Fieldseal sealed credit_card, iban, ssn under default v1" },
    ]);
    expectNoPlaintextWritten(run);
    expect(run.limitErrors).toEqual([]);
    // Sensitive-logging settings are left alone unless asked for.
    expect(run.sensitiveLogging).toEqual([]);

    // What was written opens back to the same values, for this session and field, with a real client.
    const billing = fs.client("handoff");
    const opened = await billing.decryptField({
      scope: { id: { case: "sessionId", value: "sess-1" } },
      field: "iban",
      sealed: run.context.__enc_iban as string,
    });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: IBAN });
  });

  it("seals four fields from input and context.<field> within Cognigy's 10 API calls", async () => {
    const run = cognigyRun(
      { sessionId: "sess-4", text: SSN, data: { dob: DOB } },
      { credit_card: CARD, iban: IBAN },
    );
    await seal(run, {
      connection: connection(),
      fields: [
        { field: "credit_card" },
        { field: "iban" },
        { field: "ssn", from: "input.text" },
        { field: "dob", from: "input.data.dob" },
      ],
    });
    expect(run.nextNodes).toEqual(["child-success"]);
    expect(run.calls.filter((c) => c.method !== "log")).toHaveLength(10);
    expect(run.limitErrors).toEqual([]);
    expect(run.context.__enc_dob).toMatch(/^fs1\./);
  });

  it("keeps its outcome and branch when the runtime counts api.log too and refuses it as the 11th call", async () => {
    const run = cognigyRun(
      { sessionId: "sess-log-counted", text: SSN, data: { dob: DOB } },
      { credit_card: CARD, iban: IBAN },
      () => false,
      { countLog: true },
    );
    await seal(run, {
      connection: connection(),
      fields: [
        { field: "credit_card" },
        { field: "iban" },
        { field: "ssn", from: "input.text" },
        { field: "dob", from: "input.data.dob" },
      ],
    });
    expect(run.limitErrors).toEqual(["log: api call 11 of a run allowed 10"]);
    expect(run.nextNodes).toEqual(["child-success"]);
    expect(run.context.fieldseal).toMatchObject({ ok: true });
    expect(run.context.__enc_dob).toMatch(/^fs1\./);
  });

  it("keeps a success a success when the log line is refused", async () => {
    const run = cognigyRun({ sessionId: "sess-log-refused" }, { credit_card: CARD }, (m) => m === "log");
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    expect(run.nextNodes).toEqual(["child-success"]);
    expect(run.context.fieldseal).toMatchObject({ ok: true, fields: ["credit_card"] });
    await open(run, { field: "credit_card" });
    expect(run.nextNodes).toEqual(["child-success", "child-success"]);
    expect(run.context.fieldseal).toMatchObject({ ok: true, field: "credit_card" });
  });

  it("refuses fields whose writes would pass Cognigy's 10 API calls, before sending or writing anything", async () => {
    const before = fs.audit.events.length;
    const context = { credit_card: CARD, payment: { iban: IBAN } };
    const run = cognigyRun({ sessionId: "sess-calls", text: SSN, data: { dob: DOB } }, context);
    await seal(run, {
      connection: connection(),
      fields: [
        { field: "credit_card" },
        { field: "iban", from: "context.payment.iban" },
        { field: "ssn", from: "input.text" },
        { field: "dob", from: "input.data.dob" },
      ],
    });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toEqual({
      ok: false,
      reason: "api_call_limit",
      message:
        "sealing 4 field(s) here takes 11 Cognigy API calls and an Extension run may make 10; " +
        "split the fields over several nodes",
    });
    expect(fs.audit.events.length).toBe(before);
    expect(run.context.credit_card).toBe(CARD);
    expect(run.context.payment).toEqual({ iban: IBAN });
    expect(Object.keys(run.context).sort()).toEqual(["credit_card", "fieldseal", "payment"]);
    expect(run.limitErrors).toEqual([]);
  });

  it("refuses an envelope larger than one Cognigy write takes, writing nothing", async () => {
    // 50,000 characters seal to about 66,700: over the 62 KB Cognigy takes in one API call's argument.
    const notes = "n".repeat(50_000);
    const run = cognigyRun({ sessionId: "sess-62k" }, { notes });
    await seal(run, { connection: connection(), fields: [{ field: "notes" }] });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "too_large_for_cognigy" });
    expect(failureOf(run).message).toMatch(
      /^context\.__enc_notes would be \d+ bytes and Cognigy takes at most 62000/,
    );
    expect(run.context.notes).toBe(notes);
    expect(run.context).not.toHaveProperty("__enc_notes");
    expect(run.limitErrors).toEqual([]);
  });

  it("keeps the JSON type of a value (a number from a slot)", async () => {
    const run = cognigyRun({ sessionId: "sess-types", slots: { NUMBER: [{ value: 42 }] } }, {});
    await seal(run, {
      connection: connection(),
      fields: [{ field: "pin_attempts", from: "input.slots.NUMBER.0.value" }],
    });
    expect(run.nextNodes).toEqual(["child-success"]);
    await open(run, { field: "pin_attempts" });
    expect(run.context.opened).toBe(42);
  });

  it("binds to the user id when chosen, so the value opens for that user and not the session", async () => {
    const run = cognigyRun({ sessionId: "sess-u", userId: "user-7" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }], scope: "userId" });
    expect(run.nextNodes).toEqual(["child-success"]);
    await open(run, { field: "credit_card", scope: "userId" });
    expect(run.context.opened).toBe(CARD);
    await open(run, { field: "credit_card", scope: "sessionId", resultKey: "asSession" });
    expect(failureOf(run, "asSession")).toMatchObject({ ok: false, reason: "envelope_tampered" });
  });

  it("posts Connect JSON to the RPC under the service URL's path, with the bearer token and a deadline", async () => {
    const seen: Array<{ url: string; headers: Record<string, unknown>; body: string }> = [];
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(`{"sealed":{"credit_card":"${WIRE_ENVELOPE}"},"keyring":"k","keyVersion":3}`);
      });
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-wire" }, { credit_card: CARD });
      await seal(run, {
        connection: { serviceUrl: `${url}/fieldseal`, token: "fsk_wire" },
        fields: [{ field: "credit_card" }],
        keyring: "k",
        timeoutMs: 4321,
      });
      expect(seen).toHaveLength(1);
      expect(seen[0]?.url).toBe("/fieldseal/fieldseal.v1.FieldsealService/EncryptFields");
      expect(seen[0]?.headers).toMatchObject({
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "4321",
        authorization: "Bearer fsk_wire",
      });
      expect(JSON.parse(seen[0]?.body ?? "")).toEqual({
        keyring: "k",
        scope: { sessionId: "sess-wire" },
        fields: { credit_card: CARD },
      });
      expect(run.context).toMatchObject({ __enc_credit_card: WIRE_ENVELOPE, credit_card: null });
      expect(run.context.fieldseal).toEqual({
        ok: true,
        keyring: "k",
        keyVersion: 3,
        fields: ["credit_card"],
      });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("seals under the keyring named, and fails with the server's reason for one that does not exist", async () => {
    const run = cognigyRun({ sessionId: "sess-ring" }, { credit_card: CARD });
    await seal(run, {
      connection: connection(),
      fields: [{ field: "credit_card" }],
      keyring: "no-such-ring",
    });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "keyring_not_found" });
    expect(run.context.credit_card).toBe(CARD);
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }], keyring: " default " });
    expect(run.context.__enc_credit_card).toMatch(/^fs1\.default\.1\./);
    expect(run.nextNodes).toEqual(["child-failure", "child-success"]);
  });

  it("applies the sensitive-logging settings with the input's trace id when asked", async () => {
    const run = cognigyRun({ sessionId: "sess-mask", traceId: "trace-9" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }], maskLogging: true });
    expect(run.calls.find((c) => c.method === "setSensitiveLoggingSettings")?.args).toEqual([
      {
        maskLogging: true,
        maskAnalytics: true,
        maskIPAddress: true,
        disableIntentTrainer: true,
        disableConversations: false,
      },
      "trace-9",
    ]);
    expect(run.nextNodes).toEqual(["child-success"]);
  });

  it("takes On failure with reason unreachable when nothing listens (connection refused)", async () => {
    const closed = await freePortUrl();
    const run = cognigyRun({ sessionId: "sess-down" }, { credit_card: CARD });
    await seal(run, { connection: connection(fs.tokens.bot, closed), fields: [{ field: "credit_card" }] });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "unreachable" });
    expect(failureOf(run).message).toContain("ECONNREFUSED");
    // Nothing half-written: the plaintext is where it was and no envelope appeared.
    expect(run.context.credit_card).toBe(CARD);
    expect(run.context.__enc_credit_card).toBeUndefined();
    expect(run.logs).toHaveLength(1);
    expect(run.logs[0]?.level).toBe("error");
    expectNoPlaintextWritten(run);
  });

  it("takes On failure with reason unauthenticated for a wrong token, with no value in context or logs", async () => {
    const run = cognigyRun({ sessionId: "sess-token" }, { credit_card: CARD, iban: IBAN });
    await seal(run, {
      connection: connection("fsk_not-a-real-token"),
      fields: [{ field: "credit_card" }, { field: "iban" }],
    });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "unauthenticated" });
    expect(failureOf(run).message).toMatch(
      /^Fieldseal refused EncryptFields at 127\.0\.0\.1:\d+: unauthenticated: /,
    );
    expect(run.context.credit_card).toBe(CARD);
    expect(Object.keys(run.context).sort()).toEqual(["credit_card", "fieldseal", "iban"]);
    expectNoPlaintextWritten(run);
    // The token is no value either: it is not echoed.
    expect(written(run)).not.toContain("fsk_not-a-real-token");
  });

  it("takes On failure with reason permission_denied for a principal that may not encrypt", async () => {
    const run = cognigyRun({ sessionId: "sess-perm" }, { credit_card: CARD });
    await seal(run, { connection: connection(fs.tokens.handoff), fields: [{ field: "credit_card" }] });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "permission_denied" });
    expectNoPlaintextWritten(run);
  });

  it("gives up on a slow server at its timeout, well inside Cognigy's 20 s, and takes On failure", async () => {
    const proxy = await startDelayingProxy(fs.port, 4000);
    try {
      const run = cognigyRun({ sessionId: "sess-slow" }, { credit_card: CARD });
      const started = Date.now();
      await seal(run, {
        connection: connection(fs.tokens.bot, proxy.url),
        fields: [{ field: "credit_card" }],
        timeoutMs: 500,
      });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(run.nextNodes).toEqual(["child-failure"]);
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "timeout" });
      expect(run.context.credit_card).toBe(CARD);
      expectNoPlaintextWritten(run);
    } finally {
      await proxy.close();
    }
  });

  it("waits for a slow server that answers inside the timeout", async () => {
    const proxy = await startDelayingProxy(fs.port, 300);
    try {
      const run = cognigyRun({ sessionId: "sess-slow-ok" }, { credit_card: CARD });
      await seal(run, {
        connection: connection(fs.tokens.bot, proxy.url),
        fields: [{ field: "credit_card" }],
        timeoutMs: 10_000,
      });
      expect(run.nextNodes).toEqual(["child-success"]);
      expect(run.context.__enc_credit_card).toMatch(/^fs1\./);
    } finally {
      await proxy.close();
    }
  });

  it("times out on a server that accepts the connection and never answers", async () => {
    const silent = await startSilentServer();
    try {
      const run = cognigyRun({ sessionId: "sess-silent" }, { credit_card: CARD });
      await seal(run, {
        connection: connection(fs.tokens.bot, silent.url),
        fields: [{ field: "credit_card" }],
        timeoutMs: 300,
      });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "timeout" });
      expect(run.nextNodes).toEqual(["child-failure"]);
    } finally {
      await silent.close();
    }
  });

  it("refuses a missing context path with reason missing_input, naming the path and calling nothing", async () => {
    const before = fs.audit.events.length;
    const run = cognigyRun({ sessionId: "sess-missing" }, { credit_card: CARD });
    await seal(run, {
      connection: connection(),
      fields: [{ field: "credit_card" }, { field: "iban", from: "context.payment.iban" }],
    });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toEqual({
      ok: false,
      reason: "missing_input",
      message: "nothing to seal for iban at context.payment.iban",
    });
    expect(run.context.credit_card).toBe(CARD);
    expect(fs.audit.events.length).toBe(before);
  });

  it("refuses to seal a field again once its plaintext key is null, keeping the first envelope", async () => {
    const run = cognigyRun({ sessionId: "sess-twice" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    const first = run.context.__enc_credit_card;
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    expect(run.nextNodes).toEqual(["child-success", "child-failure"]);
    expect(failureOf(run).reason).toBe("missing_input");
    expect(run.context.__enc_credit_card).toBe(first);
  });

  it("refuses a missing session id with reason missing_scope", async () => {
    const run = cognigyRun({}, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "missing_scope" });
    expect(run.nextNodes).toEqual(["child-failure"]);
  });

  it.each([
    ["no fields", { fields: [] }],
    ["fields not JSON", { fields: "[{" }],
    ["a field name that would nest in context", { fields: [{ field: "a.b" }] }],
    ["a source reaching the prototype", { fields: [{ field: "x", from: "context.__proto__.x" }] }],
    ["the field name __proto__", { fields: [{ field: "__proto__", from: "context.credit_card" }] }],
    ["the field name constructor", { fields: [{ field: "constructor", from: "context.credit_card" }] }],
    ["the field name prototype", { fields: [{ field: "prototype", from: "context.credit_card" }] }],
    [
      "a field name that is another field's envelope key",
      { fields: [{ field: "credit_card" }, { field: "__enc_credit_card", from: "context.credit_card" }] },
    ],
    [
      "a field name that is a mask key",
      { fields: [{ field: "__mask_credit_card", from: "context.credit_card" }] },
    ],
    ["a field listed twice", { fields: [{ field: "x" }, { field: "x" }] }],
    ["a source outside context and input", { fields: [{ field: "x", from: "profile.email" }] }],
    ["a timeout above 15 s", { fields: [{ field: "credit_card" }], timeoutMs: 20_000 }],
    ["a timeout that is not a number", { fields: [{ field: "credit_card" }], timeoutMs: "soon" }],
  ])("refuses %s with reason bad_config and no call", async (_name, settings) => {
    const run = cognigyRun({ sessionId: "sess-config" }, { credit_card: CARD });
    await seal(run, { connection: connection(), ...settings });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_config" });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(run.context.credit_card).toBe(CARD);
  });

  it.each([
    ["a service URL that is not a URL", { serviceUrl: "not a url", token: "t" }],
    ["a non-http service URL", { serviceUrl: "file:///etc/passwd", token: "t" }],
    ["credentials in the service URL", { serviceUrl: "http://u:p@127.0.0.1:1", token: "t" }],
    ["an empty token", { serviceUrl: "http://127.0.0.1:1", token: "" }],
    ["a token with a non-ASCII character", { serviceUrl: "http://127.0.0.1:1", token: "fsk_tökén" }],
    ["a token with a control character", { serviceUrl: "http://127.0.0.1:1", token: "fsk_a\u0000b" }],
    ["no Connection", undefined],
  ])("refuses %s with reason bad_connection", async (_name, conn) => {
    const run = cognigyRun({ sessionId: "sess-conn" }, { credit_card: CARD });
    await seal(run, { connection: conn, fields: [{ field: "credit_card" }] });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_connection" });
    expect(written(run)).not.toContain("u:p@");
  });

  it.each([
    ["the envelope key", "__enc_credit_card"],
    ["the field's own key", "credit_card"],
    ["the object holding a nested source", "payment"],
    ["a key inside a mask", "__mask_credit_card.text"],
  ])(
    "refuses an outcome key that is %s, writing no outcome and keeping every value",
    async (_name, resultKey) => {
      const before = fs.audit.events.length;
      const context = {
        credit_card: CARD,
        payment: { iban: IBAN, currency: "EUR" },
        __enc_credit_card: "fs1.default.1.earlier",
      };
      const run = cognigyRun({ sessionId: "sess-outcome" }, structuredClone(context));
      await seal(run, {
        connection: connection(),
        fields: [{ field: "credit_card" }, { field: "iban", from: "context.payment.iban" }],
        resultKey,
      });
      expect(run.nextNodes).toEqual(["child-failure"]);
      expect(run.calls.map((c) => c.method)).toEqual(["setNextNode", "log"]);
      expect(run.logs[0]?.text).toMatch(
        /\(bad_config\): the outcome key .* would overwrite|\(bad_config\): the outcome key must/,
      );
      expect(run.context).toEqual(context);
      expect(fs.audit.events.length).toBe(before);
    },
  );

  it("refuses an outcome key that is not a context path, instead of writing it elsewhere", async () => {
    const run = cognigyRun({ sessionId: "sess-outcome-path" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }], resultKey: "a..b" });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(run.context).toEqual({ credit_card: CARD });
    expect(run.logs[0]?.text).toContain("(bad_config)");
  });

  it.each([
    ["a field's source", { fields: [{ field: "credit_card", from: CARD }] }],
    ["a field's source path", { fields: [{ field: "credit_card", from: `context.${CARD}..x` }] }],
    ["the outcome key", { fields: [{ field: "credit_card" }], resultKey: `${CARD}..` }],
  ])("never quotes %s in a refusal (CognigyScript may have put a value there)", async (_name, settings) => {
    const run = cognigyRun({ sessionId: "sess-quote" }, { credit_card: CARD });
    await seal(run, { connection: connection(), ...settings });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(run.logs[0]?.text).toContain("(bad_config)");
    expect(written(run)).not.toContain(CARD);
  });

  it("withholds a server message that quotes the keyring setting", async () => {
    const run = cognigyRun({ sessionId: "sess-ring-quote" }, { credit_card: CARD });
    // A CognigyScript slip: the keyring setting resolved to a customer's number; Fieldseal's refusal quotes it.
    const number = "078051120";
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }], keyring: number });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run).reason).toBe("keyring_not_found");
    expect(written(run)).not.toContain(number);
    expect(written(run)).not.toContain(CARD);
  });

  it("writes the outcome to the configured context key", async () => {
    const run = cognigyRun({ sessionId: "sess-key" }, {});
    await seal(run, {
      connection: connection(),
      fields: [{ field: "credit_card" }],
      resultKey: "seal.outcome",
    });
    expect(run.context.seal).toEqual({
      outcome: {
        ok: false,
        reason: "missing_input",
        message: "nothing to seal for credit_card at context.credit_card",
      },
    });
  });

  it("takes On failure with reason bad_response for an answer that is not Fieldseal's, writing nothing", async () => {
    const bogus = await startJsonServer(200, '{"sealed":{"credit_card":"fs1.x"}}');
    try {
      const run = cognigyRun({ sessionId: "sess-bogus" }, { credit_card: CARD, iban: IBAN });
      await seal(run, {
        connection: connection(fs.tokens.bot, bogus.url),
        fields: [{ field: "credit_card" }, { field: "iban" }],
      });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_response" });
      expect(run.context.credit_card).toBe(CARD);
      expect(run.context.__enc_credit_card).toBeUndefined();
      const html = await startJsonServer(200, "<html>proxy login</html>");
      try {
        await seal(run, {
          connection: connection(fs.tokens.bot, html.url),
          fields: [{ field: "credit_card" }],
        });
        expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_response" });
      } finally {
        await html.close();
      }
      const gateway = await startJsonServer(502, "bad gateway");
      try {
        await seal(run, {
          connection: connection(fs.tokens.bot, gateway.url),
          fields: [{ field: "credit_card" }],
        });
        expect(failureOf(run)).toMatchObject({ ok: false, reason: "http_502" });
      } finally {
        await gateway.close();
      }
      expect(run.nextNodes).toEqual(["child-failure", "child-failure", "child-failure"]);
      expectNoPlaintextWritten(run);
    } finally {
      await bogus.close();
    }
  });

  it.each([
    ["the value echoed back as its envelope", { sealed: { credit_card: CARD } }],
    [
      "an envelope of another format",
      { sealed: { credit_card: "fs2.default.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } },
    ],
    ["a sealed map that is an array", { sealed: [CARD] }],
    [
      "a mask that is an array",
      { sealed: { credit_card: WIRE_ENVELOPE }, masked: { credit_card: ["Visa", CARD] } },
    ],
    [
      "a mask whose text is not a string",
      {
        sealed: { credit_card: WIRE_ENVELOPE },
        masked: { credit_card: { format: "card", text: { v: CARD } } },
      },
    ],
    ["a mask that is a string", { sealed: { credit_card: WIRE_ENVELOPE }, masked: { credit_card: CARD } }],
  ])("writes nothing for an answer with %s (bad_response)", async (_name, answer) => {
    const server = await startJsonServer(200, JSON.stringify(answer));
    try {
      const run = cognigyRun({ sessionId: "sess-shapes" }, { credit_card: CARD });
      await seal(run, {
        connection: connection(fs.tokens.bot, server.url),
        fields: [{ field: "credit_card" }],
      });
      expect(run.nextNodes).toEqual(["child-failure"]);
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_response" });
      expect(Object.keys(run.context).sort()).toEqual(["credit_card", "fieldseal"]);
      expect(run.context.credit_card).toBe(CARD);
      expectNoPlaintextWritten(run);
    } finally {
      await server.close();
    }
  });

  it("times out on a server that drips its answer a byte at a time", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const server = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      // At most 200 bytes over 10 s: bounded even if nothing stops it.
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent++ >= 200) {
          clearInterval(timer);
          timers.delete(timer);
          res.end();
          return;
        }
        res.write(" ");
      }, 50);
      timers.add(timer);
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-drip" }, { credit_card: CARD });
      await seal(run, {
        connection: connection("fsk_t", url),
        fields: [{ field: "credit_card" }],
        timeoutMs: 400,
      });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "timeout" });
      expect(run.context.credit_card).toBe(CARD);
    } finally {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      server.close();
    }
  });

  it("refuses a value the server refuses, with the server's reason (too large)", async () => {
    const run = cognigyRun({ sessionId: "sess-big" }, { notes: "x".repeat(2_000_000) });
    await seal(run, { connection: connection(), fields: [{ field: "notes" }] });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "too_large" });
    expect(written(run)).not.toContain("xxxxxxxxxx");
  });
});

describe("Seal fields against a hostile or failing environment", () => {
  it("keeps every value when the runtime refuses a write midway, and does not throw", async () => {
    const run = cognigyRun(
      { sessionId: "sess-midway" },
      { credit_card: CARD, iban: IBAN },
      (method, args) => method === "addToContext" && args[0] === "__enc_iban",
    );
    await expect(
      seal(run, { connection: connection(), fields: [{ field: "credit_card" }, { field: "iban" }] }),
    ).resolves.toBeUndefined();
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toEqual({ ok: false, reason: "internal", message: "unexpected Error" });
    // No plaintext was cleared before every envelope was written.
    expect(run.context.credit_card).toBe(CARD);
    expect(run.context.iban).toBe(IBAN);
    expect(run.calls.filter((c) => c.method === "deleteContext")).toEqual([]);
  });

  it("does not throw out of the flow when every api call throws", async () => {
    const run = cognigyRun({ sessionId: "sess-throws" }, { credit_card: CARD }, () => true);
    await expect(
      seal(run, { connection: connection(), fields: [{ field: "credit_card" }] }),
    ).resolves.toBeUndefined();
    expect(run.calls.map((c) => c.method)).toEqual(["addToContext", "addToContext", "setNextNode", "log"]);
  });

  it.each([
    ["a BigInt", () => 10n ** 20n],
    [
      "a cycle",
      () => {
        const node: Record<string, unknown> = { card: CARD };
        node.self = node;
        return node;
      },
    ],
  ])("refuses %s in a value with reason unsendable_input, sending nothing", async (_name, make) => {
    const before = fs.audit.events.length;
    const run = cognigyRun({ sessionId: "sess-unsendable" }, { odd: make() });
    await seal(run, { connection: connection(), fields: [{ field: "odd" }] });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "unsendable_input" });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(fs.audit.events.length).toBe(before);
    expectNoPlaintextWritten(run);
    // A call that reaches the server is audited, so the count above would have moved.
    await seal(cognigyRun({ sessionId: "sess-unsendable" }, { card: CARD }), {
      connection: connection(),
      fields: [{ field: "card" }],
    });
    expect(fs.audit.events.length).toBeGreaterThan(before);
  });

  it("times out on a server that sends the answer's head and never finishes its body", async () => {
    const server = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"sealed":');
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-trickle" }, { credit_card: CARD });
      await seal(run, {
        connection: connection(fs.tokens.bot, url),
        fields: [{ field: "credit_card" }],
        timeoutMs: 300,
      });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "timeout" });
      expect(run.context.credit_card).toBe(CARD);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it.each([
    ["without a fieldseal-reason (a proxy)", {}, "http_400", /: invalid_argument$/],
    [
      "with a fieldseal-reason",
      { "fieldseal-reason": "invalid_argument" },
      "invalid_argument",
      /: invalid_argument: \(the server's message quotes what was sent, so it is not kept\)$/,
    ],
    [
      "with a fieldseal-reason that is not a reason",
      { "fieldseal-reason": `card ${CARD}` },
      "http_400",
      /: invalid_argument$/,
    ],
  ])(
    "keeps no value from an error answer that echoes the request, %s",
    async (_name, headers, reason, message) => {
      const server = createHttpServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const echo = Buffer.concat(chunks).toString("utf8");
          res
            .writeHead(400, { "content-type": "application/json", ...headers })
            .end(JSON.stringify({ code: "invalid_argument", message: `cannot parse ${echo}` }));
        });
      });
      const url = await listen(server);
      try {
        // A three-character value (a CVV) is withheld as well as long ones.
        const run = cognigyRun({ sessionId: "sess-echo" }, { credit_card: CARD, iban: IBAN, cvv: "Z9Q" });
        await seal(run, {
          connection: connection("fsk_echo-token", url),
          fields: [{ field: "credit_card" }, { field: "iban" }, { field: "cvv" }],
        });
        expect(run.nextNodes).toEqual(["child-failure"]);
        expect(failureOf(run).reason).toBe(reason);
        expect(failureOf(run).message).toMatch(message);
        const calls = written(run);
        for (const text of [CARD, IBAN, "Z9Q", "fsk_echo-token", "sess-echo"]) {
          expect(calls).not.toContain(text);
        }
      } finally {
        server.closeAllConnections();
        server.close();
      }
    },
  );

  it("withholds a Fieldseal-looking message that quotes a three-character value (a CVV)", async () => {
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const cvv = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { fields: { cvv: string } }).fields
          .cvv;
        res
          .writeHead(400, { "content-type": "application/json", "fieldseal-reason": "invalid_argument" })
          .end(JSON.stringify({ code: "invalid_argument", message: `cvv ${cvv} refused` }));
      });
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-cvv" }, { cvv: "Z9Q" });
      await seal(run, { connection: connection("fsk_t", url), fields: [{ field: "cvv" }] });
      expect(failureOf(run).reason).toBe("invalid_argument");
      expect(failureOf(run).message).toMatch(/not kept\)$/);
      expect(written(run)).not.toContain("Z9Q");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("replaces control characters in a kept server message, so a log line stays one line", async () => {
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on("end", () =>
        res
          .writeHead(400, { "content-type": "application/json", "fieldseal-reason": "invalid_argument" })
          .end(JSON.stringify({ code: "invalid_argument", message: "field credit_card:\u0000 refused" })),
      );
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-msg" }, { credit_card: CARD });
      await seal(run, { connection: connection("fsk_t", url), fields: [{ field: "credit_card" }] });
      expect(failureOf(run).message).toMatch(/: invalid_argument: field credit_card: {2}refused$/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("takes On failure with reason bad_response for a JSON answer that is not application/json", async () => {
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on("end", () =>
        res
          .writeHead(200, { "content-type": "text/plain" })
          .end('{"sealed":{"credit_card":"fs1.k.3.AAAA"},"keyring":"k","keyVersion":3}'),
      );
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-type" }, { credit_card: CARD });
      await seal(run, { connection: connection("fsk_t", url), fields: [{ field: "credit_card" }] });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_response" });
      expect(run.context.credit_card).toBe(CARD);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("takes On failure with reason unreachable when the server closes the connection mid-answer", async () => {
    const server = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json", "content-length": "500" });
      res.write('{"sealed":{"credit_card":"fs1.');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-cut" }, { credit_card: CARD });
      await seal(run, { connection: connection("fsk_t", url), fields: [{ field: "credit_card" }] });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "unreachable" });
      expect(run.context.credit_card).toBe(CARD);
      expect(run.context).not.toHaveProperty("__enc_credit_card");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("does not follow a redirect, so the token never reaches another host (reason http_307)", async () => {
    const reached: string[] = [];
    const elsewhere = createHttpServer((req, res) => {
      reached.push(req.headers.authorization ?? "");
      res.end("{}");
    });
    const elsewhereUrl = await listen(elsewhere);
    const redirecting = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: `${elsewhereUrl}/steal` }).end();
    });
    const url = await listen(redirecting);
    try {
      const run = cognigyRun({ sessionId: "sess-redirect" }, { credit_card: CARD });
      await seal(run, { connection: connection(fs.tokens.bot, url), fields: [{ field: "credit_card" }] });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "http_307" });
      expect(reached).toEqual([]);
    } finally {
      for (const server of [elsewhere, redirecting]) {
        server.closeAllConnections();
        server.close();
      }
    }
  });

  it.each([
    ["declared", true],
    ["streamed", false],
  ])(
    "refuses a %s answer larger than the limit without buffering it (bad_response)",
    async (_name, declare) => {
      const size = MAX_ANSWER_BYTES + 1024;
      const server = createHttpServer((req, res) => {
        req.resume();
        res.writeHead(200, {
          "content-type": "application/json",
          ...(declare ? { "content-length": String(size) } : {}),
        });
        res.end(Buffer.alloc(size, 0x20));
      });
      const url = await listen(server);
      try {
        const run = cognigyRun({ sessionId: "sess-huge" }, { credit_card: CARD });
        await seal(run, { connection: connection(fs.tokens.bot, url), fields: [{ field: "credit_card" }] });
        expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_response" });
        expect(failureOf(run).message).toContain("larger than");
      } finally {
        server.closeAllConnections();
        server.close();
      }
    },
  );
});

describe("Open field", () => {
  it("opens __enc_<field> into the target key, logging no value", async () => {
    const run = cognigyRun({ sessionId: "sess-open" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    await open(run, { field: "credit_card", targetKey: "handoff.card" });
    expect(run.nextNodes).toEqual(["child-success", "child-success"]);
    expect(run.context.handoff).toEqual({ card: CARD });
    expect(run.context.fieldseal).toEqual({
      ok: true,
      field: "credit_card",
      keyring: "default",
      keyVersion: 1,
      target: "handoff.card",
    });
    expect(run.logs.map((l) => l.text)).toContain(
      "Fieldseal opened credit_card into context.handoff.card; delete it after use",
    );
    expect(JSON.stringify(run.logs)).not.toContain(CARD);
  });

  it("writes no log line at all when logging is off, on success and on failure", async () => {
    const run = cognigyRun({ sessionId: "sess-quiet" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    const logged = run.logs.length;
    await open(run, { field: "credit_card", log: false });
    await open(run, { field: "iban", log: false });
    expect(run.nextNodes).toEqual(["child-success", "child-success", "child-failure"]);
    expect(run.logs.length).toBe(logged);
  });

  it("takes On failure when the principal may not open the field, writing nothing to the target", async () => {
    const run = cognigyRun({ sessionId: "sess-deny" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    await open(run, { field: "credit_card", connection: connection(fs.tokens.bot) });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "permission_denied" });
    expect(run.context.opened).toBeUndefined();
    expect(run.nextNodes).toEqual(["child-success", "child-failure"]);
  });

  it("takes On failure for a value moved to another session (reason envelope_tampered)", async () => {
    const first = cognigyRun({ sessionId: "sess-a" }, { credit_card: CARD });
    await seal(first, { connection: connection(), fields: [{ field: "credit_card" }] });
    const other = cognigyRun({ sessionId: "sess-b" }, { __enc_credit_card: first.context.__enc_credit_card });
    await open(other, { field: "credit_card" });
    expect(failureOf(other)).toMatchObject({ ok: false, reason: "envelope_tampered" });
    expect(other.context.opened).toBeUndefined();
    expect(other.nextNodes).toEqual(["child-failure"]);
  });

  it("takes On failure with reason missing_input when there is no envelope", async () => {
    const run = cognigyRun({ sessionId: "sess-none" }, {});
    await open(run, { field: "credit_card" });
    expect(failureOf(run)).toEqual({
      ok: false,
      reason: "missing_input",
      message: "no sealed value at context.__enc_credit_card",
    });
  });

  it("refuses to write a value larger than one Cognigy write takes, writing nothing to the target", async () => {
    // Sealed by another client with larger limits; its JSON is over 62 KB.
    const big = "b".repeat(63_000);
    const sealed = await fs.client("bot").encryptFields({
      scope: { id: { case: "sessionId", value: "sess-big-open" } },
      fields: { notes: { kind: { case: "stringValue", value: big } } },
    });
    const run = cognigyRun({ sessionId: "sess-big-open" }, { __enc_notes: sealed.sealed.notes });
    await open(run, { field: "notes" });
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(failureOf(run)).toEqual({
      ok: false,
      reason: "too_large_for_cognigy",
      message: "context.opened would be 63002 bytes and Cognigy takes at most 62000 in one write",
    });
    expect(run.context).not.toHaveProperty("opened");
    expect(written(run)).not.toContain("bbbbbbbbbb");
  });

  it.each([
    ["an envelope key", { targetKey: "__enc_credit_card" }],
    ["a mask key", { targetKey: "__mask_credit_card.text" }],
    ["the outcome key", { targetKey: "handoff", resultKey: "handoff.outcome" }],
  ])("refuses %s as the target, keeping the envelope and writing no plaintext", async (_name, settings) => {
    const run = cognigyRun({ sessionId: "sess-target-env" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    const envelope = run.context.__enc_credit_card;
    await open(run, { field: "credit_card", ...settings });
    expect(run.nextNodes).toEqual(["child-success", "child-failure"]);
    expect(run.context.__enc_credit_card).toBe(envelope);
    expect(written(run)).not.toContain(CARD);
  });

  it("refuses an envelope key as the outcome key, writing nothing there", async () => {
    const run = cognigyRun({ sessionId: "sess-open-outcome" }, { credit_card: CARD });
    await seal(run, { connection: connection(), fields: [{ field: "credit_card" }] });
    const envelope = run.context.__enc_credit_card;
    await open(run, { field: "credit_card", resultKey: "__enc_credit_card" });
    expect(run.nextNodes).toEqual(["child-success", "child-failure"]);
    expect(run.context.__enc_credit_card).toBe(envelope);
    expect(run.context).not.toHaveProperty("opened");
  });

  it("never quotes what it found at __enc_<field> when that is not an envelope (a value put there by mistake)", async () => {
    for (const misplaced of [CARD, `fs1.default.1.${CARD}`, `fs1.${CARD}.1.AAAA`]) {
      const run = cognigyRun({ sessionId: "sess-misplaced" }, { __enc_credit_card: misplaced });
      await open(run, { field: "credit_card" });
      expect(run.nextNodes).toEqual(["child-failure"]);
      expect(written(run)).not.toContain(CARD);
    }
  });

  it("withholds a Fieldseal-looking message that quotes what was at __enc_<field>", async () => {
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const { sealed } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { sealed: string };
        res
          .writeHead(400, { "content-type": "application/json", "fieldseal-reason": "envelope_malformed" })
          .end(JSON.stringify({ code: "invalid_argument", message: `not an envelope: ${sealed}` }));
      });
    });
    const url = await listen(server);
    try {
      const run = cognigyRun({ sessionId: "sess-open-echo" }, { __enc_credit_card: CARD });
      await open(run, { field: "credit_card", connection: { serviceUrl: url, token: "fsk_t" } });
      expect(failureOf(run)).toMatchObject({ ok: false, reason: "envelope_malformed" });
      expect(written(run)).not.toContain(CARD);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("refuses an empty target key with reason bad_config", async () => {
    const run = cognigyRun({ sessionId: "sess-target" }, { __enc_credit_card: "fs1.x" });
    await open(run, { field: "credit_card", targetKey: " " });
    expect(failureOf(run)).toMatchObject({ ok: false, reason: "bad_config" });
  });
});

/** Listens on a free loopback port; resolves with the server's base URL. */
async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no address");
  return `http://127.0.0.1:${address.port}`;
}

/** A loopback URL nothing listens on: a port that was just free. */
async function freePortUrl(): Promise<string> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no address");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${address.port}`;
}

/** A loopback server that accepts connections and never answers (a half-open peer). */
async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A loopback HTTP server answering every request with `status` and `body`. */
async function startJsonServer(
  status: number,
  body: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createHttpServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(status, { "content-type": "application/json" }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
