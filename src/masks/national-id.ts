import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealBudget } from "./reveal.js";
import { spellOut } from "./spoken.js";

const MAX_CHARS = 64;
const SHOWN = 4;

/**
 * A national ID's uppercase letters and digits, its separators (spaces, dashes, dots, slashes) removed:
 * "123-45-6789" → "123456789", "ab 12 34 56 c" → "AB123456C". field_format_invalid when empty, longer
 * than 64 characters, or holding anything else.
 */
export function nationalIdChars(value: string): string {
  const normal = value
    .normalize("NFKC")
    .toUpperCase()
    .replace(/[\s\-./]/g, "");
  if (normal.length === 0) throw formatInvalid("must hold letters or digits");
  if (!/^[A-Z0-9]+$/.test(normal)) {
    throw formatInvalid(
      "must be letters A-Z and digits, optionally separated by spaces, dashes, dots or slashes",
    );
  }
  if (normal.length > MAX_CHARS) throw formatInvalid(`must have at most ${MAX_CHARS} letters and digits`);
  return normal;
}

/** `•••• 6789` / `ending in 6 7 8 9`: the last four characters, never more than half of them. */
export function maskNationalId(value: string): MaskedValue {
  const chars = nationalIdChars(value);
  const tail = chars.slice(chars.length - Math.min(SHOWN, revealBudget(chars.length)));
  return {
    format: "national_id",
    text: tail === "" ? HIDDEN : `${HIDDEN} ${tail}`,
    speakable: tail === "" ? "hidden" : `ending in ${spellOut(tail)}`,
  };
}
