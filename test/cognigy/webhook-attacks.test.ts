/**
 * Attacks on the webhook found in review, each kept as a test, through a real Fieldseal server and a real
 * Cognigy simulator: names Object.prototype lends every object, flagged names whose answer keys collide,
 * names and session ids the engine refuses, and a retry whose first answer the memory no longer holds.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { createWebhookHandler } from "../../src/cognigy/webhook.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { postRaw, type RawAnswer } from "./raw-http.js";

const CARD = "4111111111111111";

describe("webhook attacks", () => {
  let sim: CognigySimulator;
  let fs: TestFieldseal;

  beforeAll(async () => {
    sim = await startCognigySimulator();
    fs = await startTestFieldseal({
      principals: [
        { name: "bot", scopes: ["encrypt", "push"] },
        { name: "reader", allow: [{ ops: ["decrypt"] }] },
        { name: "ops", scopes: ["rotate"] },
        { name: "bot2", scopes: ["encrypt", "push"] },
      ],
      settings: {
        cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, pushEnabled: true, maxAttempts: 1 },
      },
    });
  });
  afterAll(async () => {
    await fs.close();
    await sim.close();
  });
  beforeEach(() => {
    sim.reset();
    fs.audit.events.length = 0;
  });

  const post = (body: unknown, sensitive: string, url = fs.url): Promise<RawAnswer> =>
    postRaw(url, Buffer.from(JSON.stringify(body)), {
      "content-type": "application/json",
      authorization: `Bearer ${fs.tokens.bot}`,
      "x-sensitive-metadata": sensitive,
    });

  async function opens(sessionId: string, field: string, sealed: string): Promise<unknown> {
    const opened = await fs.client("reader").decryptField({
      scope: create(ScopeSchema, { id: { case: "sessionId", value: sessionId } }),
      field,
      sealed,
    });
    return opened.value?.kind.value;
  }

  const sealsAudited = () => fs.audit.events.filter((e) => e.action === "encrypt" && e.outcome === "ok");

  describe("flagged names Object.prototype lends every object", () => {
    for (const name of ["constructor", "toString", "hasOwnProperty", "valueOf", "__defineGetter__"]) {
      it(`"${name}" absent is refused 200 flagged_field_missing, not a 500`, async () => {
        const a = await post(
          { sessionId: `proto-${name}`, userId: "u", variables: { other: CARD } },
          `field:${name}`,
        );
        expect(a.status).toBe(200);
        expect(a.headers["fieldseal-reason"]).toBe("flagged_field_missing");
        expect(a.json).toMatchObject({ status: "refused", reason: "flagged_field_missing", fields: [name] });
        expect(a.text).not.toContain(CARD);
        expect(sim.requests).toEqual([]);
      });
    }

    it('"constructor" present is sealed like any other name, from the form reader too', async () => {
      const a = await post(
        { sessionId: "proto-present", userId: "u", variables: { constructor: CARD } },
        "field:constructor",
      );
      expect(a.status).toBe(200);
      expect(a.json.variables.constructor).toBeNull();
      expect(await opens("proto-present", "constructor", a.json.variables.__enc_constructor)).toBe(CARD);

      const form = await postRaw(
        fs.url,
        Buffer.from(`sessionId=proto-form&userId=u&variables[toString]=${CARD}`),
        {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Bearer ${fs.tokens.bot}`,
          "x-sensitive-metadata": "field:toString",
        },
      );
      expect(form.status).toBe(200);
      expect(await opens("proto-form", "toString", form.json.variables.__enc_toString)).toBe(CARD);
    });
  });

  describe("flagged names whose answer keys collide", () => {
    // Flagging `card` and `__enc_card` wrote `__enc_card: null` (the second field's plaintext cleared) over
    // the envelope of the first: a flow storing that answer lost the card for good.
    for (const [fields, variables] of [
      [["card", "__enc_card"], { card: CARD, __enc_card: "x" }],
      [["__enc_card", "card"], { card: CARD, __enc_card: "x" }],
      [["card", "__mask_card"], { card: CARD, __mask_card: "x" }],
    ] as const) {
      it(`refuses ${fields.join(" + ")} with 400 field_name_collision and seals nothing`, async () => {
        const a = await post(
          { sessionId: "collide", userId: "u", variables },
          fields.map((f) => `field:${f}`).join(","),
        );
        expect(a.status).toBe(400);
        expect(a.json).toMatchObject({ code: "invalid_argument", reason: "field_name_collision" });
        expect(a.headers["fieldseal-reason"]).toBe(a.json.code);
        expect(a.text).not.toContain(CARD);
        expect(sealsAudited()).toEqual([]);
        expect(sim.requests).toEqual([]);
      });
    }

    it("still seals a lone field whose name starts with __enc_", async () => {
      const a = await post(
        { sessionId: "enc-name", userId: "u", variables: { __enc_card: CARD } },
        "field:__enc_card",
      );
      expect(a.status).toBe(200);
      expect(await opens("enc-name", "__enc_card", a.json.variables.__enc___enc_card)).toBe(CARD);
    });
  });

  describe("names and session ids the engine refuses are the flow author's to fix: 400, not 200 refused", () => {
    it("a flagged field name over 256 bytes", async () => {
      const name = "f".repeat(257);
      const a = await post(
        { sessionId: "long-name", userId: "u", variables: { [name]: CARD } },
        `field:${name}`,
      );
      expect(a.status).toBe(400);
      expect(a.json).toMatchObject({ code: "invalid_argument", reason: "field_name_invalid" });
      expect(a.text).not.toContain(CARD);
      expect(sealsAudited()).toEqual([]);
    });

    it("a flagged field name with a NUL (from the body's sensitive list)", async () => {
      const a = await post(
        { sessionId: "nul-name", userId: "u", variables: { "a\u0000b": CARD }, sensitive: ["a\u0000b"] },
        "",
      );
      expect(a.status).toBe(400);
      expect(a.json.reason).toBe("field_name_invalid");
    });

    it("more flagged fields than one call seals (1,001), instead of 200 refused too_large", async () => {
      const names = Array.from({ length: 1001 }, (_, i) => `f${i}`);
      const variables = Object.fromEntries(names.map((n) => [n, "1"]));
      const a = await post({ sessionId: "too-many", userId: "u", variables, sensitive: names }, "");
      expect(a.status).toBe(400);
      expect(a.json).toMatchObject({ code: "invalid_argument", reason: "too_many_fields" });
      expect(sealsAudited()).toEqual([]);
      const most = await post(
        { sessionId: "most", userId: "u", variables, sensitive: names.slice(0, 1000) },
        "",
      );
      // Sealed; the push of 1,000 envelopes is over Cognigy's 60 kB and is not sent.
      expect(most.json).toMatchObject({ status: "sealed_not_pushed", reason: "too_large" });
      expect(typeof most.json.variables.__enc_f999).toBe("string");
    });

    it("a session id over 256 bytes", async () => {
      const a = await post(
        { sessionId: "s".repeat(257), userId: "u", variables: { card: CARD } },
        "field:card",
      );
      expect(a.status).toBe(400);
      expect(a.json).toMatchObject({ code: "invalid_argument", reason: "session_id_invalid" });
      expect(sealsAudited()).toEqual([]);
    });
  });

  it("any flagged names, present or not: never a 5xx, and a sealed answer holds an envelope for every one", async () => {
    const hostile = fc.constantFrom(
      "card",
      "__enc_card",
      "__mask_card",
      "__enc___enc_card",
      "constructor",
      "toString",
      "__lookupGetter__",
      "isPrototypeOf",
      "propertyIsEnumerable",
      "toLocaleString",
      "x".repeat(256),
      "x".repeat(257),
      "é".repeat(129),
      "a.b",
      "a[b]",
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(hostile, { minLength: 1, maxLength: 4 }),
        fc.dictionary(hostile, fc.constantFrom(CARD, "", null, 7), { maxKeys: 5 }),
        async (flagged, variables) => {
          run += 1;
          const sessionId = `prop-${run}`;
          const a = await post({ sessionId, userId: "u", variables, sensitive: flagged }, "");
          expect([200, 400]).toContain(a.status);
          expect(a.text).not.toContain(CARD);
          if (a.status === 200 && a.json.status === "sealed") {
            for (const f of flagged) {
              expect(typeof a.json.variables[`__enc_${f}`]).toBe("string");
              expect(a.json.variables[f]).toBeNull();
              expect(await opens(sessionId, f, a.json.variables[`__enc_${f}`])).toEqual(variables[f]);
            }
          } else if (a.status === 200) {
            expect(a.json).toMatchObject({ status: "refused", reason: "flagged_field_missing" });
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("one token spelt Bearer, ApiKey or X-API-Key is one caller; another principal's token never gets its answer", async () => {
    const body = Buffer.from(
      JSON.stringify({ sessionId: "spellings", userId: "u", variables: { card: CARD } }),
    );
    const as = (auth: Record<string, string>) =>
      postRaw(fs.url, body, {
        "content-type": "application/json",
        "x-sensitive-metadata": "field:card",
        ...auth,
      });
    const bearer = await as({ authorization: `Bearer ${fs.tokens.bot}` });
    const apiKey = await as({ authorization: `ApiKey ${fs.tokens.bot}` });
    const xApiKey = await as({ "x-api-key": fs.tokens.bot ?? "" });
    const other = await as({ authorization: `Bearer ${fs.tokens.bot2}` });
    const unknown = await as({ authorization: `Bearer ${"x".repeat(43)}` });
    expect(apiKey.json.variables).toEqual(bearer.json.variables);
    expect(xApiKey.json.variables).toEqual(bearer.json.variables);
    expect(other.status).toBe(200);
    expect(other.json.variables.__enc_card).not.toBe(bearer.json.variables.__enc_card);
    expect(unknown.status).toBe(401);
    expect(unknown.text).not.toContain("fs1.");
    for (const a of [bearer, apiKey, xApiKey, other, unknown]) {
      expect(a.text).not.toContain(CARD);
      expect(a.text).not.toContain(fs.tokens.bot);
    }
  });

  it("a retry racing a key rotation is answered with the first values, which still open", async () => {
    const body = { sessionId: "rotation-race", userId: "u", variables: { card: CARD } };
    const first = await post(body, "field:card");
    const [rotated, retry] = await Promise.all([fs.client("ops").rotateKey({}), post(body, "field:card")]);
    const after = await post(body, "field:card");
    expect(rotated.key?.primaryVersion).toBeGreaterThan(first.json.keyVersion);
    for (const again of [retry, after]) {
      expect(again.json.keyVersion).toBe(first.json.keyVersion);
      expect(again.json.variables).toEqual(first.json.variables);
    }
    expect(await opens("rotation-race", "card", after.json.variables.__enc_card)).toBe(CARD);
    // One push for the three copies, and the session holds what every answer says.
    expect(sim.requests.filter((r) => r.path.includes("/sessions/rotation-race/"))).toHaveLength(1);
    expect((sim.contexts.get("rotation-race") as { __enc_card: string }).__enc_card).toBe(
      first.json.variables.__enc_card,
    );
  });

  describe("multipart bodies a careless or hostile sender writes: 400 with a reason, nothing sealed", () => {
    const B = "----attackBoundary";
    const part = (name: string, value: string, headers: string[] = []) =>
      `--${B}\r\nContent-Disposition: form-data; name="${name}"\r\n${headers.map((h) => `${h}\r\n`).join("")}\r\n${value}\r\n`;
    const good = (sessionId: string) => part("sessionId", sessionId) + part("variables[card]", CARD);
    const cases: Array<[string, string, string, string?]> = [
      ["LF line ends only", good("lf").replaceAll("\r\n", "\n") + `--${B}--\n`, "multipart_malformed"],
      ["a byte order mark before the first delimiter", `\uFEFF${good("bom")}--${B}--`, "multipart_malformed"],
      [
        "a nested multipart part",
        `${good("nested")}${part("x", "y", [`Content-Type: multipart/mixed; boundary=inner`])}--${B}--`,
        "multipart_malformed",
      ],
      [
        "a base64 part",
        `${part("sessionId", "b64")}${part("variables[card]", Buffer.from(CARD).toString("base64"), ["Content-Transfer-Encoding: base64"])}--${B}--`,
        "multipart_malformed",
      ],
      [
        "part headers over 1 KiB",
        `${part("sessionId", "big", [`Content-Type: text/plain; x=${"a".repeat(1100)}`])}--${B}--`,
        "part_header_too_large",
      ],
      [
        "65 parts",
        `${good("many")}${Array.from({ length: 63 }, (_, i) => part(`p${i}`, "v")).join("")}--${B}--`,
        "too_many_parts",
      ],
      ["sessionId twice", `${good("dup")}${part("sessionId", "other")}--${B}--`, "duplicate_name"],
      [
        "a variable twice",
        `${good("dupvar")}${part("variables[card]", "4000000000000002")}--${B}--`,
        "duplicate_name",
      ],
      ["an empty name", `${good("empty")}${part("", "v")}--${B}--`, "multipart_malformed"],
      [
        "a file part",
        `${good("file")}--${B}\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx\r\n--${B}--`,
        "file_part",
      ],
      [
        "a part value that is not UTF-8",
        `${good("latin1")}${part("variables[x]", "\u00ff")}--${B}--`,
        "invalid_utf8",
        "latin1",
      ],
      ["no close delimiter", good("open"), "multipart_unterminated"],
      ["text after the close delimiter", `${good("epilogue")}--${B}--\r\nsessionId=x`, "multipart_malformed"],
    ];
    for (const [what, text, reason, encoding] of cases) {
      it(what, async () => {
        const a = await postRaw(fs.url, Buffer.from(text, encoding === "latin1" ? "latin1" : "utf8"), {
          "content-type": `multipart/form-data; boundary=${B}`,
          authorization: `Bearer ${fs.tokens.bot}`,
          "x-sensitive-metadata": "field:card",
        });
        expect(a.status).toBe(400);
        expect(a.json).toMatchObject({ code: "invalid_argument", reason });
        expect(a.headers["fieldseal-reason"]).toBe("invalid_argument");
        expect(a.text).not.toContain(CARD);
        expect(sealsAudited()).toEqual([]);
      });
    }

    it("a quoted boundary of 70 characters with spaces, and padding after delimiters, is read", async () => {
      const long = `a b${"x".repeat(67)}`;
      const body = `--${long} \t\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\nquoted\r\n--${long}\r\nContent-Disposition: form-data; name="variables[card]"\r\n\r\n${CARD}\r\n--${long}--\r\n`;
      const a = await postRaw(fs.url, Buffer.from(body), {
        "content-type": `multipart/form-data; boundary="${long}"`,
        authorization: `Bearer ${fs.tokens.bot}`,
        "x-sensitive-metadata": "field:card",
      });
      expect(a.status).toBe(200);
      expect(await opens("quoted", "card", a.json.variables.__enc_card)).toBe(CARD);
    });
  });

  describe("a retry whose first answer the memory no longer holds", () => {
    let server: Server;
    let url: string;

    beforeAll(async () => {
      // The server's own RPCs over a real socket, and a webhook whose memory holds one answer, so that a
      // second request evicts the first (as a flood of distinct bodies would at the real bounds).
      const client = createClient(
        FieldsealService,
        createConnectTransport({ baseUrl: fs.url, httpVersion: "1.1" }),
      );
      const handler = createWebhookHandler({ client, pushEnabled: true, answerMemory: { maxEntries: 1 } });
      server = createServer((req, res) => handler(req, res));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const shared = createWebhookHandler({ client, pushEnabled: true, answerMemory: { maxEntries: 4 } });
      sharedServer = createServer((req, res) => shared(req, res));
      await new Promise<void>((resolve) => sharedServer.listen(0, "127.0.0.1", resolve));
      sharedUrl = `http://127.0.0.1:${(sharedServer.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => sharedServer.close(() => resolve()));
    });
    let sharedServer: Server;
    let sharedUrl: string;

    it("another caller flooding the memory with distinct requests does not evict this caller's answer", async () => {
      const body = { sessionId: "flooded", userId: "u", variables: { card: CARD } };
      const first = await post(body, "field:card", sharedUrl);
      for (let i = 0; i < 12; i++) {
        const flood = await postRaw(
          sharedUrl,
          Buffer.from(JSON.stringify({ ...body, sessionId: `flood-${i}` })),
          {
            "content-type": "application/json",
            authorization: `Bearer ${fs.tokens.bot2}`,
            "x-sensitive-metadata": "field:card",
          },
        );
        expect(flood.status).toBe(200);
      }
      const retry = await post(body, "field:card", sharedUrl);
      expect(retry.json).toMatchObject({ status: "sealed", pushed: { deduplicated: true } });
      expect(retry.json.variables).toEqual(first.json.variables);
      expect(sim.requests.filter((r) => r.path.includes("/sessions/flooded/"))).toHaveLength(1);
    });

    it("is pushed at most once: the session keeps the first values, the retry says it was not pushed", async () => {
      const body = { sessionId: "evicted", userId: "u", variables: { card: CARD } };
      const first = await post(body, "field:card", url);
      expect(first.json).toMatchObject({ status: "sealed", pushed: { deduplicated: false } });
      await post({ ...body, sessionId: "evictor" }, "field:card", url);

      const retry = await post(body, "field:card", url);
      expect(retry.status).toBe(200);
      // Sealed afresh (a new nonce), so not the first answer's values; the push under the same key is refused
      // by the push client's memory, which binds the key to the first values.
      expect(retry.json.variables.__enc_card).not.toBe(first.json.variables.__enc_card);
      expect(retry.json).toMatchObject({
        status: "sealed_not_pushed",
        reason: "already_pushed",
        pushed: null,
      });
      expect(retry.headers["fieldseal-reason"]).toBe("already_pushed");
      expect(retry.text).not.toContain(CARD);
      expect(sim.requests.filter((r) => r.path.includes("/sessions/evicted/"))).toHaveLength(1);
      const held = sim.contexts.get("evicted") as { __enc_card: string };
      expect(held.__enc_card).toBe(first.json.variables.__enc_card);
      // Either copy opens to the card: the flow may store the retry's values or keep the session's.
      expect(await opens("evicted", "card", held.__enc_card)).toBe(CARD);
      expect(await opens("evicted", "card", retry.json.variables.__enc_card)).toBe(CARD);
    });
  });
});
