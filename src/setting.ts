import { FieldsealError } from "./errors.js";

/**
 * One setting, declared once: where it is read from, how it is parsed and bounded, its default and its help.
 * src/config.ts declares every setting this way; parsing, `fieldseal --help` and the README's settings
 * table all read the same declaration.
 */
export interface Setting<T> {
  /** Environment variable, or undefined for a setting read from the config file only. */
  readonly env: string | undefined;
  /** Dotted config-file key path, or undefined for a setting read from the environment only. */
  readonly file: string | undefined;
  readonly description: string;
  /** The default as shown in `--help` and the README. */
  readonly shownDefault: string;
  /** Its value is a secret: the config file holding it must be private (0600 or 0400), errors never quote it. */
  readonly secret: boolean;
  /**
   * A valid value other than the default, as the config file would hold it (the environment holds its
   * `String()`); tests read every setting from both places with it.
   */
  readonly example: unknown;
  /**
   * The setting's value from its raw value (undefined when unset). Throws a FieldsealError whose message
   * says what is wrong, either bare ("must be ...", the reader adds the setting's names) or complete
   * (starting "config: ").
   */
  readonly parse: (raw: unknown) => T;
}

interface Names {
  readonly env: string | undefined;
  readonly file: string | undefined;
  readonly description: string;
}

/** What the raw value failed: the reader (src/config.ts) adds the setting's env and file names. */
export function refusal(why: string): FieldsealError {
  return new FieldsealError("invalid_argument", why);
}

/** A whole number from min to max. */
export function intSetting(
  d: Names & {
    readonly default: number;
    readonly min: number;
    readonly max: number;
    readonly shownDefault?: string;
    readonly example?: number;
    /** A further rule, as a reason when broken. */
    readonly check?: (n: number) => string | undefined;
  },
): Setting<number> {
  return {
    env: d.env,
    file: d.file,
    description: d.description,
    shownDefault: d.shownDefault ?? String(d.default),
    secret: false,
    example: d.example ?? (d.default === d.max ? d.min : d.max),
    parse(raw) {
      if (raw === undefined || raw === null) return d.default;
      const n =
        typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < d.min || n > d.max) {
        throw refusal(`must be a whole number from ${d.min} to ${d.max}`);
      }
      const why = d.check?.(n);
      if (why !== undefined) throw refusal(why);
      return n;
    },
  };
}

/** true or false ("true"/"1", "false"/"0" in the environment); `default` may be undefined to let the caller decide. */
export function boolSetting<D extends boolean | undefined>(
  d: Names & { readonly default: D; readonly shownDefault?: string },
): Setting<boolean | D> {
  return {
    env: d.env,
    file: d.file,
    description: d.description,
    shownDefault: d.shownDefault ?? String(d.default),
    secret: false,
    example: d.default !== true,
    parse(raw) {
      if (raw === undefined || raw === null) return d.default;
      if (raw === true || raw === "true" || raw === "1") return true;
      if (raw === false || raw === "false" || raw === "0") return false;
      throw refusal("must be true or false");
    },
  };
}

/** One of a fixed set of words; `default` may be undefined to let the caller decide. */
export function oneOfSetting<T extends string, D extends T | undefined>(
  d: Names & { readonly values: readonly T[]; readonly default: D; readonly shownDefault?: string },
): Setting<T | D> {
  const example = d.values.find((v) => v !== d.default);
  return {
    env: d.env,
    file: d.file,
    description: d.description,
    shownDefault: d.shownDefault ?? d.default ?? "-",
    secret: false,
    example,
    parse(raw) {
      if (raw === undefined || raw === null) return d.default;
      if (typeof raw !== "string" || !(d.values as readonly string[]).includes(raw)) {
        throw refusal(`must be one of ${d.values.join(", ")}`);
      }
      return raw as T;
    },
  };
}

/** A string, optional unless a default is given; `check` adds a rule. */
export function stringSetting<D extends string | undefined>(
  d: Names & {
    readonly default: D;
    readonly shownDefault?: string;
    readonly example: string;
    readonly secret?: boolean;
    readonly check?: (s: string) => string | undefined;
  },
): Setting<string | D> {
  return {
    env: d.env,
    file: d.file,
    description: d.description,
    shownDefault: d.shownDefault ?? d.default ?? "-",
    secret: d.secret ?? false,
    example: d.example,
    parse(raw) {
      if (raw === undefined || raw === null) return d.default;
      if (typeof raw !== "string") throw refusal("must be a string");
      const why = d.check?.(raw);
      if (why !== undefined) throw refusal(why);
      return raw;
    },
  };
}

/** A structured setting (an object or array in the config file), with its own parser and messages. */
export function structuredSetting<T>(
  d: Names & {
    readonly shownDefault: string;
    readonly example: unknown;
    readonly secret?: boolean;
    readonly parse: (raw: unknown) => T;
  },
): Setting<T> {
  return {
    env: d.env,
    file: d.file,
    description: d.description,
    shownDefault: d.shownDefault,
    secret: d.secret ?? false,
    example: d.example,
    parse: d.parse,
  };
}
