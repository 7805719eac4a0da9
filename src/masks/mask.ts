import type { JsonValue } from "../engine/json-value.js";
import { maskCard } from "./card.js";
import { maskEmail } from "./email.js";
import {
  checkedFor,
  type FieldFormat,
  type FieldFormats,
  formatInvalid,
  type MaskedValue,
} from "./field-format.js";
import { maskGeneric } from "./generic.js";
import { maskNationalId } from "./national-id.js";
import { maskPhone } from "./phone.js";

/**
 * Checks `value` against the field's format and computes its mask. A value that does not fit (or is not a
 * string) fails with field_format_invalid; the message names the field and the format, never the value.
 */
export function maskValue(field: string, format: FieldFormat, value: JsonValue): MaskedValue {
  return checkedFor(field, format.format, () => {
    if (typeof value !== "string") throw formatInvalid("must be a string");
    switch (format.format) {
      case "card":
        return maskCard(value);
      case "national_id":
        return maskNationalId(value);
      case "email":
        return maskEmail(value);
      case "phone":
        return maskPhone(value, format.last);
      case "generic":
        return maskGeneric(value, format.first, format.last);
    }
  });
}

/**
 * The masks of the fields that have a format, checking each; fields without one are skipped untouched
 * (no work at all when no field has a format). The first value that does not fit fails the whole call.
 */
export function maskFields(
  formats: FieldFormats,
  fields: ReadonlyArray<readonly [string, JsonValue]>,
): Map<string, MaskedValue> {
  const masked = new Map<string, MaskedValue>();
  if (formats.size === 0) return masked;
  for (const [field, value] of fields) {
    const format = formats.get(field);
    if (format !== undefined) masked.set(field, maskValue(field, format, value));
  }
  return masked;
}
