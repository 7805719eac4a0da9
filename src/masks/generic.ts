import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN, revealEnds } from "./reveal.js";
import { spellOut } from "./spoken.js";

/** The value in Unicode NFC without surrounding white space, as code points; field_format_invalid when empty. */
export function genericChars(value: string): string[] {
  const normal = value.normalize("NFC").trim();
  if (normal.length === 0) throw formatInvalid("must not be empty");
  return Array.from(normal);
}

/**
 * `AB••••89` / `starting with A B, ending in 8 9`: the first `first` and last `last` characters, shrunk so
 * that together they are at most half the value (src/masks/reveal.ts).
 */
export function maskGeneric(value: string, first: number, last: number): MaskedValue {
  const { head, tail } = revealEnds(genericChars(value), first, last);
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
