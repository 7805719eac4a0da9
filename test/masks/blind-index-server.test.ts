import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type grpc, grpcJsClient, unary } from "../support/grpc-js.js";

const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const values = (fields: Record<string, JsonValue>) =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, fromJson(ValueSchema, v)]));

let fs: TestFieldseal;
beforeAll(async () => {
  fs = await startTestFieldseal({
    principals: [
      { name: "admin", scopes: ["admin"] },
      { name: "bot", scopes: ["encrypt"] },
      { name: "indexing-bot", scopes: ["encrypt", "index:credit_card", "index:email"] },
      { name: "lookup", scopes: ["index:email"] },
      { name: "other-lookup", allow: [{ ops: ["index"], fields: ["email"], keyrings: ["other"] }] },
      { name: "field-ops", allow: [{ ops: ["*"], fields: ["email"] }] },
    ],
    settings: {
      keyrings: ["other"],
      fields: { credit_card: { format: "card" }, email: { format: "email" } },
    },
  });
});
afterAll(async () => {
  await fs.close();
});

interface IndexAnswer {
  indexes: string[];
  keyring: string;
  keyVersion: number;
}

/** ComputeIndex as a Connect client and as a native gRPC client (the server's fast path). */
const computeIndex: Record<
  string,
  (
    principal: string,
    req: { keyring?: string; field: string; value: string; allVersions?: boolean },
  ) => Promise<IndexAnswer>
> = {
  Connect: (principal, req) => fs.client(principal).computeIndex(req),
  gRPC: async (principal, req) => {
    const client = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
    try {
      return await unary(client, FieldsealService.method.computeIndex, req, fs.tokens[principal]);
    } finally {
      client.close();
    }
  },
};

function refusal(err: unknown): { code: number; reason: string | undefined } {
  if (err instanceof ConnectError)
    return { code: err.code, reason: err.metadata.get("fieldseal-reason") ?? undefined };
  const e = err as grpc.ServiceError;
  return { code: e.code, reason: e.metadata.get("fieldseal-reason")[0]?.toString() };
}

async function refused(call: Promise<unknown>) {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeDefined();
  return refusal(caught);
}

describe.each(Object.entries(computeIndex))("blind indexes over %s", (_name, compute) => {
  it("EncryptFields returns on request the index ComputeIndex gives for the same value written another way", async () => {
    const sealed = await fs.client("indexing-bot").encryptFields({
      scope: session("s-1"),
      fields: values({ credit_card: "4111 1111 1111 1111", email: "Jane@Example.com", note: "x" }),
      indexFields: ["credit_card", "email"],
    });
    expect(Object.keys(sealed.indexes).sort()).toEqual(["credit_card", "email"]);
    expect(sealed.indexes.credit_card).toMatch(/^fx1\.default\.\d+\.[A-Za-z0-9_-]{22}$/);
    const byAdmin = await compute("admin", { field: "credit_card", value: "4111-1111-1111-1111" });
    expect(byAdmin.indexes).toEqual([sealed.indexes.credit_card]);
    expect(byAdmin.keyVersion).toBe(sealed.keyVersion);
    const byLookup = await compute("lookup", { field: "email", value: "jane@example.COM " });
    expect(byLookup.indexes).toEqual([sealed.indexes.email]);
  });

  it("gives unrelated indexes for other fields and other keyrings", async () => {
    const a = await compute("admin", { field: "email", value: "jane@example.com" });
    const b = await compute("admin", { field: "email_backup", value: "jane@example.com" });
    const c = await compute("admin", { keyring: "other", field: "email", value: "jane@example.com" });
    const macs = [a, b, c].map((r) => r.indexes[0]?.split(".")[3]);
    expect(new Set(macs).size).toBe(3);
    expect(c.indexes[0]).toMatch(/^fx1\.other\./);
  });

  it("needs index:<field>: encrypt alone or another field's grant is refused and audited", async () => {
    const before = fs.audit.events.length;
    expect(await refused(compute("bot", { field: "email", value: "jane@example.com" }))).toEqual({
      code: Code.PermissionDenied,
      reason: "permission_denied",
    });
    expect(await refused(compute("lookup", { field: "credit_card", value: "4111111111111111" }))).toEqual({
      code: Code.PermissionDenied,
      reason: "permission_denied",
    });
    const denied = fs.audit.events
      .slice(before)
      .filter((e) => e.action === "index" && e.outcome === "denied");
    expect(denied.map((e) => [e.principal, e.field])).toEqual([
      ["bot", "email"],
      ["lookup", "credit_card"],
    ]);
    expect(JSON.stringify(fs.audit.events)).not.toContain("jane@example.com");
  });

  it("refuses a value that does not fit the field's format, and an empty one, with field_format_invalid", async () => {
    expect(await refused(compute("admin", { field: "credit_card", value: "4111111111111112" }))).toEqual({
      code: Code.InvalidArgument,
      reason: "field_format_invalid",
    });
    expect(await refused(compute("admin", { field: "free_text", value: "  " }))).toEqual({
      code: Code.InvalidArgument,
      reason: "field_format_invalid",
    });
    expect(await refused(compute("admin", { field: "", value: "x" }))).toEqual({
      code: Code.InvalidArgument,
      reason: "invalid_argument",
    });
  });
});

