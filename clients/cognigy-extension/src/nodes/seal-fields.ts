import { createNodeDescriptor } from "@cognigy/extension-tools";
import type { INodeFunctionBaseParams, ISensitiveLoggingSettings } from "../cognigy-api.js";
import type { FieldsealConnectionValues } from "../connections/fieldseal.js";
import { NodeFailure } from "../failure.js";
import { callFieldseal, targetOf } from "../fieldseal-client.js";
import {
  assertWithinApiCalls,
  assertWritable,
  OUTCOME_CALLS,
  quietly,
  reportFailure,
  resultKeyOf,
  scopeOf,
  takeBranch,
  timeoutOf,
} from "../node-run.js";
import { FORBIDDEN_SEGMENTS, overlaps, parseSource, readPath, type ValueSource } from "../paths.js";
import { outcomeChildNodes, resultKeyField, TIMEOUT_FIELD } from "./outcome-parts.js";

/**
 * The settings the masking option applies. Cognigy's function reference lists `disableIntentTrainer` and
 * `maskIPAddress` beside the three extension-tools 0.14.0 declares (Cognigy/Documentation
 * docs/ai/developers/function-reference/logging/setSensitiveLoggingSettings.md), and does not say whether a
 * flag left out keeps its value: so every protective flag is given, on, lest the call switch off what a
 * Blind Mode node switched on. Conversations stay enabled (turning them off is a product decision, and
 * Blind Mode's own option does it).
 */
const SENSITIVE_LOGGING: ISensitiveLoggingSettings & {
  disableIntentTrainer: boolean;
  maskIPAddress: boolean;
} = {
  maskLogging: true,
  maskAnalytics: true,
  maskIPAddress: true,
  disableIntentTrainer: true,
  disableConversations: false,
};

export const SEAL_ON_SUCCESS = "sealFieldsOnSuccess";
export const SEAL_ON_FAILURE = "sealFieldsOnFailure";

/** The Seal fields node's settings as Cognigy passes them. */
export interface SealFieldsParams extends INodeFunctionBaseParams {
  config: {
    connection?: FieldsealConnectionValues;
    fields?: unknown;
    keyring?: unknown;
    scope?: unknown;
    maskLogging?: unknown;
    resultKey?: unknown;
    timeoutMs?: unknown;
  };
}

/** One field to seal: its name (the context key it is written under) and where its value is read. */
export interface FieldToSeal {
  readonly field: string;
  readonly source: ValueSource;
}

/**
 * A field name usable as a context key: `<name>` and `__enc_<name>` must not nest, and `<name>` must not
 * reach a prototype (`__proto__`, `constructor`, `prototype`).
 */
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,127}$/;

/** Checks a field name; `what` names the setting in the message. */
export function fieldNameOf(field: unknown, what: string): string {
  if (typeof field !== "string" || !FIELD_NAME.test(field)) {
    throw new NodeFailure(
      "bad_config",
      `${what} must be 1-128 letters, digits, "_" or "-", not starting with a digit`,
    );
  }
  if (FORBIDDEN_SEGMENTS.has(field)) {
    throw new NodeFailure("bad_config", `${what} must not be __proto__, constructor or prototype`);
  }
  // Its `<field>: null` would clear another field's envelope or mask.
  if (field.startsWith("__enc_") || field.startsWith("__mask_")) {
    throw new NodeFailure("bad_config", `${what} must not start with __enc_ or __mask_`);
  }
  return field;
}

/** A record without a prototype, so no field name can reach one. */
function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** The member `key` of `map` when it is the map's own, else undefined (never an inherited `toString`). */
function ownMember(map: unknown, key: string): unknown {
  return map !== null && typeof map === "object" && Object.hasOwn(map, key)
    ? (map as Record<string, unknown>)[key]
    : undefined;
}

/** Whether sealing clears the plaintext at `source` with a deleteContext of its own. */
function deletesSource(field: string, source: ValueSource): boolean {
  // The plaintext key `<field>` is set to null anyway; a separate delete of it would only cost a call.
  return source.root === "context" && source.path !== field;
}

/**
 * An fs1 envelope (docs/envelope.md): `fs1.<keyring>.<version>.<payload>`, the payload base64url of at
 * least a nonce and a tag (28 bytes). Anything else in `sealed` is not Fieldseal's answer, and may be the
 * value itself echoed back, so it is never written.
 */
const ENVELOPE = /^fs1\.[a-z0-9][a-z0-9_-]{0,62}\.[1-9][0-9]{0,9}\.[A-Za-z0-9_-]{38,}$/;

/** A masked value as the flow reads it: `{{context.__mask_<field>.speakable}}`. */
export interface MaskedValue {
  format: string;
  text: string;
  speakable: string;
}

/**
 * Parses the node's field list: a JSON array of `{"field": name, "from": source}`, `from` defaulting to
 * `context.<field>`.
 */
