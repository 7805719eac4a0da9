/**
 * Strict decoding at the webhook, against a real Fieldseal server over loopback: bytes that are not UTF-8
 * (in a JSON body, a form body, a percent-encoded form value or X-Sensitive-Metadata), lone surrogates and
 * nesting past the engine's limit are refused with 400 and a specific reason, never sealed as U+FFFD and
 * never a 5xx; the server stays healthy after each.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { postRaw, type RawAnswer } from "./raw-http.js";

const CARD = "4111111111111111";

describe("webhook bodies and headers are decoded strictly", () => {
  let fs: TestFieldseal;
  let token: string;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [
        { name: "bot", scopes: ["encrypt"] },
        { name: "billing", scopes: ["decrypt:credit_card"] },
      ],
    });
    token = fs.tokens.bot ?? "";
  });
  afterAll(async () => {
    await fs.close();
  });

  const jsonHeaders = (extra: Record<string, string | string[]> = {}) => ({
    "content-type": "application/json",
    authorization: `Bearer ${token}`,
    "x-sensitive-metadata": "field:credit_card",
    ...extra,
  });
  const formHeaders = (extra: Record<string, string | string[]> = {}) =>
    jsonHeaders({ "content-type": "application/x-www-form-urlencoded", ...extra });

  /** A 400 problem with `reason`, no value in it, nothing sealed, and a healthy server after it. */
  async function expectRefused(answer: RawAnswer, reason: string | undefined, detail: RegExp) {
    expect(answer.status).toBe(400);
    expect(answer.headers["content-type"]).toBe("application/problem+json");
    expect(answer.headers["fieldseal-reason"]).toBe("invalid_argument");
    expect(answer.json).toMatchObject({ status: 400, code: "invalid_argument" });
    if (reason !== undefined) expect(answer.json.reason).toBe(reason);
    expect(answer.json.detail).toMatch(detail);
    expect(answer.text).not.toContain(CARD);
    expect(answer.text).not.toContain("\uFFFD");
    expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
    const health = await fetch(`${fs.url}/healthz`);
    expect(health.status).toBe(200);
  }

  it("refuses invalid UTF-8 inside a JSON value (x FF FE) instead of sealing U+FFFD", async () => {
    const body = Buffer.concat([
      Buffer.from('{"sessionId":"s-utf8","variables":{"credit_card":"x'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]);
    await expectRefused(
      await postRaw(fs.url, body, jsonHeaders()),
      "invalid_utf8",
      /^body is not valid UTF-8$/,
    );
  });

  it("refuses an overlong encoding and a UTF-8-encoded surrogate in JSON", async () => {
    for (const bad of [
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
    ]) {
      const body = Buffer.concat([
        Buffer.from('{"sessionId":"s","variables":{"credit_card":"'),
        Buffer.from(bad),
        Buffer.from('"}}'),
      ]);
      await expectRefused(await postRaw(fs.url, body, jsonHeaders()), "invalid_utf8", /not valid UTF-8/);
    }
  });

  it("refuses invalid UTF-8 in a form body, raw or percent-encoded, and in variables JSON text", async () => {
    const raw = Buffer.concat([
      Buffer.from("sessionId=s&variables%5Bcredit_card%5D=x"),
      Buffer.from([0xff, 0xfe]),
    ]);
    await expectRefused(
      await postRaw(fs.url, raw, formHeaders()),
      "invalid_utf8",
      /^body is not valid UTF-8$/,
    );

    const percent = Buffer.from("sessionId=s&variables%5Bcredit_card%5D=x%FF%FE");
    await expectRefused(
      await postRaw(fs.url, percent, formHeaders()),
      "invalid_utf8",
      /percent-encoded form name or value is not valid UTF-8/,
    );

    const inJson = Buffer.from(
      `sessionId=s&variables=${encodeURIComponent('{"credit_card":"x')}%C3%28%22%7D`,
    );
    await expectRefused(await postRaw(fs.url, inJson, formHeaders()), "invalid_utf8", /not valid UTF-8/);
  });

  it("refuses X-Sensitive-Metadata that is not UTF-8, and reads a UTF-8 field name as UTF-8", async () => {
    const body = Buffer.from(JSON.stringify({ sessionId: "s-h", variables: { café: CARD } }));
    // node:http writes each char of a header value as one byte: "\xff" goes out as the byte FF.
    await expectRefused(
      await postRaw(fs.url, body, jsonHeaders({ "x-sensitive-metadata": "field:caf\xff" })),
      "invalid_utf8",
      /^X-Sensitive-Metadata is not valid UTF-8$/,
    );
    const utf8Name = Buffer.from("field:café", "utf8").toString("latin1");
    const ok = await postRaw(fs.url, body, jsonHeaders({ "x-sensitive-metadata": utf8Name }));
    expect(ok.status).toBe(200);
    expect(Object.keys(ok.json.variables).sort()).toEqual(["__enc_café", "café"]);
    fs.audit.events.length = 0;
  });

  it("refuses X-Sensitive-Metadata sent twice", async () => {
    const body = Buffer.from(JSON.stringify({ sessionId: "s-2h", variables: { a: "1", b: "2" } }));
    await expectRefused(
      await postRaw(fs.url, body, jsonHeaders({ "x-sensitive-metadata": ["field:a", "field:b"] })),
      "repeated_header",
      /send X-Sensitive-Metadata once/,
    );
  });

  it("refuses a lone surrogate in sessionId or a flagged name (a JSON escape, valid JSON)", async () => {
    const session = Buffer.from('{"sessionId":"s\\ud800","variables":{"credit_card":"1"}}');
    await expectRefused(await postRaw(fs.url, session, jsonHeaders()), "lone_surrogate", /"sessionId"/);
    const name = Buffer.from('{"sessionId":"s","variables":{"a\\udc00":"1"},"sensitive":["a\\udc00"]}');
    await expectRefused(
      await postRaw(fs.url, name, jsonHeaders({ "x-sensitive-metadata": "" })),
      "lone_surrogate",
      /flagged field name/,
    );
  });

  it("refuses a field named __proto__ with 400, alone or beside another (it would drop out of the seal)", async () => {
    for (const flagged of ["field:__proto__", "field:__proto__,field:credit_card"]) {
      const body = Buffer.from(
        `{"sessionId":"s-proto","variables":{"__proto__":"x","credit_card":"${CARD}"}}`,
      );
      await expectRefused(
        await postRaw(fs.url, body, jsonHeaders({ "x-sensitive-metadata": flagged })),
        undefined,
        /a field named "__proto__" cannot be sealed/,
      );
    }
  });

  it("refuses JSON nested 10,000 deep with 400, in a body and in form variables text", async () => {
    const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    const body = Buffer.from(`{"sessionId":"s-deep","variables":{"credit_card":${deep}}}`);
    await expectRefused(
      await postRaw(fs.url, body, jsonHeaders()),
      "too_deep",
      /^body nests deeper than 34 levels$/,
    );
    const form = Buffer.from(`sessionId=s-deep&variables=${encodeURIComponent(`{"credit_card":${deep}}`)}`);
    await expectRefused(
      await postRaw(fs.url, form, formHeaders()),
      "too_deep",
      /nests deeper than 33 levels/,
    );
    // Unbalanced and unterminated too: the scan refuses before JSON.parse is asked.
    const open = Buffer.from(`{"sessionId":"s","variables":{"credit_card":${"{".repeat(20_000)}`);
    await expectRefused(await postRaw(fs.url, open, jsonHeaders()), "too_deep", /nests deeper/);
  });

  it("seals a value nested as deep as the engine allows (32) and refuses one level more", async () => {
    const nested = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`;
    const ok = await postRaw(
      fs.url,
      Buffer.from(`{"sessionId":"s-32","variables":{"credit_card":${nested(32)}}}`),
      jsonHeaders(),
    );
    expect(ok.status).toBe(200);
    fs.audit.events.length = 0;
    await expectRefused(
      await postRaw(
        fs.url,
        Buffer.from(`{"sessionId":"s-33","variables":{"credit_card":${nested(33)}}}`),
        jsonHeaders(),
      ),
      "too_deep",
      /nests deeper than 34 levels/,
    );
  });

  it("refuses a number a double cannot hold exactly (no 500 for 1e400, no rounded card number)", async () => {
    fs.audit.events.length = 0;
    for (const number of [
      "1e400",
      "-1e400",
      "1e-400",
      "4111111111111111111",
      "9007199254740993",
      "12345678901234567",
      "1.00000000000000001",
      "-4111111111111111111.0",
    ]) {
      const body = Buffer.from(`{"sessionId":"s-num","variables":{"credit_card":${number}}}`);
      await expectRefused(
        await postRaw(fs.url, body, jsonHeaders()),
        "inexact_number",
        /^body holds a number that a double cannot hold exactly .*: send it as a string$/,
      );
      const form = Buffer.from(
        `sessionId=s-num&variables=${encodeURIComponent(`{"credit_card":${number}}`)}`,
      );
      await expectRefused(
        await postRaw(fs.url, form, formHeaders()),
        "inexact_number",
        /cannot hold exactly/,
      );
    }
  });

  it("seals numbers a double holds exactly and opens them as sent", async () => {
    for (const [number, opened] of [
      ["9007199254740991", 9007199254740991],
      ["-9007199254740991", -9007199254740991],
      ["4111111111111111", 4111111111111111],
      ["0.1", 0.1],
      ["1e21", 1e21],
      ["1.5E-7", 1.5e-7],
      ["5e-324", 5e-324],
      ["1.7976931348623157e308", 1.7976931348623157e308],
      ["100000000000000000000", 1e20],
      ["0.000000000000000000000000000001", 1e-30],
    ] as const) {
      const body = Buffer.from(`{"sessionId":"s-exact","variables":{"credit_card":${number}}}`);
      const answer = await postRaw(fs.url, body, jsonHeaders());
      expect(answer.status, number).toBe(200);
      const value = await fs.client("billing").decryptField({
        scope: { id: { case: "sessionId", value: "s-exact" } },
        field: "credit_card",
        sealed: answer.json.variables.__enc_credit_card,
      });
      expect(value.value?.kind, number).toEqual({ case: "numberValue", value: opened });
    }
  });

  it("refuses a name twice in one object, at any level, however it is escaped", async () => {
    fs.audit.events.length = 0;
    for (const text of [
      '{"sessionId":"s-dup","variables":{"credit_card":"first","credit_card":"second"}}',
      '{"sessionId":"s-dup","variables":{"credit_card":"first","credit_\u0063ard":"second"}}',
      '{"sessionId":"s-dup","sessionId":"s-other","variables":{"credit_card":"x"}}',
      '{"sessionId":"s-dup","variables":{"credit_card":"x"},"variables":{"credit_card":"y"}}',
      '{"sessionId":"s-dup","variables":{"credit_card":{"pan":"1","exp":"2","pan":"3"}}}',
      '{"sessionId":"s-dup","variables":{"credit_card":[{"a":1},{"b":[{"c":1,"c":2}]}]}}',
    ]) {
      await expectRefused(
        await postRaw(fs.url, Buffer.from(text), jsonHeaders()),
        "duplicate_name",
        /^body names a member twice in one object$/,
      );
    }
    const form = Buffer.from(
      `sessionId=s-dup&variables=${encodeURIComponent('{"credit_card":"first","credit_card":"second"}')}`,
    );
    await expectRefused(await postRaw(fs.url, form, formHeaders()), "duplicate_name", /twice/);
    for (const text of [
      "sessionId=s-dup&variables[credit_card]=first&variables[credit_card]=second",
      "sessionId=s-dup&variables%5Bcredit_card%5D=first&variables[credit_card]=second",
      "sessionId=s-dup&sessionId=s-other&variables[credit_card]=x",
      "sessionId=s-dup&userId=a&userId=b&variables[credit_card]=x",
      `sessionId=s-dup&variables=${encodeURIComponent('{"credit_card":"x"}')}&variables=${encodeURIComponent('{"credit_card":"y"}')}`,
    ]) {
      await expectRefused(
        await postRaw(fs.url, Buffer.from(text), formHeaders()),
        "duplicate_name",
        /^the form names a field twice$/,
      );
    }
    // The same name in different objects, or as a value, is fine.
    const fine = Buffer.from(
      '{"sessionId":"credit_card","variables":{"credit_card":[{"a":"a"},{"a":{"a":"a"}}],"a":"credit_card"}}',
    );
    expect((await postRaw(fs.url, fine, jsonHeaders())).status).toBe(200);
  });

  it("refuses a charset other than UTF-8 with 415 instead of reading the bytes as UTF-8", async () => {
    const body = Buffer.from(JSON.stringify({ sessionId: "s-cs", variables: { credit_card: CARD } }));
    for (const type of [
      "application/json; charset=latin1",
      "application/json; charset=ISO-8859-1",
      'application/json;charset="utf-16"',
      "application/json; charset=utf-8; charset=windows-1252",
    ]) {
      const answer = await postRaw(fs.url, body, jsonHeaders({ "content-type": type }));
      expect(answer.status, type).toBe(415);
      expect(answer.headers["fieldseal-reason"]).toBe("unsupported_media_type");
      expect(answer.json.detail).toBe("send the body as UTF-8: charset=utf-8 or no charset parameter");
    }
    for (const type of ["application/json; charset=utf-8", 'application/json; Charset="UTF-8"']) {
      expect((await postRaw(fs.url, body, jsonHeaders({ "content-type": type }))).status, type).toBe(200);
    }
    const form = Buffer.from(`sessionId=s-cs&variables[credit_card]=${CARD}`);
    const answer = await postRaw(
      fs.url,
      form,
      formHeaders({ "content-type": "application/x-www-form-urlencoded; charset=iso-8859-1" }),
    );
    expect(answer.status).toBe(415);
  });

  it("after all of it still seals a well-formed request with non-ASCII text intact", async () => {
    const body = Buffer.from(
      JSON.stringify({ sessionId: "s-fine", variables: { credit_card: "x ÿþ ✓ 😀" } }),
    );
    const answer = await postRaw(fs.url, body, jsonHeaders());
    expect(answer.status).toBe(200);
    const opened = await fs.client("billing").decryptField({
      scope: { id: { case: "sessionId", value: "s-fine" } },
      field: "credit_card",
      sealed: answer.json.variables.__enc_credit_card,
    });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: "x ÿþ ✓ 😀" });
  });
});
