/**
 * Malformed, altered and misdirected fs1s values through every protocol the server speaks (Connect over
 * HTTP/1.1 and HTTP/2, gRPC, gRPC-Web): each answers a specific code and `fieldseal-reason`, never INTERNAL
 * or UNKNOWN, and never quotes the value. And the least-privileged principals around erasure.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const PRINCIPALS = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
  { name: "dpo", scopes: ["forget"] },
  { name: "card-reader", scopes: ["decrypt:card"] },
  // Every operation on another keyring: no forget here.
  { name: "other-keyring", allow: [{ ops: ["*"], keyrings: ["plain"] }] },
  // Every operation on one field: forget erases every field of a scope, so it is not among them.
  { name: "card-everything", allow: [{ ops: ["*"], fields: ["card"] }] },
];
const scopeOf = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

let fs: TestFieldseal;
beforeAll(async () => {
  fs = await startTestFieldseal({
    principals: PRINCIPALS,
    settings: {
      keyrings: ["crm", "plain"],
      scopes: { erasableKeyrings: ["crm"], cacheTtlMs: 50 },
    },
  });
});
afterAll(async () => {
  await fs?.close();
});

const bearer = (token: string | undefined): Interceptor[] => [
  (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  },
];
const transports: Record<string, (token?: string) => Transport> = {
  "Connect over HTTP/1.1": (t) =>
    createConnectTransport({ baseUrl: fs.url, httpVersion: "1.1", interceptors: bearer(t) }),
  "Connect over HTTP/2": (t) =>
    createConnectTransport({ baseUrl: fs.url, httpVersion: "2", interceptors: bearer(t) }),
  gRPC: (t) => createGrpcTransport({ baseUrl: fs.url, interceptors: bearer(t) }),
  "gRPC-Web": (t) => createGrpcWebTransport({ baseUrl: fs.url, httpVersion: "1.1", interceptors: bearer(t) }),
};

async function reasonOf(call: Promise<unknown>): Promise<{ code: Code; reason: string; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  return { code: ce.code, reason: ce.metadata.get("fieldseal-reason") ?? "", message: ce.rawMessage };
}

describe.each(Object.entries(transports))("fs1s values over %s", (_name, transport) => {
  const client = (principal: string) => createClient(FieldsealService, transport(fs.tokens[principal]));

  it("answers every bad fs1s value with a specific reason, never INTERNAL", async () => {
    const id = `s-${randomUUID()}`;
    const sealed = (
      await client("bot").encryptFields({
        keyring: "crm",
        scope: scopeOf(id),
        fields: { card: text("4111111111111111") },
      })
    ).sealed.card as string;
    const forgottenId = `f-${randomUUID()}`;
    const forgotten = (
      await client("bot").encryptFields({
        keyring: "crm",
        scope: scopeOf(forgottenId),
        fields: { card: text("x") },
      })
    ).sealed.card as string;
    await client("admin").forgetScope({ keyring: "crm", scope: scopeOf(forgottenId) });
    const [, , version, generation, payload] = sealed.split(".") as [string, string, string, string, string];
    const cases: Array<[string, string, string]> = [
      // [scope id, sealed text, expected reason]
      [id, `fs1s.crm.${version}.${generation}`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.0.${payload}`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.4294967296.${payload}`, "envelope_malformed"],
      [id, `fs1s.crm.0${version}.${generation}.${payload}`, "envelope_malformed"],
      [id, `fs1s.CRM.${version}.${generation}.${payload}`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.${generation}.${payload}=`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.${generation}.${payload.slice(0, 30)}`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.${generation}.${payload}\u0000`, "envelope_malformed"],
      [id, `fs1s.crm.${version}.${generation}.${payload.slice(0, -2)}AA`, "envelope_tampered"],
      [id, `fs1s.crm.${version}.7.${payload}`, "envelope_tampered"],
      [id, `fs1s.crm.999.${generation}.${payload}`, "key_version_not_found"],
      [id, `fs1s.nokeyring.${version}.${generation}.${payload}`, "keyring_not_found"],
      // An fs1s value of an erasable keyring's scope passed off in a keyring that is not erasable.
      [id, `fs1s.plain.1.${generation}.${payload}`, "envelope_tampered"],
      // Moved to another scope: that scope has no data key at all.
      [`other-${randomUUID()}`, sealed, "envelope_tampered"],
      [forgottenId, forgotten, "scope_forgotten"],
      // The same text as a plain fs1 value: the tags differ, so it cannot pass as one.
      [id, sealed.replace(/^fs1s\./, "fs1."), "envelope_malformed"],
    ];
    for (const [scopeId, value, expected] of cases) {
      const got = await reasonOf(
        client("reader").decryptField({ scope: scopeOf(scopeId), field: "card", sealed: value }),
      );
      expect(got.code, value).not.toBe(Code.Internal);
      expect(got.code, value).not.toBe(Code.Unknown);
      expect(got.reason, value).toBe(expected);
      expect(got.message).not.toContain("4111");
      expect(got.message).not.toContain(payload);
    }
  });

  it("keeps the least-privileged principals to their own operation", async () => {
    const scope = scopeOf(`lp-${randomUUID()}`);
    const sealed = (await client("bot").encryptFields({ keyring: "crm", scope, fields: { card: text("v") } }))
      .sealed.card as string;
    // forget: may forget (and describe), not open, seal or destroy.
    for (const call of [
      () => client("dpo").decryptField({ scope, field: "card", sealed }),
      () => client("dpo").encryptFields({ keyring: "crm", scope, fields: { card: text("v") } }),
      () => client("dpo").destroyKeyVersions({ keyring: "crm", belowVersion: 2 }),
    ]) {
      expect(await reasonOf(call())).toMatchObject({ code: Code.PermissionDenied });
    }
    // Opening a field, or everything on another keyring, is no permission to forget.
    for (const who of ["card-reader", "other-keyring", "card-everything", "bot", "reader"]) {
      expect(await reasonOf(client(who).forgetScope({ keyring: "crm", scope })), who).toMatchObject({
        code: Code.PermissionDenied,
      });
    }
    expect(
      (await client("card-reader").decryptField({ scope, field: "card", sealed })).value?.kind.value,
    ).toBe("v");
    expect((await client("dpo").forgetScope({ keyring: "crm", scope })).generation).toBe(1);
    expect(
      await reasonOf(client("card-reader").decryptField({ scope, field: "card", sealed })),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "scope_forgotten",
    });
  });
});
