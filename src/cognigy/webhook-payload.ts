/**
 * What a webhook request says, read from its body and X-Sensitive-Metadata: the session, the user, the
 * variables and the flagged fields, with those that are missing. JSON, urlencoded forms and multipart forms
 * (multipart.ts) are read with one set of field rules; bytes that cannot be decoded are refused with a
 * MalformedWebhookError `reason` (webhook-body.ts), everything else malformed with FieldsealError.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { assertAadPart } from "../engine/names.js";
import { FieldsealError, isFieldsealError } from "../errors.js";
import { DEFAULT_MAX_BATCH } from "../service/fieldseal-service.js";
import {
  DEFAULT_MULTIPART_LIMITS,
  type MultipartLimits,
  multipartBoundary,
  parseMultipartForm,
} from "./multipart.js";
import { parseSensitiveMetadata } from "./sensitive-fields.js";
import {
  decodeHeaderUtf8,
  decodeUtf8,
  MAX_VALUE_DEPTH,
  MalformedWebhookError,
  parseFormBody,
  parseJsonText,
} from "./webhook-body.js";

export interface ParsedWebhook {
  sessionId: string;
  userId: string;
  variables: JsonObject;
  /** Every flagged field, in order, without repeats. */
  sensitive: string[];
  /** The flagged fields that are absent from the variables, null or "" (the rule: webhook.ts, docs/cognigy.md). */
  missing: string[];
}

/**
 * Validates the payload and works out the fields to seal; throws FieldsealError("invalid_argument") (a
 * MalformedWebhookError with a `reason` for undecodable bytes). A media type other than JSON or multipart is
 * read as a urlencoded form.
 */
export function parseWebhook(
  contentType: string,
  body: Buffer,
  sensitiveHeader: string | undefined,
  multipartLimits: MultipartLimits = DEFAULT_MULTIPART_LIMITS,
): ParsedWebhook {
  const headerFields = parseSensitiveMetadata(
    sensitiveHeader === undefined ? undefined : decodeHeaderUtf8(sensitiveHeader, "X-Sensitive-Metadata"),
  );
  const type = mediaType(contentType);
  const payload =
    type === "application/json"
      ? parseJsonPayload(body)
      : type === "multipart/form-data"
        ? formPayload(parseMultipartForm(body, multipartBoundary(contentType), multipartLimits))
        : parseUrlencodedPayload(body);
  const sessionId = payload.sessionId;
  if (typeof sessionId !== "string" || sessionId.trim() === "") {
    throw new FieldsealError("invalid_argument", '"sessionId" is required and must be a non-empty string');
  }
  assertWellFormed(sessionId, '"sessionId"');
  assertAadText("session id", sessionId, "session_id_invalid");
  const userId = payload.userId ?? "";
  if (typeof userId !== "string") throw new FieldsealError("invalid_argument", '"userId" must be a string');
  assertWellFormed(userId, '"userId"');
  if (payload.variables !== undefined && payload.context !== undefined) {
    throw new FieldsealError("invalid_argument", 'send "variables" or "context", not both');
  }
  const variables = payload.variables ?? payload.context;
  if (!isJsonObject(variables)) {
    throw new FieldsealError("invalid_argument", '"variables" is required and must be a JSON object');
  }
  const bodyFields = payload.sensitive ?? [];
  if (!Array.isArray(bodyFields) || !bodyFields.every((f) => typeof f === "string" && f !== "")) {
    throw new FieldsealError("invalid_argument", '"sensitive" must be a list of field names');
  }
  const sensitive = [...new Set([...headerFields, ...(bodyFields as string[])])];
  if (sensitive.length > DEFAULT_MAX_BATCH) {
    // The same on every call: the author's to fix (400), not a `too_large` refusal of the user's input.
    throw new MalformedWebhookError(
      "too_many_fields",
      `${sensitive.length} fields flagged; one request may seal ${DEFAULT_MAX_BATCH}`,
    );
  }
  if (sensitive.length === 0) {
    throw new FieldsealError(
      "invalid_argument",
      'no fields flagged: send X-Sensitive-Metadata: field:<name>,... or a "sensitive" list',
    );
  }
  for (const name of sensitive) {
    assertWellFormed(name, "a flagged field name");
    // Assigning "__proto__" on a plain object (the seal request, the answer) sets its prototype instead of a
    // field: the value would silently drop out of the request. No Cognigy variable needs that name.
    if (name === "__proto__") {
      throw new FieldsealError("invalid_argument", 'a field named "__proto__" cannot be sealed');
    }
    assertAadText("field name", name, "field_name_invalid");
  }
  // The answer writes `<f>`, `__enc_<f>` and `__mask_<f>` for every flagged <f>: flagging both `card` and
  // `__enc_card` would write the null of one over the envelope of the other, and the value would be lost.
  for (const name of sensitive) {
    const base = /^__(?:enc|mask)_(.+)$/s.exec(name)?.[1];
    if (base !== undefined && sensitive.includes(base)) {
      throw new MalformedWebhookError(
        "field_name_collision",
        `flagged fields ${JSON.stringify(base)} and ${JSON.stringify(name)} would be written to the same context key`,
      );
    }
  }
  const missing = sensitive.filter(
    (name) => !Object.hasOwn(variables, name) || variables[name] === null || variables[name] === "",
  );
  return { sessionId, userId, variables, sensitive, missing };
}

