/**
 * Seal fields writes `__mask_<field>` from EncryptFields' `masked` map, against a real server with mask
 * formats configured (docs/masks.md), and carries the server's format refusal to the failure branch.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SEAL_ON_FAILURE,
  SEAL_ON_SUCCESS,
  sealFields,
} from "../../clients/cognigy-extension/src/nodes/seal-fields.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type CognigyRun, children, cognigyRun } from "./harness.js";

const CARD = "4111111111111111";
const SSN = "078-05-1120";

let fs: TestFieldseal;

beforeAll(async () => {
  fs = await startTestFieldseal({
    principals: [{ name: "bot", scopes: ["encrypt"] }],
    settings: { fields: { credit_card: { format: "card" }, ssn: { format: "national_id" } } },
  });
});
afterAll(async () => {
  await fs?.close();
});

async function seal(run: CognigyRun, fields: unknown[]): Promise<void> {
  await sealFields({
    cognigy: run.cognigy,
    config: { connection: { serviceUrl: fs.url, token: fs.tokens.bot }, fields },
    childConfigs: children(SEAL_ON_SUCCESS, SEAL_ON_FAILURE),
    nodeId: "seal-node",
  });
}

describe("Seal fields with mask formats", () => {
  it("writes __mask_<field> as {format, text, speakable} for fields with a format, and none for others", async () => {
    const run = cognigyRun({ sessionId: "sess-mask", text: SSN }, { credit_card: CARD });
    await seal(run, [{ field: "credit_card" }, { field: "ssn", from: "input.text" }]);
    expect(run.nextNodes).toEqual(["child-success"]);
    expect(run.context.__mask_credit_card).toEqual({
      format: "card",
      text: "Visa •••• 1111",
      speakable: "Visa ending in 1 1 1 1",
    });
    expect(run.context.__mask_ssn).toEqual({
      format: "national_id",
      text: "•••• 1120",
      speakable: "ending in 1 1 2 0",
    });
    expect(run.context.credit_card).toBeNull();
    expect(JSON.stringify(run.calls)).not.toContain(CARD);
    expect(JSON.stringify(run.calls)).not.toContain(SSN);
    expect(run.limitErrors).toEqual([]);
  });

  it("deletes a mask left from an earlier value of a field that has no format", async () => {
    const run = cognigyRun(
      { sessionId: "sess-stale" },
      { note: "call after 5", __mask_note: { format: "generic", text: "old", speakable: "old" } },
    );
    await seal(run, [{ field: "note" }]);
    expect(run.nextNodes).toEqual(["child-success"]);
    expect(run.context).not.toHaveProperty("__mask_note");
    expect(run.context.__enc_note).toMatch(/^fs1\./);
    expect(run.context.note).toBeNull();
  });

  it("takes On failure with the server's reason for a value its format refuses, writing no value", async () => {
    const bad = "4111111111111112"; // fails the Luhn check
    const run = cognigyRun({ sessionId: "sess-luhn" }, { credit_card: bad });
    await seal(run, [{ field: "credit_card" }]);
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(run.context.fieldseal).toMatchObject({ ok: false, reason: "field_format_invalid" });
    expect(run.context.credit_card).toBe(bad);
    expect(run.context).not.toHaveProperty("__enc_credit_card");
    expect(run.context).not.toHaveProperty("__mask_credit_card");
    expect(JSON.stringify(run.calls)).not.toContain(bad);
  });

  it.each(["toString", "valueOf", "hasOwnProperty"])(
    "seals a field named %s beside a masked one (no inherited member is read from the answer)",
    async (field) => {
      const run = cognigyRun({ sessionId: "sess-inherited" }, { credit_card: CARD, [field]: "x" });
      await seal(run, [{ field: "credit_card" }, { field }]);
      expect(run.nextNodes).toEqual(["child-success"]);
      expect(run.context[`__enc_${field}`]).toMatch(/^fs1\./);
      expect(run.context).not.toHaveProperty(`__mask_${field}`);
      expect(run.context.__mask_credit_card).toMatchObject({ format: "card" });
    },
  );

  it("refuses, before writing, a seal whose masks would take it past Cognigy's 10 API calls", async () => {
    // Three fields: 2 calls each, 2 for the outcome (8, under the limit before the answer); the two masks
    // and the stale mask of `note` to delete make 11.
    const context = {
      credit_card: CARD,
      note: "call after 5",
      __mask_note: { format: "generic", text: "old", speakable: "old" },
    };
    const run = cognigyRun({ sessionId: "sess-mask-calls", text: SSN }, context);
    await seal(run, [{ field: "credit_card" }, { field: "ssn", from: "input.text" }, { field: "note" }]);
    expect(run.nextNodes).toEqual(["child-failure"]);
    expect(run.context.fieldseal).toMatchObject({ ok: false, reason: "api_call_limit" });
    expect(run.context.credit_card).toBe(CARD);
    expect(run.context.note).toBe("call after 5");
    expect(Object.keys(run.context).sort()).toEqual(["__mask_note", "credit_card", "fieldseal", "note"]);
    expect(run.limitErrors).toEqual([]);
  });
});