export function fieldsToSeal(value: unknown): FieldToSeal[] {
  let list = value;
  if (typeof list === "string") {
    try {
      list = JSON.parse(list);
    } catch {
      throw new NodeFailure("bad_config", "fields must be a JSON array");
    }
  }
  if (!Array.isArray(list) || list.length === 0) {
    throw new NodeFailure("bad_config", 'fields must be a non-empty array of {"field", "from"}');
  }
  const seen = new Set<string>();
  return list.map((entry: unknown, i) => {
    const item = entry !== null && typeof entry === "object" ? (entry as Record<string, unknown>) : {};
    const field = fieldNameOf(item.field, `fields[${i}].field`);
    if (seen.has(field)) throw new NodeFailure("bad_config", `field ${field} is listed twice`);
    seen.add(field);
    const from = item.from ?? `context.${field}`;
    if (typeof from !== "string") throw new NodeFailure("bad_config", `fields[${i}].from must be a path`);
    return { field, source: parseSource(from, `fields[${i}].from`) };
  });
}

/** Checks the EncryptFields answer covers every field before anything is written. */
function sealedAnswer(
  answer: Record<string, unknown>,
  fields: readonly FieldToSeal[],
): {
  sealed: Record<string, string>;
  masked: Record<string, MaskedValue>;
  keyring: string;
  keyVersion: number;
} {
  const sealed = record<string>();
  const masked = record<MaskedValue>();
  for (const { field } of fields) {
    const value = ownMember(answer.sealed, field);
    if (typeof value !== "string" || !ENVELOPE.test(value)) {
      throw new NodeFailure("bad_response", `Fieldseal's answer has no sealed value for ${field}`);
    }
    sealed[field] = value;
    const mask = ownMember(answer.masked, field);
    if (mask !== undefined) {
      if (mask === null || typeof mask !== "object" || Array.isArray(mask)) {
        throw new NodeFailure("bad_response", `Fieldseal's answer has a malformed mask for ${field}`);
      }
      const parts = [ownMember(mask, "format"), ownMember(mask, "text"), ownMember(mask, "speakable")];
      // Connect's JSON omits empty strings, so an absent part is ""; any other type is not Fieldseal's.
      if (parts.some((part) => part !== undefined && typeof part !== "string")) {
        throw new NodeFailure("bad_response", `Fieldseal's answer has a malformed mask for ${field}`);
      }
      const [format, text, speakable] = parts.map((part) => (part === undefined ? "" : String(part)));
      masked[field] = { format: format ?? "", text: text ?? "", speakable: speakable ?? "" };
    }
  }
  const keyVersion = answer.keyVersion;
  return {
    sealed,
    masked,
    keyring: typeof answer.keyring === "string" ? answer.keyring : "",
    keyVersion: typeof keyVersion === "number" ? keyVersion : 0,
  };
}

/**
 * Seals the listed fields with EncryptFields, then writes `__enc_<field>`, `<field>: null` and, where the
 * server returned one, `__mask_<field>`; deletes each plaintext it read from context. Nothing is written to
 * the fields unless every field was sealed.
 */
