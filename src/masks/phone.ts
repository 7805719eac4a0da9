import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealBudget } from "./reveal.js";
import { spellOut } from "./spoken.js";

/** E.164 numbers have at most 15 digits; fewer than 7 is no dialable number anywhere. */
const MIN_DIGITS = 7;
const MAX_DIGITS = 15;

/**
 * The digits of a phone number written E.164-style or nationally: an optional leading `+`, then digits
 * grouped by spaces, dashes, dots, slashes or parentheses. field_format_invalid otherwise. A `00` prefix is
 * kept as digits (`0049...` is not `+49...`): which prefix dials out depends on the country it is dialled
 * from, so it cannot be rewritten without guessing.
 */
export function phoneDigits(value: string): string {
  const compact = value.trim().replace(/[ ().\-/]/g, "");
  const digits = compact.startsWith("+") ? compact.slice(1) : compact;
  if (!/^[0-9]+$/.test(digits)) {
    throw formatInvalid(
      "must be digits with an optional leading +, grouped by spaces, dashes, dots or parentheses",
    );
  }
  if (digits.length < MIN_DIGITS || digits.length > MAX_DIGITS) {
    throw formatInvalid(`must have ${MIN_DIGITS} to ${MAX_DIGITS} digits`);
  }
  return digits;
}

/** `•••• 1234` / `ending in 1 2 3 4`: the last `last` digits (2 or 4), never more than half of them. */
export function maskPhone(value: string, last: 2 | 4): MaskedValue {
  const digits = phoneDigits(value);
  const tail = digits.slice(digits.length - Math.min(last, revealBudget(digits.length)));
  return { format: "phone", text: `${HIDDEN} ${tail}`, speakable: `ending in ${spellOut(tail)}` };
}
