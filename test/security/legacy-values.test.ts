/**
 * Legacy tutorial blobs are unbound: the field they claim (`original_field`) sits outside the GCM tag, so
 * anyone can relabel one. These tests are the attacks of issue 12 (item 1) against real servers on loopback:
 * opening or rewrapping a legacy blob takes its own permission, never `decrypt:<field>` nor `rewrap`.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { startTestFieldseal, type TestFieldseal, type TestPrincipalConfig } from "../support/fieldseal.js";
import { relabel, tutorialKeyring, tutorialSeal } from "../support/tutorial-blob.js";

const KEYRING = "cognigy";
const SSN = "078-05-1120";
const CARD = "4111111111111111";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-legacy" } });

const PRINCIPALS: TestPrincipalConfig[] = [
  { name: "admin", scopes: ["admin"] },
  { name: "billing", scopes: ["decrypt:credit_card"] },
  { name: "reader", scopes: ["decrypt:*"] },
  { name: "ops", scopes: ["rotate", "rewrap"] },
  { name: "bot", scopes: ["encrypt"] },
  // "*" limited to a field list covers every operation except the legacy ones.
  { name: "wildcard", allow: [{ ops: ["*"], fields: ["credit_card"] }] },
  { name: "legacy_reader", scopes: ["legacy:decrypt"] },
  { name: "other_ring", allow: [{ ops: ["legacy_decrypt"], keyrings: ["payments"] }] },
  { name: "legacy_rewrap_only", scopes: ["legacy:rewrap"] },
  { name: "migrator", allow: [{ ops: ["rewrap"] }, { ops: ["legacy_rewrap"], keyrings: [KEYRING] }] },
  // Legacy rewrap everywhere, but new seals only for credit_card, or only in another keyring.
  {
    name: "card_migrator",
    allow: [{ ops: ["rewrap"], fields: ["credit_card"] }, { ops: ["legacy_rewrap"] }],
  },
  {
    name: "payments_migrator",
    allow: [{ ops: ["rewrap"], keyrings: ["payments"] }, { ops: ["legacy_rewrap"] }],
  },
];

let dir: string;
let fs: TestFieldseal;
let off: TestFieldseal;
const key = randomBytes(32);
const ssnBlob = tutorialSeal(key, "v1", "ssn", SSN);
/** The SSN blob claiming to be a card number: made without any key. */
const relabelled = relabel(ssnBlob, "credit_card");
const cardBlob = tutorialSeal(key, "v1", "credit_card", CARD);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-legacy-"));
  const seed = new LocalFileKeyStore(dir);
  expect((await seed.compareAndSwap(0, tutorialKeyring(KEYRING, key, "v1"))).ok).toBe(true);
  await seed.close();
  fs = await startTestFieldseal({
    principals: PRINCIPALS,
    store: new LocalFileKeyStore(dir),
    // "payments": a second keyring an operator created, the target of a rewrap by name.
    settings: { legacyKeyring: KEYRING, defaultKeyring: KEYRING, keyrings: ["payments"] },
  });
  off = await startTestFieldseal({
    principals: PRINCIPALS,
    store: new LocalFileKeyStore(dir),
    settings: { legacyKeyring: KEYRING, defaultKeyring: KEYRING, legacyEnabled: false },
  });
});