export async function sealFields({ cognigy, config, childConfigs }: SealFieldsParams): Promise<void> {
  const { api, input, context } = cognigy;
  let resultKey: string | undefined;
  try {
    const outcomeKey = resultKeyOf(config.resultKey);
    resultKey = outcomeKey;
    const fields = fieldsToSeal(config.fields);
    // The outcome is written last: at a key the seal writes or clears, it would overwrite an envelope or
    // a mask, or bring back an object whose plaintext member was just deleted.
    for (const { field, source } of fields) {
      const written = [field, `__enc_${field}`, `__mask_${field}`];
      if (source.root === "context") written.push(source.path);
      if (written.some((key) => overlaps(outcomeKey, key))) {
        resultKey = undefined;
        throw new NodeFailure(
          "bad_config",
          `the outcome key ${outcomeKey} would overwrite what sealing ${field} writes or clears`,
        );
      }
    }
    const timeoutMs = timeoutOf(config.timeoutMs);
    const target = targetOf(config.connection);
    const scope = scopeOf(config.scope, input);
    const keyring = typeof config.keyring === "string" ? config.keyring.trim() : "";
    if (config.maskLogging === true) {
      api.setSensitiveLoggingSettings?.(
        SENSITIVE_LOGGING,
        typeof input.traceId === "string" ? input.traceId : "",
      );
    }
    // Every call this node can make, before the first: the fewest a success takes (an envelope and a null
    // per field, the deletes, the outcome and the branch) must fit, or nothing is tried.
    const fixedCalls = (config.maskLogging === true ? 1 : 0) + OUTCOME_CALLS;
    const leastCalls =
      fixedCalls + fields.reduce((n, { field, source }) => n + 2 + (deletesSource(field, source) ? 1 : 0), 0);
    assertWithinApiCalls(leastCalls, `sealing ${fields.length} field(s) here`);
    const values = record<unknown>();
    for (const { field, source } of fields) {
      const value = readPath(source.root === "context" ? context : input, source.segments);
      // null is what a sealed field's plaintext key holds: sealing it again would replace the envelope.
      if (value === undefined || value === null) {
        throw new NodeFailure(
          "missing_input",
          `nothing to seal for ${field} at ${source.root}.${source.path}`,
        );
      }
      values[field] = value;
    }
    const answer = await callFieldseal(
      target,
      "EncryptFields",
      { ...(keyring === "" ? {} : { keyring }), scope, fields: values },
      timeoutMs,
      // A message quoting the keyring is withheld too: a CognigyScript mistake can put a value there.
      [values, keyring],
    );
    const result = sealedAnswer(answer, fields);
    // The calls the writes below make, now that the masks are known, and the size of each write.
    let calls = leastCalls;
    for (const { field } of fields) {
      const mask = result.masked[field];
      if (mask !== undefined || Object.hasOwn(context, `__mask_${field}`)) calls += 1;
      assertWritable(`__enc_${field}`, result.sealed[field]);
      if (mask !== undefined) assertWritable(`__mask_${field}`, mask);
    }
    assertWithinApiCalls(calls, `sealing ${fields.length} field(s) with their masks here`);
    // Envelopes first, plaintext cleared last: if the runtime fails a write midway, every value is still
    // in the context in one form or the other.
    for (const { field } of fields) {
      api.addToContext?.(`__enc_${field}`, result.sealed[field], "simple");
      const mask = result.masked[field];
      if (mask !== undefined) api.addToContext?.(`__mask_${field}`, mask, "simple");
      // A mask left from an earlier seal would describe another value.
      else if (Object.hasOwn(context, `__mask_${field}`)) api.deleteContext?.(`__mask_${field}`);
    }
    for (const { field, source } of fields) {
      if (deletesSource(field, source)) api.deleteContext?.(source.path);
      api.addToContext?.(field, null, "simple");
    }
    const names = fields.map((f) => f.field);
    api.addToContext?.(
      outcomeKey,
      { ok: true, keyring: result.keyring, keyVersion: result.keyVersion, fields: names },
      "simple",
    );
    takeBranch(api, childConfigs, SEAL_ON_SUCCESS);
    // Last, and unable to fail the run: a log line refused by the runtime changes no outcome.
    quietly(() =>
      api.log?.("info", `Fieldseal sealed ${names.join(", ")} under ${result.keyring} v${result.keyVersion}`),
    );
  } catch (err) {
    reportFailure(
      api,
      childConfigs,
      { resultKey, failureType: SEAL_ON_FAILURE, nodeLabel: "Seal fields", log: true },
      err,
    );
  }
}

export const sealFieldsNode = createNodeDescriptor({
  type: "sealFields",
  defaultLabel: "Seal fields",
  summary: "Seals context or input values with Fieldseal and clears the plaintext",
  fields: [
    {
      key: "connection",
      label: "Fieldseal Connection",
      type: "connection",
      params: { connectionType: "fieldseal", required: true },
    },
    {
      key: "fields",
      label: "Fields to seal",
      type: "json",
      description:
        'A list of {"field": name, "from": source}. Source: context.<path>, input.text, input.data.<path> or ' +
        "input.slots.<path>; it defaults to context.<field>. Each field is written as __enc_<field>, its " +
        "plaintext key set to null, its masked form (if Fieldseal has a mask format for it) as __mask_<field>. " +
        "Cognigy allows an Extension run 10 API calls: up to 4 fields without masks, 2 with masks; split " +
        "longer lists over several nodes.",
      defaultValue: [{ field: "credit_card", from: "context.credit_card" }],
      params: { required: true },
    },
    {
      key: "scope",
      label: "Bind to",
      type: "select",
      description: "Values open only for the same session (default) or the same user.",
      defaultValue: "sessionId",
      params: {
        options: [
          { label: "Session (input.sessionId)", value: "sessionId" },
          { label: "User (input.userId)", value: "userId" },
        ],
        required: true,
      },
    },
    {
      key: "keyring",
      label: "Keyring",
      type: "cognigyText",
      description: "Empty: Fieldseal's default keyring.",
      defaultValue: "",
    },
    {
      key: "maskLogging",
      label: "Mask logging and analytics for this conversation",
      type: "toggle",
      description: "Calls setSensitiveLoggingSettings before sealing.",
      defaultValue: false,
    },
    resultKeyField("Gets {ok, keyring, keyVersion, fields} or {ok: false, reason, message}; never a value."),
    TIMEOUT_FIELD,
  ],
  sections: [
    {
      key: "advanced",
      label: "Advanced",
      defaultCollapsed: true,
      fields: ["keyring", "maskLogging", "resultKey", "timeoutMs"],
    },
  ],
  form: [
    { type: "field", key: "connection" },
    { type: "field", key: "fields" },
    { type: "field", key: "scope" },
    { type: "section", key: "advanced" },
  ],
  appearance: { color: "#1f4e79" },
  tags: ["service"],
  dependencies: { children: [SEAL_ON_SUCCESS, SEAL_ON_FAILURE] },
  function: sealFields as (params: INodeFunctionBaseParams) => Promise<void>,
});

export const [sealOnSuccessNode, sealOnFailureNode] = outcomeChildNodes(
  "sealFields",
  SEAL_ON_SUCCESS,
  SEAL_ON_FAILURE,
);
