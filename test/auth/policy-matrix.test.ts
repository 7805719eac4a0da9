import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import type { SessionPusher } from "../../src/service/fieldseal-service.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const OPS = ["encrypt", "decrypt", "rewrap", "rotate", "retire", "describe", "push"] as const;
type Op = (typeof OPS)[number];
const FIELDS = ["credit_card", "national_id", "notes"] as const;
const KEYRINGS = ["default", "payments"] as const;
const session = create(ScopeSchema, { id: { case: "sessionId", value: "s-matrix" } });

/** The contract, written out by hand: who may do what, independent of how the code decides. */
const EXPECTED: Record<string, (op: Op, field: string, keyring: string) => boolean> = {
  // Shorthand scopes: admin may do everything.
  admin: () => true,
  // Shorthand scopes: decrypt one field; "rotate" has always meant rotate, retire and describe.
  billing: (op, field) =>
    (op === "decrypt" && field === "credit_card") || op === "rotate" || op === "retire" || op === "describe",
  // Explicit rule with a field list.
  bot: (op, field) => (op === "encrypt" || op === "push") && field !== "notes",
  // Explicit rules restricted to one keyring (push names no keyring, so it is never granted here).
  payments_ops: (op, _field, keyring) => keyring === "payments" && op !== "encrypt" && op !== "push",
  // The legacy permissions open and rewrap tutorial blobs only: nothing on fs1 values, no key operation.
  legacy_only: () => false,
};

const pushed: string[][] = [];
const pusher: SessionPusher = {
  async push(req) {
    pushed.push(Object.keys(req.context));
    return { attempts: 1, httpStatus: 200, deduplicated: false };
  },
};

let fs: TestFieldseal;
/** sealed[keyring][field], sealed by admin for the matrix session. */
const sealed: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  fs = await startTestFieldseal({
    principals: [
      { name: "admin", scopes: ["admin"] },
      { name: "billing", scopes: ["decrypt:credit_card", "rotate"] },
      { name: "bot", allow: [{ ops: ["encrypt", "push"], fields: ["credit_card", "national_id"] }] },
      {
        name: "payments_ops",
        allow: [
          { ops: ["decrypt", "rewrap"], fields: ["*"], keyrings: ["payments"] },
          { ops: ["rotate", "retire", "describe"], keyrings: ["payments"] },
        ],
      },
      { name: "legacy_only", scopes: ["legacy:decrypt", "legacy:rewrap"] },
    ],
    overrides: { pusher },
  });
  await fs.server.keyrings.ensure("payments");
  const admin = fs.client("admin");
  for (const keyring of KEYRINGS) {
    const r = await admin.encryptFields({
      scope: session,
      keyring,
      fields: Object.fromEntries(FIELDS.map((f) => [f, { kind: { case: "stringValue", value: `v-${f}` } }])),
    });
    sealed[keyring] = r.sealed;
  }
});
afterAll(async () => {
  await fs?.close();
});

function clientFor(principal: string, requestId: string) {
  const token = fs.tokens[principal] ?? "";
  return createClient(
    FieldsealService,
    createConnectTransport({
      baseUrl: fs.url,
      httpVersion: "1.1",
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          req.header.set("x-request-id", requestId);
          return next(req);
        },
      ],
    }),
  );
}

/** Performs `op` on one field in one keyring; resolves true when allowed, false on PERMISSION_DENIED. */
async function attempt(principal: string, op: Op, field: string, keyring: string, requestId: string) {
  const client = clientFor(principal, requestId);
  const value = sealed[keyring]?.[field] ?? "";
  try {
    switch (op) {
      case "encrypt":
        await client.encryptFields({
          scope: session,
          keyring,
          fields: { [field]: { kind: { case: "stringValue", value: "x" } } },
        });
        return true;
      case "decrypt":
        await client.decryptField({ scope: session, field, sealed: value });
        return true;
      case "rewrap": {
        const r = await client.rewrapFields({ scope: session, keyring, items: [{ field, sealed: value }] });
        const outcome = r.results[0]?.outcome;
        if (outcome?.case === "error") {
          expect(outcome.value.reason).toBe("permission_denied");
          return false;
        }
        return outcome?.case === "sealed";
      }
      case "rotate":
        await client.rotateKey({ keyring });
        return true;
      case "retire":
        await client.retireKeyVersions({ keyring, minDecryptVersion: 1 });
        return true;
      case "describe":
        await client.describeKey({ keyring });
        return true;
      case "push":
        await client.pushSession({
          sessionId: "s-matrix",
          context: { [field]: { kind: { case: "stringValue", value: value } } },
        });
        return true;
    }
  } catch (err) {
    if (ConnectError.from(err).code === Code.PermissionDenied) return false;
    throw err;
  }
}

const cases = Object.keys(EXPECTED).flatMap((principal) =>
  OPS.flatMap((op) =>
    KEYRINGS.flatMap((keyring) => FIELDS.map((field) => [principal, op, field, keyring] as const)),
  ),
);

describe("policy through the real server", () => {
  it.each(cases)("%s %s %s in %s", async (principal, op, field, keyring) => {
    const requestId = `m-${principal}-${op}-${field}-${keyring}`;
    const allowed = await attempt(principal, op, field, keyring, requestId);
    const want = EXPECTED[principal]?.(op, field, keyring);
    expect(allowed).toBe(want);
    const denials = fs.audit.events.filter((e) => e.requestId === requestId && e.outcome === "denied");
    if (want) {
      expect(denials).toEqual([]);
    } else {
      // Every denial is audited: who, what, and the code; never a value.
      expect(denials).toHaveLength(1);
      expect(denials[0]).toMatchObject({ principal, action: op, code: "permission_denied" });
      expect(JSON.stringify(denials[0])).not.toContain("v-");
    }
  });

  it("lists only the keyrings a principal may describe", async () => {
    const r = await clientFor("payments_ops", "list-1").listKeyrings({});
    expect(r.keyrings).toEqual(["payments"]);
    const all = await clientFor("admin", "list-2").listKeyrings({});
    expect([...all.keyrings].sort()).toEqual(["default", "payments"]);
  });

  it("refuses a batch when any one field is outside the grant", async () => {
    await expect(
      clientFor("bot", "batch-1").encryptFields({
        scope: session,
        fields: {
          credit_card: { kind: { case: "stringValue", value: "x" } },
          notes: { kind: { case: "stringValue", value: "y" } },
        },
      }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
  });

  it("audits refused authentication", async () => {
    const client = createClient(
      FieldsealService,
      createConnectTransport({
        baseUrl: fs.url,
        httpVersion: "1.1",
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", "Bearer fsk_unknown");
            req.header.set("x-request-id", "authn-1");
            return next(req);
          },
        ],
      }),
    );
    await expect(client.listKeyrings({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(fs.audit.events.filter((e) => e.requestId === "authn-1")).toEqual([
      expect.objectContaining({ action: "authenticate", outcome: "denied", code: "unauthenticated" }),
    ]);
  });
});
