/**
 * The descriptor parts both nodes share: the outcome key and timeout settings, and the On success / On
 * failure child nodes a run takes one of.
 */
import { createNodeDescriptor } from "@cognigy/extension-tools";
import { CHILD_CONSTRAINTS, DEFAULT_RESULT_KEY, DEFAULT_TIMEOUT_MS } from "../node-run.js";

/** The "Context key for the outcome" setting; `description` says what a run writes there. */
export function resultKeyField(description: string) {
  return {
    key: "resultKey",
    label: "Context key for the outcome",
    type: "cognigyText",
    description,
    defaultValue: DEFAULT_RESULT_KEY,
  } as const;
}

/** The call timeout setting. */
export const TIMEOUT_FIELD = {
  key: "timeoutMs",
  label: "Timeout (ms)",
  type: "number",
  description: "At most 15000: Cognigy stops an Extension after 20 s.",
  defaultValue: DEFAULT_TIMEOUT_MS,
} as const;

/** The On success and On failure children of the node of type `parentType`, with their own types. */
export function outcomeChildNodes(parentType: string, successType: string, failureType: string) {
  return [
    createNodeDescriptor({
      type: successType,
      parentType,
      defaultLabel: "On success",
      appearance: { color: "#61d188", textColor: "white", variant: "mini" },
      constraints: CHILD_CONSTRAINTS,
    }),
    createNodeDescriptor({
      type: failureType,
      parentType,
      defaultLabel: "On failure",
      appearance: { color: "#cf142b", textColor: "white", variant: "mini" },
      constraints: CHILD_CONSTRAINTS,
    }),
  ] as const;
}
