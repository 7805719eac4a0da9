import type { JsonValue } from "@bufbuild/protobuf";
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type grpc, grpcJsClient, unary } from "../support/grpc-js.js";

const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const values = (fields: Record<string, JsonValue>) =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, fromJson(ValueSchema, v)]));

const FIELDS = {
  credit_card: { format: "card" },
  email: { format: "email" },
  phone: { format: "phone", last: 2 },
  ssn: { format: "national_id" },
  account: { format: "generic", first: 0, last: 4 },
};
/** A value that must never appear in an error, a log line, an audit event or a metric. */
const CANARY = "4000CANARY0000002";

let fs: TestFieldseal;
beforeAll(async () => {
  fs = await startTestFieldseal({ settings: { fields: FIELDS } });
});
afterAll(async () => {
  await fs.close();
});

async function sealedCount(): Promise<number> {
  const text = await (await fetch(`${fs.url}/metrics`)).text();
  const m = /^fieldseal_fields_sealed_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  return Number(m?.[1] ?? 0);
}

/** One EncryptFields call as a Connect client and as a native gRPC client (the server's fast path). */
const callers: Record<string, (fields: Record<string, JsonValue>, sessionId: string) => Promise<unknown>> = {
  Connect: (fields, sessionId) =>
    fs.client("bot").encryptFields({ scope: session(sessionId), fields: values(fields) }),
  gRPC: async (fields, sessionId) => {
    const client = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
    try {
      return await unary(
        client,
        FieldsealService.method.encryptFields,
        { scope: session(sessionId), fields: values(fields) },
        fs.tokens.bot,
      );
    } finally {
      client.close();
    }
  },
};

/** The code, reason and message of a refused call, whichever client made it. */
function refusal(err: unknown): { code: number; reason: string | undefined; message: string } {
  if (err instanceof ConnectError) {
    return {
      code: err.code,
      reason: err.metadata.get("fieldseal-reason") ?? undefined,
      message: err.rawMessage,
    };
  }
  const e = err as grpc.ServiceError;
  // grpc-js undoes grpc-message's percent-encoding with decodeURI, which leaves ":" and "," encoded.
  return {
    code: e.code,
    reason: e.metadata.get("fieldseal-reason")[0]?.toString(),
    message: decodeURIComponent(e.details),
  };
}

describe.each(Object.entries(callers))("EncryptFields with field formats, over %s", (name, call) => {
  it("returns a mask beside each sealed field that has a format, and none for the others", async () => {
    const res = (await call(
      {
        credit_card: "5555 5555 5555 4444",
        email: "jane.doe@example.com",
        phone: "+49 30 1234 5678",
        ssn: "123-45-6789",
        account: "DE89370400440532013000",
        note: "no format",
        attempts: 3,
      },
      `s-${name}`,
    )) as { sealed: Record<string, string>; masked: Record<string, unknown> };
    expect(Object.keys(res.sealed).sort()).toEqual(
      ["account", "attempts", "credit_card", "email", "note", "phone", "ssn"].sort(),
    );
    const masked = Object.fromEntries(
      Object.entries(res.masked).map(([k, v]) => {
        const { format, text, speakable } = v as { format: string; text: string; speakable: string };
        return [k, { format, text, speakable }];
      }),
    );
    expect(masked).toEqual({
      credit_card: {
        format: "card",
        text: "Mastercard •••• 4444",
        speakable: "Mastercard ending in 4 4 4 4",
      },
      email: { format: "email", text: "j••••@example.com", speakable: "starting with j at example dot com" },
      phone: { format: "phone", text: "•••• 78", speakable: "ending in 7 8" },
      ssn: { format: "national_id", text: "•••• 6789", speakable: "ending in 6 7 8 9" },
      account: { format: "generic", text: "••••3000", speakable: "ending in 3 0 0 0" },
    });
  });

  it("refuses a value that does not fit its format with INVALID_ARGUMENT, seals nothing, and never echoes it", async () => {
    const before = await sealedCount();
    const auditBefore = fs.audit.events.length;
    const logsBefore = fs.logs.length;
    let caught: unknown;
    try {
      // The bad card comes after a good field: all-or-nothing means the good one is not sealed either.
      await call({ note: "fine", credit_card: CANARY }, `s-bad-${name}`);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeDefined();
    const r = refusal(caught);
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.reason).toBe("field_format_invalid");
    expect(r.message).toBe(
      'field "credit_card" does not fit its format "card": it must be digits, optionally grouped by spaces or dashes',
    );
    expect(await sealedCount()).toBe(before);
    const newAudit = fs.audit.events.slice(auditBefore);
    expect(newAudit.some((e) => e.action === "encrypt" && e.outcome === "ok")).toBe(false);
    const seen = JSON.stringify([
      newAudit,
      fs.logs.slice(logsBefore),
      await (await fetch(`${fs.url}/metrics`)).text(),
    ]);
    expect(seen).not.toContain("CANARY");
  });

  it("refuses a Luhn failure and a non-string value for a formatted field the same way", async () => {
    for (const value of ["4111111111111112", 4111111111111111, { n: "4111111111111111" }] as JsonValue[]) {
      let caught: unknown;
      try {
        await call({ credit_card: value }, `s-luhn-${name}`);
      } catch (err) {
        caught = err;
      }
      const r = refusal(caught);
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.reason).toBe("field_format_invalid");
      expect(r.message).toMatch(
        /^field "credit_card" does not fit its format "card": it (fails the Luhn check|must be a string)/,
      );
      expect(r.message).not.toMatch(/411111/);
    }
  });
});