afterAll(async () => {
  await fs?.close();
  await off?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (err === undefined) throw new Error("the call succeeded; it should have been refused");
  return err;
}

describe("a relabelled legacy blob", () => {
  it("is refused to a principal allowed only decrypt:credit_card (PERMISSION_DENIED, audited as legacy)", async () => {
    const before = fs.audit.events.length;
    const err = await refusal(
      fs.client("billing").decryptField({ scope, field: "credit_card", sealed: relabelled }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.metadata.get("fieldseal-reason")).toBe("permission_denied");
    expect(err.rawMessage).not.toContain(SSN);
    expect(fs.audit.events.slice(before)).toEqual([
      expect.objectContaining({
        action: "decrypt",
        principal: "billing",
        outcome: "denied",
        field: "credit_card",
        keyring: KEYRING,
        legacy: true,
        fieldLabel: "unauthenticated",
      }),
    ]);
  });

  it("is refused to decrypt:*, to a field-limited '*' rule and in batches: only the legacy permission opens it", async () => {
    for (const principal of ["billing", "reader", "wildcard"]) {
      const err = await refusal(
        fs.client(principal).decryptField({ scope, field: "credit_card", sealed: cardBlob }),
      );
      expect(err.code, principal).toBe(Code.PermissionDenied);
      const batch = await fs.client(principal).decryptFields({
        scope,
        items: [{ field: "credit_card", sealed: relabelled }],
      });
      expect(batch.results[0]?.outcome, principal).toMatchObject({
        case: "error",
        value: { reason: "permission_denied" },
      });
    }
  });

  it("cannot be turned into an fs1 credit_card value by a rewrap-only principal", async () => {
    const before = fs.audit.events.length;
    const r = await fs.client("ops").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: relabelled }],
    });
    expect(r.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { code: "permission_denied", reason: "permission_denied" },
    });
    expect(fs.audit.events.slice(before)).toEqual([
      expect.objectContaining({
        action: "rewrap",
        principal: "ops",
        outcome: "denied",
        legacy: true,
        fieldLabel: "unauthenticated",
      }),
    ]);
    // Nor by a principal holding legacy:rewrap without rewrap: it may not write new seals.
    const err = await refusal(
      fs.client("legacy_rewrap_only").rewrapFields({
        scope,
        items: [{ field: "credit_card", sealed: relabelled }],
      }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
  });
});

describe("a malformed value", () => {
  it("is INVALID_ARGUMENT for anyone, not a question of the legacy permission", async () => {
    const notJson = Buffer.from("not json").toString("base64");
    for (const sealed of ["not a sealed value", notJson, relabelled.slice(0, 40)]) {
      const err = await refusal(fs.client("billing").decryptField({ scope, field: "credit_card", sealed }));
      expect(err.code, sealed).toBe(Code.InvalidArgument);
      expect(err.metadata.get("fieldseal-reason"), sealed).toBe("envelope_malformed");
    }
  });
});

describe("variants of a blob's text", () => {
  /** The card blob's JSON text, edited, in base64 as the tutorial writes it. */
  const json = JSON.stringify(JSON.parse(Buffer.from(cardBlob, "base64").toString("utf8")));
  const variant = (edit: (text: string) => string) => Buffer.from(edit(json)).toString("base64");
  const edited = (edit: (blob: Record<string, unknown>) => unknown) =>
    variant((text) => JSON.stringify(edit(JSON.parse(text))));
  /** A card blob whose standard base64 holds "+" or "/" (JSON text rarely does), so URL-safe differs. */
  const withSymbols =
    ["~~~??", "x~~~??", "xx~~~??"]
      .map((note) => edited((b) => ({ ...b, note })))
      .find((text) => /[+/]/.test(text)) ?? "";
  // What a field grant and the legacy permission get: never a value for the first, and never INTERNAL. A
  // malformed value is a plain decrypt, which legacy:decrypt alone does not cover.
  const CASES: Array<
    [string, string, "malformed" | "legacy", "denied" | "opens" | "not_found" | "tampered"]
  > = [
    ["URL-safe alphabet", withSymbols.replaceAll("+", "-").replaceAll("/", "_"), "malformed", "denied"],
    ["MIME line breaks", cardBlob.replace(/(.{76})/g, "$1\n"), "malformed", "denied"],
    ["surrounding spaces", ` ${cardBlob} `, "malformed", "denied"],
    ["an fs1 prefix", `fs1.${cardBlob}`, "malformed", "denied"],
    ["no padding", cardBlob.replace(/=+$/, ""), "legacy", "opens"],
    ["extra keys", edited((b) => ({ ...b, note: "x", original_field_2: "ssn" })), "legacy", "opens"],
    [
      "a duplicate original_field (the last wins, as in Python)",
      variant((t) =>
        t.replace('"original_field":"credit_card"', '"original_field":"ssn","original_field":"credit_card"'),
      ),
      "legacy",
      "opens",
    ],
    [
      "a duplicate original_field naming another field last",
      variant((t) =>
        t.replace('"original_field":"credit_card"', '"original_field":"credit_card","original_field":"ssn"'),
      ),
      "legacy",
      "tampered",
    ],
    ["original_field missing", edited(({ original_field: _, ...b }) => b), "malformed", "denied"],
    ["a JSON array", edited((b) => [b]), "malformed", "denied"],
    [
      "a numeric key_version naming no label",
      edited((b) => ({ ...b, key_version: 1 })),
      "legacy",
      "not_found",
    ],
  ];
  const WANT = {
    malformed: { code: Code.InvalidArgument, reason: "envelope_malformed" },
    legacy: { code: Code.PermissionDenied, reason: "permission_denied" },
    denied: { code: Code.PermissionDenied, reason: "permission_denied" },
    not_found: { code: Code.NotFound, reason: "key_version_not_found" },
    tampered: { code: Code.InvalidArgument, reason: "envelope_tampered" },
  } as const;

  it.each(CASES)(
    "%s: a field grant never opens it; the legacy permission opens only a well-formed blob",
    async (_name, sealed, forField, forLegacy) => {
      for (const principal of ["billing", "reader", "wildcard"]) {
        const err = await refusal(fs.client(principal).decryptField({ scope, field: "credit_card", sealed }));
        expect([err.code, err.metadata.get("fieldseal-reason")], principal).toEqual([
          WANT[forField].code,
          WANT[forField].reason,
        ]);
        const batch = await fs
          .client(principal)
          .decryptFields({ scope, items: [{ field: "credit_card", sealed }] });
        expect(batch.results[0]?.outcome, principal).toMatchObject({
          case: "error",
          value: { reason: WANT[forField].reason },
        });
      }
      const rewrap = await fs
        .client("ops")
        .rewrapFields({ scope, items: [{ field: "credit_card", sealed }] });
      expect(rewrap.results[0]?.outcome).toMatchObject({
        case: "error",
        value: { reason: WANT[forField].reason },
      });
      const legacy = fs.client("legacy_reader").decryptField({ scope, field: "credit_card", sealed });
      if (forLegacy === "opens") {
        expect((await legacy).value?.kind).toEqual({ case: "stringValue", value: CARD });
      } else {
        const err = await refusal(legacy);
        expect([err.code, err.metadata.get("fieldseal-reason")]).toEqual([
          WANT[forLegacy].code,
          WANT[forLegacy].reason,
        ]);
        expect(err.rawMessage).not.toContain(CARD);
      }
    },
  );
});