/**
 * A string the engine would bind or seal must be well-formed UTF-16: a lone surrogate (valid in a JSON
 * escape) would be encoded as U+FFFD, binding or sealing something other than what was sent.
 */
function assertWellFormed(text: string, what: string): void {
  if (!text.isWellFormed())
    throw new MalformedWebhookError("lone_surrogate", `${what} contains a lone surrogate`);
}

/**
 * The engine's rule for a name or scope id in the AAD (1 to 256 bytes of UTF-8, no NUL), checked here so the
 * flow's author gets a 400 for what is the same on every call, not a 200 `refused` meant for the user's input.
 */
function assertAadText(
  what: "field name" | "session id",
  text: string,
  reason: "field_name_invalid" | "session_id_invalid",
): void {
  try {
    assertAadPart(what, text);
  } catch (err) {
    throw new MalformedWebhookError(reason, isFieldsealError(err) ? err.message : `${what} is invalid`);
  }
}

function parseJsonPayload(body: Buffer): Record<string, unknown> {
  // body → variables → value: a value may nest as deep as the engine allows, and no deeper.
  const parsed = parseJsonText(decodeUtf8(body, "body"), "body", MAX_VALUE_DEPTH + 2);
  if (!isJsonObject(parsed)) throw new FieldsealError("invalid_argument", "body must be a JSON object");
  return parsed;
}

function parseUrlencodedPayload(body: Buffer): Record<string, unknown> {
  // Content-Type is not in the signed text, so no body may be readable both ways: a JSON body (an object,
  // after optional whitespace) read as a form would take names and values from inside its strings, which a
  // chat user may have typed ("x&sessionId=other&variables[card]=..."). A form never starts that way.
  // Likewise a multipart body, which starts with "--" and its boundary: read as a form, its part values (typed
  // by the user) could spell names. Neither JSON nor a form can be read as multipart, which must start "--".
  const at = body.findIndex((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
  const first = at === -1 ? undefined : body[at];
  if (first === 0x7b || first === 0x5b) {
    throw new FieldsealError(
      "invalid_argument",
      "a form body cannot start with { or [: send it as application/json",
    );
  }
  if (first === 0x2d && body[at + 1] === 0x2d) {
    throw new FieldsealError(
      "invalid_argument",
      "a form body cannot start with --: send it as multipart/form-data",
    );
  }
  return formPayload(parseFormBody(body));
}

/** The payload of a form, urlencoded or multipart: the same names and rules for both. */
function formPayload(form: Array<[string, string]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const pairs: JsonObject = {};
  let hasPairs = false;
  const sensitive: string[] = [];
  // As in JSON, a name given twice is refused: which of two values a reader takes is a guess.
  const repeated = () => new MalformedWebhookError("duplicate_name", "the form names a field twice");
  for (const [key, value] of form) {
    const pair = /^variables\[([^\]]+)\]$/.exec(key);
    if (pair?.[1] !== undefined) {
      if (Object.hasOwn(pairs, pair[1])) throw repeated();
      pairs[pair[1]] = value;
      hasPairs = true;
    } else if (key === "variables") {
      if (out.variables !== undefined) throw repeated();
      out.variables = parseJsonText(value, '"variables" form value', MAX_VALUE_DEPTH + 1);
    } else if (key === "sensitive" || key === "sensitive[]") {
      sensitive.push(...value.split(",").map((s) => s.trim()));
    } else if (key === "sessionId" || key === "userId" || key === "context") {
      if (Object.hasOwn(out, key)) throw repeated();
      out[key] = value;
    }
  }
  if (hasPairs) {
    if (out.variables !== undefined) {
      throw new FieldsealError(
        "invalid_argument",
        'send "variables" as JSON or as variables[<field>] pairs, not both',
      );
    }
    out.variables = pairs;
  }
  if (sensitive.length > 0) out.sensitive = sensitive;
  return out;
}

function isJsonObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The media type of a Content-Type value, lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}
