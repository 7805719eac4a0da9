import { KEYRING_NAME } from "../engine/names.js";
import { FieldsealError } from "../errors.js";

/**
 * Everything a principal can be allowed to do; each RPC needs exactly one of these per value. A legacy
 * tutorial blob needs `legacy_decrypt` (to open it) or `legacy_rewrap` (to rewrap it) instead of `decrypt` or
 * `rewrap`: its field label sits outside the GCM tag, so anyone can relabel it, and a field grant would be
 * sidestepped by relabelling.
 */
export const OPERATIONS = [
  "encrypt",
  "decrypt",
  "rewrap",
  "rotate",
  "retire",
  "destroy",
  "forget",
  "describe",
  "push",
  "index",
  "legacy_decrypt",
  "legacy_rewrap",
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** Operations on legacy values, whose field label is unauthenticated: a field list can never limit them. */
export const LEGACY_OPERATIONS: ReadonlySet<Operation> = new Set<Operation>([
  "legacy_decrypt",
  "legacy_rewrap",
]);

/**
 * Irreversible operations on a whole keyring or scope, every field at once: a rule with a field list reads
 * as "only these fields", so `"*"` beside a field list leaves them out and naming one beside it is refused.
 */
export const IRREVERSIBLE_OPERATIONS: ReadonlySet<Operation> = new Set<Operation>(["destroy", "forget"]);

/**
 * One allow rule: these operations, on these fields, in these keyrings. An absent list means "any"
 * (`*`). Field lists matter only to operations that name fields (encrypt, decrypt, rewrap, index, and push,
 * whose context keys are fields); keyring lists only to operations that name a keyring.
 */
export interface Grant {
  readonly ops: ReadonlySet<Operation>;
  /** undefined: any field. */
  readonly fields: ReadonlySet<string> | undefined;
  /** undefined: any keyring. */
  readonly keyrings: ReadonlySet<string> | undefined;
}

/** What a single check is about. An absent field or keyring means the request names none. */
export interface Target {
  readonly field?: string | undefined;
  readonly keyring?: string | undefined;
}

/**
 * Deny by default: true only when one grant covers the operation, the field and the keyring. A target
 * without a keyring (listing keyrings, a rewrap to "each value's own keyring") matches any keyring list,
 * because the keyring is checked again once it is known.
 */
export function grants(list: readonly Grant[], op: Operation, target: Target = {}): boolean {
  return list.some(
    (g) =>
      g.ops.has(op) &&
      (g.fields === undefined || target.field === undefined || g.fields.has(target.field)) &&
      (g.keyrings === undefined || target.keyring === undefined || g.keyrings.has(target.keyring)),
  );
}

const ALL: Grant = { ops: new Set(OPERATIONS), fields: undefined, keyrings: undefined };

/**
 * The grant a shorthand scope string stands for; the strings configs have always used keep their meaning.
 * `rotate` has always covered retiring versions and describing keyrings, so it still does; it never covers
 * `destroy` or `forget` (irreversible: each its own scope, or `admin`). `admin` covers everything, legacy values included;
 * `decrypt:<field>` and `rewrap` never cover legacy values: that takes `legacy:decrypt` or `legacy:rewrap`.
 */
export function grantForScope(scope: string): Grant | undefined {
  const only = (...ops: Operation[]): Grant => ({
    ops: new Set(ops),
    fields: undefined,
    keyrings: undefined,
  });
  switch (scope) {
    case "admin":
      return ALL;
    case "encrypt":
      return only("encrypt");
    case "rewrap":
      return only("rewrap");
    case "rotate":
      return only("rotate", "retire", "describe");
    case "destroy":
      return only("destroy", "describe");
    case "forget":
      return only("forget", "describe");
    case "push":
      return only("push");
    case "legacy:decrypt":
      return only("legacy_decrypt");
    case "legacy:rewrap":
      return only("legacy_rewrap");
  }
  // `decrypt:<field>` opens values of a field; `index:<field>` computes blind indexes of a field's values.
  const perField = /^(decrypt|index):(\*|[^\s\0]{1,256})$/.exec(scope);
  if (perField?.[1] === undefined || perField[2] === undefined) return undefined;
  return {
    ops: new Set<Operation>([perField[1] as "decrypt" | "index"]),
    fields: perField[2] === "*" ? undefined : new Set([perField[2]]),
    keyrings: undefined,
  };
}

/**
 * Parses a principal's `scopes` (shorthand) and `allow` (explicit rules) into grants. `at` is the key path
 * of the principal (e.g. `principals[2]`); every error names the exact path of the bad value.
 */
export function parseGrants(scopes: unknown, allow: unknown, at: string): Grant[] {
  const out: Grant[] = [];
  if (scopes !== undefined) {
    for (const [i, scope] of arrayAt(scopes, `${at}.scopes`).entries()) {
      const grant = typeof scope === "string" ? grantForScope(scope) : undefined;
      if (grant === undefined) {
        throw invalid(`${at}.scopes[${i}]`, `unknown scope ${quote(scope)} (expected ${SCOPE_NAMES})`);
      }
      out.push(grant);
    }
  }
  if (allow !== undefined) {
    for (const [i, rule] of arrayAt(allow, `${at}.allow`).entries())
      out.push(parseRule(rule, `${at}.allow[${i}]`));
  }
  return out;
}

/** The shorthand scopes, for messages and help. */
export const SCOPE_NAMES =
  "encrypt, rewrap, rotate, destroy, forget, push, admin, decrypt:<field|*>, index:<field|*>, legacy:decrypt or legacy:rewrap";

function parseRule(rule: unknown, at: string): Grant {
  if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
    throw invalid(at, "must be an object with ops and optionally fields and keyrings");
  }
  const { ops, fields, keyrings, ...rest } = rule as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw invalid(`${at}.${extra}`, "unknown key (expected ops, fields, keyrings)");
  if (ops === undefined) throw invalid(`${at}.ops`, "is required");
  const opList = arrayAt(ops, `${at}.ops`);
  if (opList.length === 0) throw invalid(`${at}.ops`, "must name at least one operation");
  const fieldSet = nameList(fields, `${at}.fields`, /^[^\s\0]{1,256}$/, "a field name");
  const opSet = new Set<Operation>();
  // A field list cannot limit a legacy operation (the label is unauthenticated): "*" with fields means every
  // other operation, and naming a legacy operation beside fields is refused rather than read as "any field".
  const limitedToFields = fieldSet !== undefined;
  for (const [i, op] of opList.entries()) {
    if (op === "*") {
      for (const o of OPERATIONS)
        if (!(limitedToFields && (LEGACY_OPERATIONS.has(o) || IRREVERSIBLE_OPERATIONS.has(o)))) opSet.add(o);
    } else if (limitedToFields && LEGACY_OPERATIONS.has(op as Operation)) {
      throw invalid(
        `${at}.ops[${i}]`,
        `${quote(op)} cannot be limited by fields: a legacy value's field label is unauthenticated (put it in a rule without fields)`,
      );
    } else if (limitedToFields && IRREVERSIBLE_OPERATIONS.has(op as Operation)) {
      throw invalid(
        `${at}.ops[${i}]`,
        `${quote(op)} cannot be limited by fields: it destroys a whole keyring version or scope, every field at once (put it in a rule without fields)`,
      );
    } else if (typeof op === "string" && (OPERATIONS as readonly string[]).includes(op)) {
      opSet.add(op as Operation);
    } else {
      throw invalid(
        `${at}.ops[${i}]`,
        `unknown operation ${quote(op)} (expected ${OPERATIONS.join(", ")} or *)`,
      );
    }
  }
  return {
    ops: opSet,
    fields: fieldSet,
    keyrings: nameList(keyrings, `${at}.keyrings`, KEYRING_NAME, "a keyring name"),
  };
}

/** A list of names, or undefined when absent or when it holds `*`. */
function nameList(raw: unknown, at: string, pattern: RegExp, what: string): ReadonlySet<string> | undefined {
  if (raw === undefined) return undefined;
  const list = arrayAt(raw, at);
  if (list.length === 0) throw invalid(at, `must name at least one (use ["*"] for any)`);
  const names = new Set<string>();
  for (const [i, name] of list.entries()) {
    if (name === "*") return undefined;
    if (typeof name !== "string" || !pattern.test(name))
      throw invalid(`${at}[${i}]`, `${quote(name)} is not ${what}`);
    names.add(name);
  }
  return names;
}

function arrayAt(raw: unknown, at: string): unknown[] {
  if (!Array.isArray(raw)) throw invalid(at, "must be an array");
  return raw;
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function invalid(path: string, why: string): FieldsealError {
  return new FieldsealError("invalid_argument", `${path}: ${why}`);
}