describe("the legacy permission", () => {
  it("opens a legacy blob, and the audit line says its field label was unauthenticated", async () => {
    const before = fs.audit.events.length;
    const opened = await fs
      .client("legacy_reader")
      .decryptField({ scope, field: "credit_card", sealed: relabelled });
    // The permission means "every legacy value": a relabelled blob opens as what it really holds.
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: SSN });
    expect(opened).toMatchObject({ legacy: true, keyring: KEYRING, keyVersion: 1 });
    const events = fs.audit.events.slice(before);
    expect(events).toEqual([
      expect.objectContaining({
        action: "decrypt",
        principal: "legacy_reader",
        outcome: "ok",
        keyring: KEYRING,
        version: 1,
        field: "credit_card",
        legacy: true,
        fieldLabel: "unauthenticated",
      }),
    ]);
    expect(JSON.stringify(events)).not.toContain(SSN);
  });

  it("follows keyring lists: the legacy keyring must be granted", async () => {
    const err = await refusal(
      fs.client("other_ring").decryptField({ scope, field: "credit_card", sealed: cardBlob }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it("is implied by admin and opens nothing but legacy values", async () => {
    const admin = fs.client("admin");
    const opened = await admin.decryptField({ scope, field: "credit_card", sealed: cardBlob });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
    const { sealed } = await fs.client("bot").encryptFields({
      scope,
      fields: { ssn: { kind: { case: "stringValue", value: SSN } } },
    });
    const err = await refusal(
      fs.client("legacy_reader").decryptField({ scope, field: "ssn", sealed: sealed.ssn ?? "" }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it("legacy:rewrap with rewrap moves a blob to an fs1 value under the fresh primary, bound to its field", async () => {
    const before = fs.audit.events.length;
    const r = await fs.client("migrator").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: cardBlob }],
    });
    expect(r.results[0]).toMatchObject({ fromKeyVersion: 1, toKeyVersion: 2 });
    expect(r.results[0]?.outcome.case).toBe("sealed");
    const envelope = String(r.results[0]?.outcome.value);
    expect(envelope.startsWith(`fs1.${KEYRING}.2.`)).toBe(true);
    expect(fs.audit.events.slice(before)).toEqual([
      expect.objectContaining({
        action: "rewrap",
        principal: "migrator",
        outcome: "ok",
        version: 1,
        toVersion: 2,
        legacy: true,
        fieldLabel: "unauthenticated",
      }),
    ]);
    // Now bound: the credit_card principal opens it, and only as credit_card.
    const opened = await fs.client("billing").decryptField({ scope, field: "credit_card", sealed: envelope });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
    expect(opened.legacy).toBe(false);
    const moved = await refusal(fs.client("admin").decryptField({ scope, field: "ssn", sealed: envelope }));
    expect(moved.metadata.get("fieldseal-reason")).toBe("envelope_tampered");
  });
});

describe("rewrapping a legacy blob", () => {
  it("needs rewrap on the field and keyring of the new seal, not only legacy:rewrap", async () => {
    const before = fs.audit.events.length;
    // rewrap limited to credit_card: the SSN blob may not become an fs1 ssn value.
    const byField = await fs.client("card_migrator").rewrapFields({
      scope,
      items: [{ field: "ssn", sealed: ssnBlob }],
    });
    expect(byField.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { code: "permission_denied", reason: "permission_denied" },
    });
    // rewrap limited to "payments": the new seal would land in the legacy keyring.
    const byKeyring = await fs.client("payments_migrator").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: cardBlob }],
    });
    expect(byKeyring.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { code: "permission_denied", reason: "permission_denied" },
    });
    expect(fs.audit.events.slice(before)).toEqual([
      expect.objectContaining({
        action: "rewrap",
        principal: "card_migrator",
        outcome: "denied",
        field: "ssn",
      }),
      expect.objectContaining({
        action: "rewrap",
        principal: "payments_migrator",
        outcome: "denied",
        keyring: KEYRING,
      }),
    ]);
    // Within its grants each one migrates: the card blob as credit_card, into "payments" by name.
    const ok = await fs.client("card_migrator").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: cardBlob }],
    });
    expect(ok.results[0]?.outcome.case).toBe("sealed");
    const moved = await fs.client("payments_migrator").rewrapFields({
      scope,
      keyring: "payments",
      items: [{ field: "credit_card", sealed: cardBlob }],
    });
    expect(String(moved.results[0]?.outcome.value)).toMatch(/^fs1\.payments\./);
  });
});

