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

/**
 * The first `first` and last `last` characters (code points) of `chars`, shrunk to the reveal budget:
 * the last ones are kept first (they are what a caller reads back), then the first ones.
 */
export function revealEnds(
  chars: readonly string[],
  first: number,
  last: number,
): { head: string; tail: string } {
  const budget = revealBudget(chars.length);
  const tailCount = Math.min(last, budget);
  const headCount = Math.min(first, budget - tailCount);
  return {
    head: chars.slice(0, headCount).join(""),
    tail: tailCount === 0 ? "" : chars.slice(chars.length - tailCount).join(""),
  };
}