describe("a server without field formats", () => {
  it("seals as before and returns no masks", async () => {
    const plain = await startTestFieldseal();
    try {
      const res = await plain.client("bot").encryptFields({
        scope: session("s-plain"),
        fields: values({ credit_card: "not a card at all" }),
      });
      expect(res.sealed.credit_card).toMatch(/^fs1\./);
      expect(res.masked).toEqual({});
    } finally {
      await plain.close();
    }
  });

  it("takes the formats from FIELDSEAL_FIELD_FORMATS too", async () => {
    const viaEnv = await startTestFieldseal({
      env: { FIELDSEAL_FIELD_FORMATS: JSON.stringify({ card: { format: "card" } }) },
    });
    try {
      const res = await viaEnv.client("bot").encryptFields({
        scope: session("s-env"),
        fields: values({ card: "4111-1111-1111-1111" }),
      });
      expect(res.masked.card?.text).toBe("Visa •••• 1111");
    } finally {
      await viaEnv.close();
    }
  });
});

describe("formats per keyring", () => {
  it("uses the formats of the keyring a call names", async () => {
    const server = await startTestFieldseal({
      settings: {
        keyrings: ["eu"],
        fields: { account: { format: "generic", first: 0, last: 4 } },
        keyringFields: {
          eu: { account: { format: "generic", first: 2, last: 2 }, email: { format: "email" } },
        },
      },
    });
    try {
      const bot = server.client("bot");
      const fields = values({ account: "DE89370400440532013000", email: "jane@example.com" });
      const plain = await bot.encryptFields({ scope: session("s-k"), fields });
      expect(Object.fromEntries(Object.entries(plain.masked).map(([k, v]) => [k, v.text]))).toEqual({
        account: "••••3000",
      });
      const eu = await bot.encryptFields({ keyring: "eu", scope: session("s-k"), fields });
      expect(Object.fromEntries(Object.entries(eu.masked).map(([k, v]) => [k, v.text]))).toEqual({
        account: "DE••••00",
        email: "j••••@example.com",
      });
      const err = await bot
        .encryptFields({ keyring: "eu", scope: session("s-k"), fields: values({ email: "not an address" }) })
        .catch((e: unknown) => e);
      expect((err as ConnectError).metadata.get("fieldseal-reason")).toBe("field_format_invalid");
    } finally {
      await server.close();
    }
  });
});
