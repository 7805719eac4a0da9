/**
 * Retry timing for Cognigy.AI pushes: `Retry-After` parsing and exponential backoff with full jitter.
 * Pure functions; the client injects its own clock and randomness.
 */

/**
 * Parses a `Retry-After` header value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
 * Returns the delay in milliseconds (never negative; Infinity for more seconds than a safe integer holds),
 * or undefined when the value is missing or malformed.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+$/.test(text)) {
    // More seconds than a safe integer holds is still a wait, the longest there is, not a malformed value.
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) ? ms : Number.POSITIVE_INFINITY;
  }
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; without this check
  // Date.parse would read "-1" as a year.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * Full-jitter backoff: a uniformly random delay in [0, min(cap, base * 2^retry)).
 * `retry` counts from 0 for the first retry. Full jitter spreads concurrent clients out best (fewest
 * collisions after a shared outage), at the cost of sometimes retrying almost at once.
 */
export function fullJitterDelay(retry: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(retry, 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * ceiling);
}
