import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealBudget } from "./reveal.js";
import { spellOut } from "./spoken.js";

const MAX_CHARS = 64;
const SHOWN = 4;

/**
 * A national ID's letters and digits, uppercased, its separators (spaces, dashes, dots, slashes) removed:
 * "123-45-6789" → "123456789", "ab 12 34 56 c" → "AB123456C" (after Unicode NFKC, so full-width forms count
 * as ASCII). field_format_invalid when empty, longer than 64 characters, or holding anything but A-Z, a-z
 * and 0-9: only ASCII is uppercased, because Unicode case mapping differs between languages' libraries
 * ("ß" is "SS" in JavaScript and Python, "ß" in Go) and every client must normalise alike.
 */
export function nationalIdChars(value: string): string {
  const compact = value.normalize("NFKC").replace(/[\s\-./]/g, "");
  if (compact.length === 0) throw formatInvalid("must hold letters or digits");
  if (!/^[A-Za-z0-9]+$/.test(compact)) {
    throw formatInvalid(
      "must be letters A-Z and digits, optionally separated by spaces, dashes, dots or slashes",
    );
  }
  if (compact.length > MAX_CHARS) throw formatInvalid(`must have at most ${MAX_CHARS} letters and digits`);
  return compact.toUpperCase();
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