describe("blind indexes and rotation", () => {
  it("with all_versions, a lookup finds values indexed under an older version", async () => {
    await fs
      .client("admin")
      .rotateKey({ keyring: "other", create: true })
      .catch(() => undefined);
    const before = await fs.client("indexing-bot").encryptFields({
      keyring: "other",
      scope: session("s-rot"),
      fields: values({ email: "old@example.com" }),
      indexFields: ["email"],
    });
    await fs.client("admin").rotateKey({ keyring: "other" });
    const now = await fs
      .client("admin")
      .computeIndex({ keyring: "other", field: "email", value: "old@example.com" });
    expect(now.keyVersion).toBe(before.keyVersion + 1);
    expect(now.indexes).not.toContain(before.indexes.email);
    const all = await fs.client("admin").computeIndex({
      keyring: "other",
      field: "email",
      value: "old@example.com",
      allVersions: true,
    });
    expect(all.indexes[0]).toBe(now.indexes[0]);
    expect(all.indexes).toContain(before.indexes.email);
    expect(all.indexes.map((i) => Number(i.split(".")[2]))).toEqual(
      [...all.indexes.keys()].map((i) => now.keyVersion - i),
    );
  });
});

describe("who may index", () => {
  it("a keyring-limited grant indexes only there; an unknown keyring is refused alike (no existence oracle)", async () => {
    const ok = await fs
      .client("other-lookup")
      .computeIndex({ keyring: "other", field: "email", value: "a@example.com" });
    expect(ok.keyring).toBe("other");
    for (const keyring of ["default", "no-such-keyring"]) {
      const err = (await fs
        .client("other-lookup")
        .computeIndex({ keyring, field: "email", value: "a@example.com" })
        .catch((e: unknown) => e)) as ConnectError;
      expect([err.code, err.metadata.get("fieldseal-reason")]).toEqual([
        Code.PermissionDenied,
        "permission_denied",
      ]);
      expect(err.rawMessage).not.toContain("a@example.com");
    }
  });

  it('admin and an allow rule with ops ["*"] may index (each already may decrypt, which reveals more)', async () => {
    for (const principal of ["admin", "field-ops"]) {
      const r = await fs.client(principal).computeIndex({ field: "email", value: "a@example.com" });
      expect(r.indexes).toHaveLength(1);
    }
    expect(
      await refused(fs.client("field-ops").computeIndex({ field: "credit_card", value: "4111111111111111" })),
    ).toEqual({
      code: Code.PermissionDenied,
      reason: "permission_denied",
    });
  });

  it("matches field names exactly, as the envelope and the policy do: Credit_Card or credit_card + space is another field", async () => {
    for (const field of ["Credit_Card", "credit_card ", "credit\u2060_card"]) {
      // Another field: no card format (so not checked, not masked) and no grant from index:credit_card.
      const sealed = await fs
        .client("indexing-bot")
        .encryptFields({ scope: session("s-names"), fields: values({ [field]: "not a card" }) });
      expect(sealed.masked).toEqual({});
      expect(
        await refused(
          fs.client("indexing-bot").encryptFields({
            scope: session("s-names"),
            fields: values({ [field]: "4111111111111111" }),
            indexFields: [field],
          }),
        ),
      ).toEqual({ code: Code.PermissionDenied, reason: "permission_denied" });
      expect(
        await refused(fs.client("indexing-bot").computeIndex({ field, value: "4111111111111111" })),
      ).toEqual({
        code: Code.PermissionDenied,
        reason: "permission_denied",
      });
      // Its own index key: the same digits never give credit_card's index.
      const [mine, theirs] = await Promise.all([
        fs.client("admin").computeIndex({ field, value: "4111111111111111" }),
        fs.client("admin").computeIndex({ field: "credit_card", value: "4111111111111111" }),
      ]);
      expect(mine.indexes[0]?.split(".")[3]).not.toBe(theirs.indexes[0]?.split(".")[3]);
    }
  });
});

