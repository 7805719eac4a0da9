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
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
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
