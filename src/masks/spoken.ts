import { visibleCharacters } from "./reveal.js";

/** Spoken forms shared by the mask formats: text a voice bot's speech synthesis reads one sign at a time. */

/**
 * Each visible character (grapheme cluster) as its own word, so "1111" is read "1 1 1 1", never "one
 * thousand one hundred...", and an accented letter stays one word.
 */
export function spellOut(chars: string): string {
  return visibleCharacters(chars).join(" ");
}

/**
 * A domain name as said aloud: "example.co.uk" → "example dot co dot uk", "my-bank.de" → "my dash bank dot de",
 * "xn--p1ai" → "xn dash dash p1ai" (one space between words, however many dashes in a row).
 */
export function sayDomain(domain: string): string {
  return domain
    .split(/([.-])/)
    .filter((part) => part !== "")
    .map((part) => (part === "." ? "dot" : part === "-" ? "dash" : part))
    .join(" ");
}