describe("EncryptFields index_fields", () => {
  it("needs index on each named field, and names only fields of the call", async () => {
    expect(
      await refused(
        fs.client("bot").encryptFields({
          scope: session("s-2"),
          fields: values({ email: "a@example.com" }),
          indexFields: ["email"],
        }),
      ),
    ).toEqual({ code: Code.PermissionDenied, reason: "permission_denied" });
    expect(
      await refused(
        fs.client("indexing-bot").encryptFields({
          scope: session("s-2"),
          fields: values({ email: "a@example.com" }),
          indexFields: ["email", "4000CANARY0000002"],
        }),
      ),
    ).toEqual({ code: Code.InvalidArgument, reason: "invalid_argument" });
    const err = await fs
      .client("admin")
      .encryptFields({
        scope: session("s-2"),
        fields: values({ email: "a@example.com" }),
        indexFields: ["4000CANARY0000002"],
      })
      .catch((e: unknown) => e);
    expect((err as ConnectError).rawMessage).toBe(
      "index_fields[0] (after removing repeats) names no field of fields",
    );
  });

  it("refuses to index a non-string value, sealing nothing", async () => {
    const before = fs.audit.events.length;
    expect(
      await refused(
        fs.client("admin").encryptFields({
          scope: session("s-3"),
          fields: values({ count: 3 }),
          indexFields: ["count"],
        }),
      ),
    ).toEqual({ code: Code.InvalidArgument, reason: "field_format_invalid" });
    expect(fs.audit.events.slice(before).some((e) => e.action === "encrypt" && e.outcome === "ok")).toBe(
      false,
    );
  });

  it("audits each index computed, without the value or the index", async () => {
    const before = fs.audit.events.length;
    const r = await fs.client("indexing-bot").encryptFields({
      scope: session("s-4"),
      fields: values({ email: "audit-me@example.com" }),
      indexFields: ["email"],
    });
    const events = fs.audit.events.slice(before);
    expect(events.map((e) => [e.action, e.outcome, e.fields])).toEqual([
      ["encrypt", "ok", ["email"]],
      ["index", "ok", ["email"]],
    ]);
    const text = JSON.stringify([events, fs.logs]);
    expect(text).not.toContain("audit-me");
    expect(text).not.toContain(r.indexes.email?.split(".")[3]);
  });
});

describe("ComputeIndex's audit", () => {
  it("records each lookup, answered or refused, with field and keyring but never the value or the index", async () => {
    const before = fs.audit.events.length;
    const logsBefore = fs.logs.length;
    const r = await fs.client("lookup").computeIndex({ field: "email", value: "look-me-up@example.com" });
    await fs
      .client("lookup")
      .computeIndex({ field: "email", value: "not-an-address-CANARY" })
      .catch(() => {});
    const events = fs.audit.events.slice(before);
    expect(events.map((e) => [e.action, e.outcome, e.code, e.field, e.keyring])).toEqual([
      ["index", "ok", undefined, "email", "default"],
      ["index", "error", "field_format_invalid", "email", "default"],
    ]);
    const text = JSON.stringify([events, fs.logs.slice(logsBefore)]);
    expect(text).not.toContain("look-me-up");
    expect(text).not.toContain("CANARY");
    expect(text).not.toContain(r.indexes[0]?.split(".")[3]);
  });
});

describe("ComputeIndex under concurrent rotation", () => {
  it("gives each caller an index under the version it names, reproducible afterwards with all_versions", async () => {
    await fs.client("admin").rotateKey({ keyring: "conc", create: true });
    const admin = fs.client("admin");
    const lookups = Array.from({ length: 40 }, (_, i) =>
      admin.computeIndex({ keyring: "conc", field: "email", value: `user${i % 4}@example.com` }),
    );
    const rotations = [admin.rotateKey({ keyring: "conc" }), admin.rotateKey({ keyring: "conc" })];
    const [answers] = await Promise.all([Promise.all(lookups), Promise.all(rotations)]);
    for (const [i, a] of answers.entries()) {
      expect(a.indexes).toHaveLength(1);
      expect(a.indexes[0]).toBe(`fx1.conc.${a.keyVersion}.${a.indexes[0]?.split(".")[3]}`);
      const all = await admin.computeIndex({
        keyring: "conc",
        field: "email",
        value: `user${i % 4}@example.com`,
        allVersions: true,
      });
      expect(all.indexes).toContain(a.indexes[0]);
    }
    const distinct = new Set(
      answers.filter((a) => a.keyVersion === answers[0]?.keyVersion).map((a) => a.indexes[0]),
    );
    expect(distinct.size).toBeLessThanOrEqual(4);
  });
});
