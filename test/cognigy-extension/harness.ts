/**
 * A stand-in for the Cognigy.AI runtime around one Extension node run: the `cognigy` object a node function
 * receives (input, context, profile, and the `api` methods the Fieldseal nodes call, typed by
 * @cognigy/extension-tools' INodeExecutionAPI), recording every call. addToContext and deleteContext work on
 * dotted paths, as Cognigy documents (`addToContext("user.city", ...)`, `deleteContext("user.location")`).
 * Like Cognigy, it refuses the 11th api call of a run (api.log is not counted) and an argument larger than
 * 62 KB (docs.cognigy.com/ai/for-developers/extensions), recording each refusal in `limitErrors`.
 */
import type {
  ICognigyInputProperties,
  INodeExecutionAPI,
  INodeExecutionCognigyObject,
  ISensitiveLoggingSettings,
  TNodeChildConfigs,
} from "../../clients/cognigy-extension/src/cognigy-api.js";

/** One recorded api call: its method name and arguments. */
export interface ApiCall {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** The api methods the nodes use; each one is implemented, none is optional here. */
type UsedApi = Required<
  Pick<
    INodeExecutionAPI,
    "addToContext" | "deleteContext" | "setSensitiveLoggingSettings" | "setNextNode" | "log"
  >
>;

export interface CognigyRun {
  readonly cognigy: INodeExecutionCognigyObject;
  readonly context: Record<string, unknown>;
  readonly calls: ApiCall[];
  /** The ids passed to setNextNode, in order. */
  readonly nextNodes: string[];
  readonly logs: Array<{ level: string; text: string }>;
  readonly sensitiveLogging: ISensitiveLoggingSettings[];
  /** The calls refused for Cognigy's limits: more than 10 api calls, or an argument over 62 KB. */
  readonly limitErrors: string[];
}

/** Cognigy's limits on one Extension run, as the harness enforces them. */
export const HARNESS_MAX_API_CALLS = 10;
export const HARNESS_MAX_ARGUMENT_BYTES = 62_000;

/** The child configs Cognigy passes a node with On success / On failure children. */
export function children(successType: string, failureType: string): TNodeChildConfigs[] {
  return [
    { id: "child-success", type: successType, config: {} },
    { id: "child-failure", type: failureType, config: {} },
  ];
}

/**
 * A fresh run with the given input and context (the context object is the one the node's api changes).
 * `failWhen` makes an api call throw after it is recorded, as a runtime refusing a write would.
 * `countLog` counts api.log against the 10 calls too, as a runtime reading "10 API calls" without
 * Cognigy's newer exception would.
 */
export function cognigyRun(
  input: ICognigyInputProperties,
  context: Record<string, unknown> = {},
  failWhen: (method: string, args: readonly unknown[]) => boolean = () => false,
  options: { countLog?: boolean } = {},
): CognigyRun {
  const calls: ApiCall[] = [];
  const nextNodes: string[] = [];
  const logs: Array<{ level: string; text: string }> = [];
  const sensitiveLogging: ISensitiveLoggingSettings[] = [];
  const limitErrors: string[] = [];
  let counted = 0;
  const record = (method: string, args: unknown[]) => {
    calls.push({ method, args });
    if (method !== "log" || options.countLog === true) {
      counted += 1;
      const size = Buffer.byteLength(JSON.stringify(args) ?? "", "utf8");
      const refusal =
        counted > HARNESS_MAX_API_CALLS
          ? `${method}: api call ${counted} of a run allowed ${HARNESS_MAX_API_CALLS}`
          : size > HARNESS_MAX_ARGUMENT_BYTES
            ? `${method}: argument of ${size} bytes`
            : undefined;
      if (refusal !== undefined) {
        limitErrors.push(refusal);
        throw new Error(`harness: ${refusal}`);
      }
    }
    if (failWhen(method, args)) throw new Error(`harness: ${method} refused`);
  };
  const api: UsedApi = {
    addToContext(key, value, mode) {
      record("addToContext", [key, value, mode]);
      if (mode !== "simple") throw new Error(`harness: mode ${mode} not used by the nodes`);
      setPath(context, key, value);
    },
    deleteContext(key) {
      record("deleteContext", [key]);
      unsetPath(context, key);
    },
    setSensitiveLoggingSettings(settings, traceId) {
      record("setSensitiveLoggingSettings", [settings, traceId]);
      sensitiveLogging.push(settings);
    },
    setNextNode(nodeId) {
      record("setNextNode", [nodeId]);
      nextNodes.push(nodeId);
    },
    log(level, text) {
      record("log", [level, text]);
      logs.push({ level, text });
    },
  };
  return {
    cognigy: { api, input, context, profile: {} },
    context,
    calls,
    nextNodes,
    logs,
    sensitiveLogging,
    limitErrors,
  };
}

function setPath(root: Record<string, unknown>, key: string, value: unknown): void {
  const segments = key.split(".");
  const last = segments.pop() as string;
  let node = root;
  for (const segment of segments) {
    const next = node[segment];
    if (next === null || typeof next !== "object") node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  }
  node[last] = value;
}

function unsetPath(root: Record<string, unknown>, key: string): void {
  const segments = key.split(".");
  const last = segments.pop() as string;
  let node: unknown = root;
  for (const segment of segments) {
    if (node === null || typeof node !== "object") return;
    node = (node as Record<string, unknown>)[segment];
  }
  if (node !== null && typeof node === "object") delete (node as Record<string, unknown>)[last];
}
