import { createNodeDescriptor } from "@cognigy/extension-tools";
import type { INodeFunctionBaseParams } from "../cognigy-api.js";
import type { FieldsealConnectionValues } from "../connections/fieldseal.js";
import { NodeFailure } from "../failure.js";
import { callFieldseal, targetOf } from "../fieldseal-client.js";
import {
  assertWritable,
  quietly,
  reportFailure,
  resultKeyOf,
  scopeOf,
  takeBranch,
  timeoutOf,
} from "../node-run.js";
import { overlaps, parseSource } from "../paths.js";
import { outcomeChildNodes, resultKeyField, TIMEOUT_FIELD } from "./outcome-parts.js";
import { fieldNameOf } from "./seal-fields.js";

export const OPEN_ON_SUCCESS = "openFieldOnSuccess";
export const OPEN_ON_FAILURE = "openFieldOnFailure";

/** The Open field node's settings as Cognigy passes them. */
export interface OpenFieldParams extends INodeFunctionBaseParams {
  config: {
    connection?: FieldsealConnectionValues;
    field?: unknown;
    targetKey?: unknown;
    scope?: unknown;
    log?: unknown;
    resultKey?: unknown;
    timeoutMs?: unknown;
  };
}

/**
 * Opens `__enc_<field>` with DecryptField and writes the plaintext to the target context key, for a
 * hand-off to a trusted system. The flow must delete the target key right after the hand-off.
 */
export async function openField({ cognigy, config, childConfigs }: OpenFieldParams): Promise<void> {
  const { api, input, context } = cognigy;
  let resultKey: string | undefined;
  // Logging is on unless switched off; a log line never has the value either way.
  const log = config.log !== false;
  try {
    const outcomeKey = resultKeyOf(config.resultKey);
    resultKey = outcomeKey;
    const field = fieldNameOf(typeof config.field === "string" ? config.field.trim() : config.field, "field");
    const targetKey = typeof config.targetKey === "string" ? config.targetKey.trim() : "";
    if (targetKey === "") throw new NodeFailure("bad_config", "the target context key is empty");
    const target = parseSource(`context.${targetKey}`, "the target context key").path;
    // An envelope or mask key would lose what it holds to the plaintext; the outcome would overwrite it.
    const first = target.split(".")[0] ?? "";
    if (first.startsWith("__enc_") || first.startsWith("__mask_") || overlaps(target, outcomeKey)) {
      throw new NodeFailure(
        "bad_config",
        "the target context key must not be an __enc_ or __mask_ key nor the outcome key",
      );
    }
    const timeoutMs = timeoutOf(config.timeoutMs);
    const connection = targetOf(config.connection);
    const scope = scopeOf(config.scope, input);
    const sealed = Object.hasOwn(context, `__enc_${field}`) ? context[`__enc_${field}`] : undefined;
    if (typeof sealed !== "string" || sealed === "") {
      throw new NodeFailure("missing_input", `no sealed value at context.__enc_${field}`);
    }
    // What is at __enc_<field> may be a value put there by mistake: a message quoting it is withheld.
    const answer = await callFieldseal(connection, "DecryptField", { scope, field, sealed }, timeoutMs, [
      sealed,
    ]);
    if (!Object.hasOwn(answer, "value")) {
      throw new NodeFailure("bad_response", `Fieldseal's answer has no value for ${field}`);
    }
    const keyring = typeof answer.keyring === "string" ? answer.keyring : "";
    const keyVersion = typeof answer.keyVersion === "number" ? answer.keyVersion : 0;
    // Nothing is written unless Cognigy takes it in one write (no value in the message, only its size).
    assertWritable(target, answer.value);
    api.addToContext?.(target, answer.value, "simple");
    api.addToContext?.(outcomeKey, { ok: true, field, keyring, keyVersion, target }, "simple");
    takeBranch(api, childConfigs, OPEN_ON_SUCCESS);
    // Last, and unable to fail the run: a log line refused by the runtime changes no outcome.
    if (log)
      quietly(() =>
        api.log?.("info", `Fieldseal opened ${field} into context.${target}; delete it after use`),
      );
  } catch (err) {
    reportFailure(
      api,
      childConfigs,
      { resultKey, failureType: OPEN_ON_FAILURE, nodeLabel: "Open field", log },
      err,
    );
  }
}

export const openFieldNode = createNodeDescriptor({
  type: "openField",
  defaultLabel: "Open field",
  summary: "Opens one sealed field into a context key for a trusted hand-off; delete that key after use",
  fields: [
    {
      key: "connection",
      label: "Fieldseal Connection",
      type: "connection",
      params: { connectionType: "fieldseal", required: true },
    },
    {
      key: "field",
      label: "Field",
      type: "cognigyText",
      description: "Opens context.__enc_<field>, sealed by Seal fields for the same session or user.",
      defaultValue: "credit_card",
      params: { required: true },
    },
    {
      key: "targetKey",
      label: "Context key for the plaintext",
      type: "cognigyText",
      description:
        "Receives the plaintext. Hand it to the trusted system at once, then delete it with a Remove from " +
        "Context node (or api.deleteContext): until then it is in the context in clear.",
      defaultValue: "fieldseal_opened",
      params: { required: true },
    },
    {
      key: "scope",
      label: "Bound to",
      type: "select",
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
      key: "log",
      label: "Write a log line",
      type: "toggle",
      description: "Off: this node writes nothing to Cognigy's log. The value is never logged either way.",
      defaultValue: true,
    },
    resultKeyField("Gets {ok, field, keyring, keyVersion, target} or {ok: false, reason, message}."),
    TIMEOUT_FIELD,
  ],
  sections: [
    {
      key: "advanced",
      label: "Advanced",
      defaultCollapsed: true,
      fields: ["log", "resultKey", "timeoutMs"],
    },
  ],
  form: [
    { type: "field", key: "connection" },
    { type: "field", key: "field" },
    { type: "field", key: "targetKey" },
    { type: "field", key: "scope" },
    { type: "section", key: "advanced" },
  ],
  appearance: { color: "#7a4e1f" },
  tags: ["service"],
  dependencies: { children: [OPEN_ON_SUCCESS, OPEN_ON_FAILURE] },
  function: openField as (params: INodeFunctionBaseParams) => Promise<void>,
});

export const [openOnSuccessNode, openOnFailureNode] = outcomeChildNodes(
  "openField",
  OPEN_ON_SUCCESS,
  OPEN_ON_FAILURE,
);
