/**
 * What both nodes share: reading their common settings, taking the On success / On failure child branch,
 * and turning any failure into a value-free record in context and a log line, so a node never throws
 * out of the flow.
 */
import type { INodeExecutionAPI, TNodeChildConfigs } from "./cognigy-api.js";
import { NodeFailure } from "./failure.js";
import { parseSource } from "./paths.js";

/** Default and bounds of the call timeout: Cognigy stops an Extension run after 20 s. */
export const DEFAULT_TIMEOUT_MS = 8000;
export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 15_000;
export const DEFAULT_RESULT_KEY = "fieldseal";

/**
 * Cognigy stops an Extension run after 10 calls of `cognigy.api`, `api.log` not counted, and refuses an
 * argument object larger than 62 KB ("Extensions can make up to 10 API calls per execution, except for
 * api.log()"; "objects passed as arguments to Extension API calls have a size limit of 62 KB",
 * docs.cognigy.com/ai/for-developers/extensions; "Extension actions | 10" in Quotas and Limits). A run cut
 * off midway would leave its writes half done, so a node counts its calls and measures what it writes
 * before it makes the first one.
 */
export const MAX_API_CALLS = 10;
/** 62 KB read as 62,000 bytes of JSON, the stricter reading. */
export const MAX_API_ARGUMENT_BYTES = 62_000;

/** The calls the outcome of a run takes, success or failure: its record and the branch (log lines are free). */
export const OUTCOME_CALLS = 2;

/** Refuses a plan of `calls` API calls that Cognigy would cut off; `what` says what they are for. */
export function assertWithinApiCalls(calls: number, what: string): void {
  if (calls > MAX_API_CALLS) {
    throw new NodeFailure(
      "api_call_limit",
      `${what} takes ${calls} Cognigy API calls and an Extension run may make ${MAX_API_CALLS}; ` +
        "split the fields over several nodes",
    );
  }
}

/** Refuses a value whose JSON is larger than Cognigy takes as one API call's argument; `key` names it. */
export function assertWritable(key: string, value: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? "", "utf8");
  if (bytes > MAX_API_ARGUMENT_BYTES) {
    throw new NodeFailure(
      "too_large_for_cognigy",
      `context.${key} would be ${bytes} bytes and Cognigy takes at most ${MAX_API_ARGUMENT_BYTES} in one write`,
    );
  }
}

/**
 * A branch child's constraints, as Cognigy's own Extensions set them (8x8's createBasicChildNode): created
 * with its parent, never placed, moved or deleted on its own.
 */
export const CHILD_CONSTRAINTS = {
  editable: false,
  deletable: false,
  creatable: false,
  movable: false,
  placement: { predecessor: { whitelist: [] } },
};

/** Which scope id of the input a value is bound to. */
export type ScopeKind = "sessionId" | "userId";

/**
 * The context key a node's outcome is written to: a dotted context path (empty: the default), not inside an
 * `__enc_` or `__mask_` key, whose envelope or mask it would overwrite.
 */
export function resultKeyOf(value: unknown): string {
  if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
    return DEFAULT_RESULT_KEY;
  }
  const path =
    typeof value === "string" ? parseSource(`context.${value.trim()}`, "the outcome key").path : "";
  const first = path.split(".")[0] ?? "";
  if (path === "" || first.startsWith("__enc_") || first.startsWith("__mask_")) {
    throw new NodeFailure(
      "bad_config",
      "the outcome key must be a dotted context path outside the __enc_ and __mask_ keys",
    );
  }
  return path;
}

/** The call timeout in milliseconds, from the node's number field. */
export function timeoutOf(value: unknown): number {
  if (value === undefined || value === null || value === "") return DEFAULT_TIMEOUT_MS;
  const ms = typeof value === "string" ? Number(value) : value;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < MIN_TIMEOUT_MS || ms > MAX_TIMEOUT_MS) {
    throw new NodeFailure(
      "bad_config",
      `timeout must be a whole number of milliseconds from ${MIN_TIMEOUT_MS} to ${MAX_TIMEOUT_MS}`,
    );
  }
  return ms;
}

/** The Scope message for the input's session or user id. */
export function scopeOf(kind: unknown, input: { sessionId?: unknown; userId?: unknown }): object {
  const which: ScopeKind = kind === "userId" ? "userId" : "sessionId";
  const id = input[which];
  if (typeof id !== "string" || id === "") {
    throw new NodeFailure("missing_scope", `the input has no ${which} to bind the values to`);
  }
  return { [which]: id };
}

/** Makes `type`'s child the next node, as Cognigy's own Extensions do; no child means the flow goes on. */
export function takeBranch(
  api: INodeExecutionAPI,
  childConfigs: readonly TNodeChildConfigs[] | undefined,
  type: string,
): void {
  const child = childConfigs?.find((c) => c.type === type);
  if (child !== undefined) api.setNextNode?.(child.id);
}

/**
 * Records a failure: `{ok: false, reason, message}` at the result key (none when it is undefined), one log
 * line (unless logging is off), and the failure branch. An error that is not a NodeFailure is reported by its class name only.
 */
export function reportFailure(
  api: INodeExecutionAPI,
  childConfigs: readonly TNodeChildConfigs[] | undefined,
  options: { resultKey: string | undefined; failureType: string; nodeLabel: string; log: boolean },
  err: unknown,
): void {
  const failure =
    err instanceof NodeFailure
      ? err
      : new NodeFailure("internal", `unexpected ${err instanceof Error ? err.name : typeof err}`);
  // Each step on its own: one api call that throws must not keep the others from running, nor escape.
  // No outcome key: the one configured is unusable, or writing there would destroy a value.
  const resultKey = options.resultKey;
  if (resultKey !== undefined) {
    quietly(() =>
      api.addToContext?.(
        resultKey,
        { ok: false, reason: failure.reason, message: failure.message },
        "simple",
      ),
    );
  }
  quietly(() => takeBranch(api, childConfigs, options.failureType));
  // The log line last: where the runtime counts it against the run's API calls, only it can be cut off.
  if (options.log) {
    quietly(() =>
      api.log?.("error", `Fieldseal ${options.nodeLabel} failed (${failure.reason}): ${failure.message}`),
    );
  }
}

/** Runs `step`, swallowing what it throws: for the steps whose failure nothing is left to report. */
export function quietly(step: () => void): void {
  try {
    step();
  } catch {
    // Nothing is left to report a failed step with; the flow goes on.
  }
}
