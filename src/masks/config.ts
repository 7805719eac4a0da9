import { assertAadPart, KEYRING_NAME } from "../engine/names.js";
import { FieldsealError } from "../errors.js";
import {
  type FieldFormat,
  type FieldFormats,
  FORMAT_NAMES,
  type FormatName,
  GENERIC_MAX_END,
} from "./field-format.js";

/** Options each format accepts besides `format`. */
const OPTIONS: Record<FormatName, readonly string[]> = {
  card: [],
  national_id: [],
  email: [],
  phone: ["last"],
  generic: ["first", "last"],
};

/**
 * Parses the `fields` setting: an object of field name to `{"format": ..., options}`, from the config file
 * or a JSON string (the environment variable). `at` names the setting in errors.
 */
export function parseFieldFormats(raw: unknown, at: string): FieldFormats {
  const formats = new Map<string, FieldFormat>();
  if (raw === undefined || raw === null) return formats;
  let parsed = raw;
  if (typeof raw === "string") {
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw invalid(at, 'must be a JSON object of field name to {"format": ...}');
    }
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalid(at, 'must be an object of field name to {"format": ...}');
  }
  for (const [field, spec] of Object.entries(parsed)) {
    try {
      assertAadPart("field name", field);
    } catch (err) {
      throw invalid(at, (err as Error).message);
    }
    // Names are matched exactly (docs/masks.md): "credit_card " would silently never apply, and no
    // `decrypt:`/`index:` grant can name a field with white space (src/auth/policy.ts) either.
    if (/\s/.test(field)) {
      throw invalid(at, `field name ${JSON.stringify(field.slice(0, 70))} holds white space`);
    }
    formats.set(field, parseOne(spec, `${at}.${field}`));
  }
  return formats;
}

/**
 * Parses `keyringFields`: keyring name → its own `fields` map, each merged over the global one (a field
 * named in both takes the keyring's format). Keyrings not named use the global map.
 */
export function parseKeyringFieldFormats(
  raw: unknown,
  global: FieldFormats,
  at: string,
): ReadonlyMap<string, FieldFormats> {
  const out = new Map<string, FieldFormats>();
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw invalid(at, 'must be an object of keyring name to {"<field>": {"format": ...}}');
  }
  for (const [keyring, fields] of Object.entries(raw)) {
    if (!KEYRING_NAME.test(keyring))
      throw invalid(at, `${JSON.stringify(keyring.slice(0, 70))} is not a keyring name`);
    out.set(keyring, new Map([...global, ...parseFieldFormats(fields, `${at}.${keyring}`)]));
  }
  return out;
}

function parseOne(spec: unknown, at: string): FieldFormat {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw invalid(at, 'must be an object such as {"format": "card"}');
  }
  const { format, ...options } = spec as Record<string, unknown>;
  if (typeof format !== "string" || !(FORMAT_NAMES as readonly string[]).includes(format)) {
    throw invalid(`${at}.format`, `must be one of ${FORMAT_NAMES.join(", ")}`);
  }
  const name = format as FormatName;
  const extra = Object.keys(options).find((k) => !OPTIONS[name].includes(k));
  if (extra !== undefined) {
    const allowed = OPTIONS[name].length === 0 ? "none" : OPTIONS[name].join(", ");
    throw invalid(`${at}.${extra}`, `unknown option for format ${name} (options: ${allowed})`);
  }
  switch (name) {
    case "phone": {
      const last = options.last ?? 4;
      if (last !== 2 && last !== 4) throw invalid(`${at}.last`, "must be 2 or 4");
      return { format: name, last };
    }
    case "generic":
      return {
        format: name,
        first: count(options.first ?? 0, `${at}.first`),
        last: count(options.last ?? 4, `${at}.last`),
      };
    default:
      return { format: name };
  }
}

function count(v: unknown, at: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > GENERIC_MAX_END) {
    throw invalid(at, `must be a whole number from 0 to ${GENERIC_MAX_END}`);
  }
  return v;
}

function invalid(at: string, why: string): FieldsealError {
  return new FieldsealError("invalid_argument", `config: ${at}: ${why}`);
}
