import type { JsonValue } from "../engine/json-value.js";
import { cardDigits } from "./card.js";
import { emailParts } from "./email.js";
import { checkedFor, type FieldFormat, formatInvalid } from "./field-format.js";
import { genericText } from "./generic.js";
import { nationalIdChars } from "./national-id.js";
import { phoneDigits } from "./phone.js";

/**
 * The normal form of a value for its blind index, by the field's format (a field without one is `generic`),
 * so that the ways one value is written give one index. docs/security.md ("Blind indexes") lists the rules;
 * clients/python and clients/go implement the same ones, checked by test/vectors/indexes.json.
 *
 * - card: the digits (and the value must be a valid card number, as when sealing);
 * - email: the address without surrounding white space, with ASCII letters lowercased in both parts;
 * - phone: the digits, without a leading `+`;
 * - national_id: uppercase letters and digits, separators removed (Unicode NFKC first);
 * - generic: Unicode NFC, without surrounding white space.
 *
 * A value that does not fit fails with field_format_invalid, naming the field and format only.
 */
export function normalizeForIndex(field: string, format: FieldFormat | undefined, value: JsonValue): string {
  const name = format?.format ?? "generic";
  return checkedFor(field, name, () => {
    if (typeof value !== "string") throw formatInvalid("must be a string");
    switch (name) {
      case "card":
        return cardDigits(value);
      case "phone":
        return phoneDigits(value);
      case "national_id":
        return nationalIdChars(value);
      case "email":
        emailParts(value);
        return asciiLower(value.trim());
      case "generic":
        return genericText(value);
    }
  });
}

/**
 * Lowercases A-Z only. The local part of an address is case-sensitive by RFC 5321, but no mail provider in
 * use treats it so, and a lookup must find `Jane@` from `jane@`. Other scripts are left as written: Unicode
 * case mapping differs between languages' libraries (Go's has no special casing), and every client must
 * compute the same index.
 */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}
