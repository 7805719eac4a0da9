import { create } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { MAX_VALUE_DEPTH } from "../../src/engine/value-codec.js";
import { bearer } from "../support/bearer.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-limits" } });

/** A list nested `depth` levels around the number 1 (depth 0 is the number itself). */
function nestedList(depth: number): Value {
  let value: Value = create(ValueSchema, { kind: { case: "numberValue", value: 1 } });
  for (let i = 0; i < depth; i++) {
    value = create(ValueSchema, { kind: { case: "listValue", value: { values: [value] } } });
  }
  return value;
}

async function failure(call: Promise<unknown>): Promise<{ code: Code; reason: string | null }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  return { code: ce.code, reason: ce.metadata.get("fieldseal-reason") };
}

describe("value limits every client can read back", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [{ name: "app", scopes: ["encrypt", "decrypt:*"] }],
    });
  });
  afterAll(async () => {
    await fs.close();
  });

  // Binary protobuf is where nesting bites: each JSON level is two messages, and runtimes stop at 100.
  const clients = () => [
    {
      name: "gRPC",
      client: createClient(
        FieldsealService,
        createGrpcTransport({ baseUrl: fs.url, interceptors: [bearer(fs.tokens.app)] }),
      ),
    },
    {
      name: "Connect binary over HTTP/1.1",
      client: createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: fs.url,
          httpVersion: "1.1",
          useBinaryFormat: true,
          interceptors: [bearer(fs.tokens.app)],
        }),
      ),
    },
  ];

  it("opens a value nested as deep as sealing allows, over binary protobuf", async () => {
    for (const { name, client } of clients()) {
      const sealed = await client.encryptFields({ scope, fields: { deep: nestedList(MAX_VALUE_DEPTH) } });
      const opened = await client.decryptField({ scope, field: "deep", sealed: sealed.sealed.deep ?? "" });
      expect(opened.value, name).toEqual(nestedList(MAX_VALUE_DEPTH));
    }
  });

  it("refuses one level more with INVALID_ARGUMENT, before sealing it", async () => {
    for (const { name, client } of clients()) {
      const refused = await failure(
        client.encryptFields({ scope, fields: { deep: nestedList(MAX_VALUE_DEPTH + 1) } }),
      );
      expect(refused, name).toEqual({ code: Code.InvalidArgument, reason: "invalid_argument" });
    }
  });

  it("refuses a number JSON cannot hold (NaN, Infinity) with INVALID_ARGUMENT, never INTERNAL", async () => {
    for (const { name, client } of clients()) {
      for (const n of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const refused = await failure(
          client.encryptFields({
            scope,
            fields: { amount: create(ValueSchema, { kind: { case: "numberValue", value: n } }) },
          }),
        );
        expect(refused, `${name} ${n}`).toEqual({ code: Code.InvalidArgument, reason: "invalid_argument" });
      }
      // A Value with no kind set is no JSON value either.
      const empty = await failure(client.encryptFields({ scope, fields: { amount: create(ValueSchema) } }));
      expect(empty, name).toEqual({ code: Code.InvalidArgument, reason: "invalid_argument" });
    }
  });

  it("answers 400 to a Connect JSON number too large for a double (1e400)", async () => {
    for (const number of ["1e400", "-1e400"]) {
      const res = await fetch(`${fs.url}/fieldseal.v1.FieldsealService/EncryptFields`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${fs.tokens.app}` },
        body: `{"scope":{"sessionId":"s"},"fields":{"amount":${number}}}`,
      });
      expect(res.status, number).toBe(400);
      expect(res.headers.get("fieldseal-reason")).toBe("invalid_argument");
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe("invalid_argument");
      expect(body.message).not.toContain("400");
    }
    const ok = await fetch(`${fs.url}/fieldseal.v1.FieldsealService/EncryptFields`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${fs.tokens.app}` },
      body: `{"scope":{"sessionId":"s"},"fields":{"amount":1e300}}`,
    });
    expect(ok.status).toBe(200);
  });
});
