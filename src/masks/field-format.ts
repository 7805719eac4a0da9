import { FieldsealError, isFieldsealError } from "../errors.js";

/** The mask formats a field can have. docs/masks.md says what each one checks and shows. */
export const FORMAT_NAMES = ["card", "national_id", "email", "phone", "generic"] as const;
export type FormatName = (typeof FORMAT_NAMES)[number];

/** A field's format and its options, as configured (`fields` in the config file). */
export type FieldFormat =
  | { readonly format: "card" }
  | { readonly format: "national_id" }
  | { readonly format: "email" }
  | { readonly format: "phone"; readonly last: 2 | 4 }
  | { readonly format: "generic"; readonly first: number; readonly last: number };

/** Field name → its format. Fields not in it are sealed as they are, with no check and no mask. */
export type FieldFormats = ReadonlyMap<string, FieldFormat>;

/** What may be shown or said of a sealed value without opening it (EncryptFieldsResponse.masked). */
export interface MaskedValue {
  readonly format: FormatName;
  readonly text: string;
  readonly speakable: string;
}

/** The most characters `generic` may be asked to show at either end (the reveal budget shrinks it further). */
export const GENERIC_MAX_END = 8;

/** A value that does not fit its field's format; the message says why without quoting the value. */
export function formatInvalid(why: string): FieldsealError {
  return new FieldsealError("field_format_invalid", why);
}

/**
 * Runs `check` on a value of `field`, turning its field_format_invalid into one that names the field and
 * the format (never the value): `field "card" does not fit its format "card": it fails the Luhn check`.
 */
export function checkedFor<T>(field: string, format: FormatName, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!isFieldsealError(err, "field_format_invalid")) throw err;
    throw new FieldsealError(
      "field_format_invalid",
      `field "${field}" does not fit its format "${format}": it ${err.message}`,
    );
  }
}
