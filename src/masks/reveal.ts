/**
 * How much of a value a mask may show. Every format that shows characters of the value goes through
 * `revealBudget`, so no format can show a short value whole.
 */

/** What stands for the hidden characters. Fixed width: a mask does not tell how long the value is. */
export const HIDDEN = "••••";

/**
 * The most characters a mask may show of a value `length` characters long: half of it, rounded down. A
 * value of one character shows nothing, and no value is ever shown whole, whatever a format asks for.
 */
export function revealBudget(length: number): number {
  return Math.floor(length / 2);
}

const GRAPHEMES = new Intl.Segmenter("und", { granularity: "grapheme" });

/**
 * A character a reader sees is an extended grapheme cluster (Unicode UAX #29), not a code point: "x" with
 * six combining accents is one character, and counting it as seven would let the budget show more of the
 * rest. A cluster made only of controls, format characters (bidi overrides, zero-width spaces, BOM) or
 * white space is blank: it is not counted, since padding a value with invisible characters must not widen
 * what its mask shows, and it is never shown, since a bidi override in a mask would reorder the text
 * around it wherever the mask is displayed.
 */
const BLANK = /^[\p{Cc}\p{Cf}\p{Z}]+$/u;
/**
 * Controls and format characters, removed before segmenting (tag characters can spell hidden text inside a
 * cluster); ZWNJ and ZWJ stay, as parts of the clusters they join. Removing them first also keeps the
 * segmenter fast: V8's Intl.Segmenter takes time growing faster than linearly over a run of controls
 * (64 Ki zero-width spaces: seconds), and a value may be all controls.
 */
const INVISIBLE = /(?![\u200c\u200d])[\p{Cc}\p{Cf}]+/gu;
/** Runs of white space, each shown as one space. */
const SPACES = /[\s\p{Z}]+/gu;

/** `text` without controls and format characters, and with one space for each run of white space. */
function visibleText(text: string): string {
  return text.replace(INVISIBLE, "").replace(SPACES, " ");
}
/** A cluster shown is cut to this many code points (a family emoji has 7; "Zalgo" text has hundreds). */
const MAX_CLUSTER = 16;

/** The clusters of `text` from its start. */
function* forward(text: string): Generator<string> {
  for (const s of GRAPHEMES.segment(text)) yield s.segment;
}

/** The clusters of `text` from its end, without segmenting the whole of a long value. */
function* backward(text: string): Generator<string> {
  const segments = GRAPHEMES.segment(text);
  let end = text.length;
  while (end > 0) {
    const s = segments.containing(end - 1);
    if (s === undefined) return;
    yield s.segment;
    end = s.index;
  }
}

/** The first `n` non-blank clusters of `clusters`, cleaned, with single spaces for the blanks between them. */
function take(clusters: Iterable<string>, n: number): string[] {
  const out: string[] = [];
  if (n === 0) return out;
  let taken = 0;
  let gap = false;
  for (const c of clusters) {
    if (BLANK.test(c)) {
      gap ||= /[\s\p{Z}]/u.test(c);
      continue;
    }
    if (gap && out.length > 0) out.push(" ");
    gap = false;
    out.push(firstCodePoints(c, MAX_CLUSTER));
    if (++taken === n) break;
  }
  return out;
}

/** The first `n` code points of `cluster`, without copying a long one whole. */
function firstCodePoints(cluster: string, n: number): string {
  let out = "";
  let i = 0;
  for (const ch of cluster) {
    if (i++ === n) break;
    out += ch;
  }
  return out;
}

/** The characters a speech synthesiser should read one by one: the non-blank clusters of `text`. */
export function visibleCharacters(text: string): string[] {
  return take(forward(visibleText(text)), Number.MAX_SAFE_INTEGER).filter((c) => c !== " ");
}

/**
 * The first `first` and last `last` characters of `text` (clusters, blanks not counted), shrunk to the
 * reveal budget of its non-blank characters: the last ones are kept first (they are what a caller reads
 * back), then the first ones.
 */
export function revealEnds(value: string, first: number, last: number): { head: string; tail: string } {
  const text = visibleText(value);
  // Knowing that there are at least 2 × (first + last) characters is enough to know the budget, so a long
  // value is not segmented to its end (at most about twice that many clusters are read, blanks being single
  // spaces now).
  const enough = 2 * (first + last);
  let count = 0;
  if (enough > 0) {
    for (const c of forward(text)) if (!BLANK.test(c) && ++count >= enough) break;
  }
  const budget = revealBudget(count);
  const tailCount = Math.min(last, budget);
  const headCount = Math.min(first, budget - tailCount);
  return {
    head: take(forward(text), headCount).join(""),
    tail: take(backward(text), tailCount).reverse().join(""),
  };
}
