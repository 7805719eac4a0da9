import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealEnds } from "./reveal.js";
import { spellOut } from "./spoken.js";

/**
 * The value in Unicode NFC without surrounding white space; field_format_invalid when empty or when it is
 * not well-formed UTF-16 (a lone surrogate, which would be sealed and indexed as U+FFFD).
 */
export function genericText(value: string): string {
  if (!value.isWellFormed()) throw formatInvalid("must be valid Unicode text (it holds a lone surrogate)");
  const normal = value.normalize("NFC").trim();
  if (normal.length === 0) throw formatInvalid("must not be empty");
  return normal;
}

/**
 * `AB••••89` / `starting with A B, ending in 8 9`: the first `first` and last `last` characters, shrunk so
 * that together they are at most half the value's visible characters (src/masks/reveal.ts).
 */
export function maskGeneric(value: string, first: number, last: number): MaskedValue {
  const { head, tail } = revealEnds(genericText(value), first, last);
  const said = [
    ...(head === "" ? [] : [`starting with ${spellOut(head)}`]),
    ...(tail === "" ? [] : [`ending in ${spellOut(tail)}`]),
  ];
  return {
    format: "generic",
    text: `${head}${HIDDEN}${tail}`,
    speakable: said.length === 0 ? "hidden" : said.join(", "),
  };
}
