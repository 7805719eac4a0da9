import { NodeFailure } from "./failure.js";

/** Where a value is read from: the session context or the current input, and the dotted path inside it. */
export interface ValueSource {
  readonly root: "context" | "input";
  /** The path without its root, as Cognigy's context API takes it: `payment.card`. */
  readonly path: string;
  readonly segments: readonly string[];
}

/** Names that reach an object's prototype when used as a key. */
export const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(["__proto__", "prototype", "constructor"]);

/**
 * Parses `context.<path>`, `input.text`, `input.data.<path>` or `input.slots.<path>` (any `input.<path>`):
 * dot-separated, no empty segment, none of the names that reach an object's prototype. `what` names the
 * setting in a refusal, which never quotes the text: Cognigy resolves CognigyScript in node settings
 * (@cognigy/extension-tools' README shows a cognigyText field defaulting to `{{input.text}}`), so a careless
 * `{{context.card}}` there arrives as the value itself.
 */
export function parseSource(text: string, what: string): ValueSource {
  const segments = text.split(".");
  const root = segments.shift();
  if (root !== "context" && root !== "input") {
    throw new NodeFailure("bad_config", `${what} must start with "context." or "input."`);
  }
  if (segments.length === 0 || segments.some((s) => s === "" || FORBIDDEN_SEGMENTS.has(s))) {
    throw new NodeFailure("bad_config", `${what} is not a dotted path such as context.credit_card`);
  }
  return { root, path: segments.join("."), segments };
}

/** Whether one dotted context path is the other or lies inside it: writing one changes the other. */
export function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

/** The value at `segments` inside `root`, or undefined when any step is missing. Own properties only. */
export function readPath(root: unknown, segments: readonly string[]): unknown {
  let node: unknown = root;
  for (const segment of segments) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}
