import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealBudget } from "./reveal.js";
import { spellOut } from "./spoken.js";

/**
 * Card brands by issuer identification number (IIN) prefix and card length. Source: Wikipedia, "Payment
 * card number", section "Issuer identification number (IIN)" (table of IIN ranges, as of 2024), which
 * follows the schemes' own publications. 622126-622925 is UnionPay's range co-branded with Discover: the
 * issuer is UnionPay, so it is named UnionPay (all of 62 is). Diners Club US & Canada cards (54, 55) are
 * Mastercards and are named so.
 */
const BRANDS: ReadonlyArray<{
  readonly name: string;
  /** Inclusive prefix ranges; both ends have the same number of digits. */
  readonly ranges: ReadonlyArray<readonly [string, string]>;
  readonly lengths: readonly [number, number];
}> = [
  {
    name: "American Express",
    ranges: [
      ["34", "34"],
      ["37", "37"],
    ],
    lengths: [15, 15],
  },
  {
    name: "Diners Club",
    ranges: [
      ["300", "305"],
      ["3095", "3095"],
      ["36", "36"],
      ["38", "39"],
    ],
    lengths: [14, 19],
  },
  { name: "JCB", ranges: [["3528", "3589"]], lengths: [16, 19] },
  {
    name: "Mastercard",
    ranges: [
      ["2221", "2720"],
      ["51", "55"],
    ],
    lengths: [16, 16],
  },
  { name: "Visa", ranges: [["4", "4"]], lengths: [13, 19] },
  {
    name: "Maestro",
    ranges: [
      ["5018", "5018"],
      ["5020", "5020"],
      ["5038", "5038"],
      ["5893", "5893"],
      ["6304", "6304"],
      ["6759", "6759"],
      ["6761", "6763"],
      ["676770", "676770"],
      ["676774", "676774"],
    ],
    lengths: [12, 19],
  },
  {
    name: "Discover",
    ranges: [
      ["6011", "6011"],
      ["644", "649"],
      ["65", "65"],
    ],
    lengths: [16, 19],
  },
  { name: "UnionPay", ranges: [["62", "62"]], lengths: [16, 19] },
];

/** Card numbers are 12 to 19 digits (ISO/IEC 7812-1 allows 8 to 19; payment cards in use have 12 or more). */
const MIN_DIGITS = 12;
const MAX_DIGITS = 19;
/** What a card mask shows: the last four digits, as printed receipts do (PCI DSS allows at most BIN + last 4). */
const SHOWN = 4;

/** The digits of a card number written with optional spaces or dashes; field_format_invalid otherwise. */
export function cardDigits(value: string): string {
  const digits = value.trim().replace(/[ -]/g, "");
  if (!/^[0-9]+$/.test(digits)) throw formatInvalid("must be digits, optionally grouped by spaces or dashes");
  if (digits.length < MIN_DIGITS || digits.length > MAX_DIGITS) {
    throw formatInvalid(`must have ${MIN_DIGITS} to ${MAX_DIGITS} digits`);
  }
  if (!luhnValid(digits)) throw formatInvalid("fails the Luhn check (a mistyped number)");
  return digits;
}

/** True when the string of digits passes the Luhn (mod 10) check, ISO/IEC 7812-1 Annex B. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** The card's brand from its IIN and length, or undefined when no known range matches. */
export function cardBrand(digits: string): string | undefined {
  for (const brand of BRANDS) {
    if (digits.length < brand.lengths[0] || digits.length > brand.lengths[1]) continue;
    for (const [from, to] of brand.ranges) {
      const prefix = digits.slice(0, from.length);
      if (prefix >= from && prefix <= to) return brand.name;
    }
  }
  return undefined;
}

/** `Visa •••• 1111` / `Visa ending in 1 1 1 1`: the brand and the last four digits, nothing else. */
export function maskCard(value: string): MaskedValue {
  const digits = cardDigits(value);
  const last = digits.slice(digits.length - Math.min(SHOWN, revealBudget(digits.length)));
  const brand = cardBrand(digits);
  return {
    format: "card",
    text: `${brand ?? "Card"} ${HIDDEN} ${last}`,
    speakable: `${brand ?? "card"} ending in ${spellOut(last)}`,
  };
}
