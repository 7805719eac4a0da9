/**
 * Strict decoding of what a webhook sends: the body as UTF-8 JSON or `application/x-www-form-urlencoded`,
 * and header values that carry field names. Node's own decoders (`Buffer#toString`, `URLSearchParams`) turn
 * bytes that are not UTF-8 into U+FFFD without a word, which would seal a value other than the one sent; here
 * such input is refused with a MalformedWebhookError that names the part, never its content.
 */
import { FieldsealError } from "../errors.js";

/** Why a webhook's bytes were refused; stable, for the problem document's `reason`. */
export type MalformedReason =
  | "invalid_utf8"
  | "lone_surrogate"
  | "too_deep"
  | "repeated_header"
  | "inexact_number"
  | "duplicate_name"
  | "no_boundary"
  | "multipart_malformed"
  | "multipart_unterminated"
  | "file_part"
  | "too_many_parts"
  | "part_header_too_large"
  | "field_name_invalid"
  | "session_id_invalid"
  | "field_name_collision"
  | "too_many_fields";

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
export { MAX_VALUE_DEPTH } from "../engine/value-codec.js";

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
 * Parses JSON text after a linear scan refuses what JSON.parse would accept silently but wrongly: nesting past
 * `maxDepth` (refused before anything recurses into it), a number a double cannot hold exactly (JSON.parse
 * rounds `4111111111111111111` to `4111111111111111000` and turns `1e400` into Infinity), and a name twice in
 * one object (JSON.parse keeps the last; another reader of the same bytes may take the first).
 */
export function parseJsonText(text: string, what: string, maxDepth: number): unknown {
  scanJson(text, what, maxDepth);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FieldsealError("invalid_argument", `${what} is not valid JSON`);
  }
  return parsed;
}

/**
 * One pass over `text` (strings skipped, except object member names, which are compared unescaped) that
 * throws MalformedWebhookError for the three cases above. Text that is not JSON passes through to JSON.parse.
 */
function scanJson(text: string, what: string, maxDepth: number): void {
  // One entry per open container: the names seen so far in an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let expectName = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      let escapes = false;
      i += 1;
      while (i < n && text.charCodeAt(i) !== 0x22) {
        if (text.charCodeAt(i) === 0x5c) {
          escapes = true;
          i += 1;
        }
        i += 1;
      }
      const names = open[open.length - 1];
      if (expectName && names) {
        const name = escapes ? unescapeName(text.slice(start, i + 1)) : text.slice(start + 1, i);
        if (name !== undefined) {
          if (names.has(name)) {
            throw new MalformedWebhookError("duplicate_name", `${what} names a member twice in one object`);
          }
          names.add(name);
        }
      }
      expectName = false;
      i += 1;
    } else if (c === 0x7b || c === 0x5b) {
      open.push(c === 0x7b ? new Set() : null);
      if (open.length > maxDepth) {
        throw new MalformedWebhookError("too_deep", `${what} nests deeper than ${maxDepth} levels`);
      }
      expectName = c === 0x7b;
      i += 1;
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      expectName = false;
      i += 1;
    } else if (c === 0x2c) {
      expectName = open[open.length - 1] instanceof Set;
      i += 1;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < n && isNumberChar(text.charCodeAt(end))) end += 1;
      if (!isExactNumber(text.slice(i, end))) {
        throw new MalformedWebhookError(
          "inexact_number",
          `${what} holds a number that a double cannot hold exactly (over 2^53, too many digits, or out of range): send it as a string`,
        );
      }
      i = end;
    } else {
      i += 1;
    }
  }
}

function unescapeName(quoted: string): string | undefined {
  try {
    const name: unknown = JSON.parse(quoted);
    return typeof name === "string" ? name : undefined;
  } catch {
    return undefined; // not a JSON string: JSON.parse refuses the whole text afterwards
  }
}

function isNumberChar(c: number): boolean {
  // digits . + - e E
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2b || c === 0x2d || c === 0x65 || c === 0x45;
}

const JSON_NUMBER = /^(-?)(0|[1-9]\d*)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * True when the JSON number `token` is the value of the double JSON.parse makes of it (or is not a JSON
 * number at all, which JSON.parse refuses). Fifteen or fewer characters without an exponent are always exact.
 */
function isExactNumber(token: string): boolean {
  if (token.length <= 15 && !/[eE]/.test(token)) return true;
  const wanted = decimalKey(token);
  if (wanted === undefined) return true;
  const value = Number(token);
  return Number.isFinite(value) && decimalKey(String(value)) === wanted;
}

/** A number's decimal value as `<sign><digits without leading or trailing zeros>e<exponent>`, or "0". */
function decimalKey(text: string): string | undefined {
  const m = JSON_NUMBER.exec(text);
  if (m === null) return undefined;
  const fraction = m[3] ?? "";
  const all = `${m[2]}${fraction}`;
  // Index loops, not /0+$/: that regex retries from every zero of a long run, quadratic in a 64 KiB token.
  let first = 0;
  while (first < all.length && all.charCodeAt(first) === 0x30) first += 1;
  if (first === all.length) return "0";
  let end = all.length;
  while (all.charCodeAt(end - 1) === 0x30) end -= 1;
  const exponent = Number(m[4] ?? "0") - fraction.length + (all.length - end);
  return `${m[1]}${all.slice(first, end)}e${exponent}`;
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