describe("with the legacy keyring pointing at a keyring the tutorial key is not in", () => {
  it("opens nothing: the grant follows that keyring, and the blob's label is not found there", async () => {
    const elsewhere = await startTestFieldseal({
      principals: PRINCIPALS,
      store: new LocalFileKeyStore(dir),
      settings: { legacyKeyring: "payments", defaultKeyring: KEYRING },
    });
    try {
      // The grant follows the configured keyring: legacy_decrypt on "payments" now passes the check...
      for (const principal of ["other_ring", "legacy_reader"]) {
        const err = await refusal(
          elsewhere.client(principal).decryptField({ scope, field: "credit_card", sealed: cardBlob }),
        );
        // ...and finds no version with the blob's label there: NOT_FOUND, never a value.
        expect(err.code, principal).toBe(Code.NotFound);
        expect(err.rawMessage).not.toContain(CARD);
      }
    } finally {
      await elsewhere.close();
    }
  });
});

describe("a config that names a legacy operation beside a field list", () => {
  it("does not start: the list could never limit it", async () => {
    await expect(
      startTestFieldseal({
        principals: [{ name: "x", allow: [{ ops: ["legacy_decrypt"], fields: ["credit_card"] }] }],
      }),
    ).rejects.toThrow(/legacy_decrypt.*cannot be limited by fields/);
  });
});

describe("with the legacy path turned off", () => {
  it("answers FAILED_PRECONDITION with reason legacy_disabled, even to a permitted principal", async () => {
    const err = await refusal(
      off.client("legacy_reader").decryptField({ scope, field: "credit_card", sealed: cardBlob }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.metadata.get("fieldseal-reason")).toBe("legacy_disabled");
    expect(err.rawMessage).toMatch(/legacy tutorial values are turned off/);
    const r = await off.client("migrator").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: cardBlob }],
    });
    expect(r.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { code: "failed_precondition", reason: "legacy_disabled" },
    });
  });

  it("still opens fs1 values", async () => {
    const { sealed } = await off.client("bot").encryptFields({
      scope,
      fields: { credit_card: { kind: { case: "stringValue", value: CARD } } },
    });
    const opened = await off
      .client("billing")
      .decryptField({ scope, field: "credit_card", sealed: sealed.credit_card ?? "" });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
    const line = off.audit.events.at(-1);
    expect(line).toMatchObject({ action: "decrypt", outcome: "ok", legacy: false });
    expect(line).not.toHaveProperty("fieldLabel");
  });
});
