/**
 * Strict decoding of what a webhook sends: the body as UTF-8 JSON or `application/x-www-form-urlencoded`,
 * and header values that carry field names. Node's own decoders (`Buffer#toString`, `URLSearchParams`) turn
 * bytes that are not UTF-8 into U+FFFD without a word, which would seal a value other than the one sent; here
 * such input is refused with a MalformedWebhookError that names the part, never its content.
 */
import { FieldsealError } from "../errors.js";

/** Why a webhook's bytes were refused; stable, for the problem document's `reason`. */
export type MalformedReason = "invalid_utf8" | "lone_surrogate" | "too_deep" | "repeated_header";

/** A body or header that cannot be decoded; answered 400 with `reason`. */
export class MalformedWebhookError extends FieldsealError {
  readonly reason: MalformedReason;

  constructor(reason: MalformedReason, message: string) {
    super("invalid_argument", message);
    this.reason = reason;
  }
}

/**
 * The deepest nesting of a sealed value the engine accepts (src/engine/value-codec.ts); a webhook body
 * holds values two levels down (body → variables → value), a form's `variables` text one level down.
 */
export const MAX_VALUE_DEPTH = 64;

// fatal: refuse instead of replacing; ignoreBOM: a leading U+FEFF stays in the text (and JSON refuses it).
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes `bytes` as strict UTF-8; `what` names the part in the error ("body", "X-Sensitive-Metadata"). */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new MalformedWebhookError("invalid_utf8", `${what} is not valid UTF-8`);
  }
}

/**
 * A header value as the UTF-8 text its bytes spell. Node hands header values over as latin1 (one char per
 * byte), so a UTF-8 field name arrives as mojibake and invalid bytes arrive unnoticed; this re-reads them.
 */
export function decodeHeaderUtf8(value: string, what: string): string {
  // Only one-byte chars can come off the wire; anything wider was decoded already and must be well-formed.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the whole latin1 plane on purpose
  if (!/^[\u0000-\u00ff]*$/.test(value)) {
    if (!value.isWellFormed()) {
      throw new MalformedWebhookError("lone_surrogate", `${what} contains a lone surrogate`);
    }
    return value;
  }
  return decodeUtf8(Buffer.from(value, "latin1"), what);
}

/**
 * Parses JSON text after checking its nesting with a linear scan, so text nested past `maxDepth` is
 * refused before JSON.parse or anything after it recurses into it.
 */
export function parseJsonText(text: string, what: string, maxDepth: number): unknown {
  if (nestingExceeds(text, maxDepth)) {
    throw new MalformedWebhookError("too_deep", `${what} nests deeper than ${maxDepth} levels`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FieldsealError("invalid_argument", `${what} is not valid JSON`);
  }
  return parsed;
}

/** True when arrays and objects in `text` (strings skipped) open more than `max` levels deep. */
function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth += 1;
      if (depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth -= 1;
    }
  }
  return false;
}

/**
 * Parses an `application/x-www-form-urlencoded` body as the WHATWG URL standard does (`&`-separated
 * `name=value`, `+` is a space, `%XX` a byte, a `%` not followed by two hex digits stays as it is), except
 * that the body and every percent-decoded name and value must be UTF-8.
 */
export function parseFormBody(body: Uint8Array): Array<[string, string]> {
  const text = decodeUtf8(body, "body");
  const pairs: Array<[string, string]> = [];
  for (const part of text.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = eq === -1 ? part : part.slice(0, eq);
    const value = eq === -1 ? "" : part.slice(eq + 1);
    pairs.push([percentDecode(name), percentDecode(value)]);
  }
  return pairs;
}

function percentDecode(raw: string): string {
  const plus = raw.replaceAll("+", " ");
  if (!plus.includes("%")) return plus;
  const bytes = Buffer.from(plus, "utf8");
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b === 0x25 && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out[n++] = Number.parseInt(String.fromCharCode(bytes[i + 1] as number, bytes[i + 2] as number), 16);
      i += 2;
    } else {
      out[n++] = b;
    }
  }
  return decodeUtf8(out.subarray(0, n), "a percent-encoded form name or value");
}

function isHex(b: number | undefined): boolean {
  return (
    b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66))
  );
}
