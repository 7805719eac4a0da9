import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseSensitiveMetadata } from "../../src/cognigy/sensitive-fields.js";
import { parseWebhook } from "../../src/cognigy/webhook.js";
import { FieldsealError } from "../../src/errors.js";

/** Runs `parse` and passes when it returns or throws a FieldsealError; anything else fails the property. */
function onlyFieldsealErrors(parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(FieldsealError);
  }
}

const fieldName = fc.oneof(
  fc.constantFrom("credit_card", "ssn", "__proto__", "constructor", "a", ""),
  fc.string({ maxLength: 12 }),
);
const sensitiveHeader = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 200 }),
  fc
    .tuple(
      fc.array(fc.tuple(fc.constantFrom("field:", "field :", "", "x:", " field: "), fieldName), {
        maxLength: 8,
      }),
      fc.constantFrom(",", ", ", ",,"),
    )
    .map(([entries, separator]) => entries.map(([p, f]) => `${p}${f}`).join(separator)),
);
const contentType = fc.oneof(
  fc.constantFrom("application/json", "application/x-www-form-urlencoded", "text/plain", ""),
  fc.string({ maxLength: 40 }),
);
/** Payloads shaped like Cognigy's, with every part sometimes the wrong type. */
const payload = fc.record(
  {
    sessionId: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 })),
    userId: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 })),
    variables: fc.oneof(
      fc.dictionary(fieldName, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
      fc.jsonValue(),
    ),
    context: fc.jsonValue({ maxDepth: 2 }),
    sensitive: fc.oneof(fc.array(fieldName, { maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);
const form = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("sessionId", "userId", "variables", "sensitive", "sensitive[]"),
        fieldName.map((f) => `variables[${f}]`),
        fc.string({ maxLength: 15 }),
      ),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ""),
      ),
    ),
    { maxLength: 10 },
  )
  .map((pairs) => new URLSearchParams(pairs).toString());
const body = fc.oneof(
  payload.map((p) => JSON.stringify(p)),
  form,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ""),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
);

describe("webhook parsing (property)", () => {
  it("parseWebhook returns or throws FieldsealError for any content type, body and header", () => {
    fc.assert(
      fc.property(contentType, body, sensitiveHeader, (type, text, header) => {
        onlyFieldsealErrors(() => {
          const parsed = parseWebhook(type, Buffer.from(text, "utf8"), header);
          // Whatever it accepts is consistent: every flagged field is one of the variables.
          for (const f of parsed.sensitive) expect(Object.hasOwn(parsed.variables, f)).toBe(true);
          expect(parsed.sessionId.trim()).not.toBe("");
        });
      }),
      { numRuns: 3000 },
    );
  });

  it("parseSensitiveMetadata returns field names or throws FieldsealError for any header", () => {
    fc.assert(
      fc.property(sensitiveHeader, (header) => {
        onlyFieldsealErrors(() => {
          const fields = parseSensitiveMetadata(header);
          expect(new Set(fields).size).toBe(fields.length);
          for (const f of fields) expect(f).not.toBe("");
        });
      }),
      { numRuns: 3000 },
    );
  });
});
