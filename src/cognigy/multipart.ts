/**
 * A strict, bounded reader of `multipart/form-data` bodies (RFC 7578 over RFC 2046 §5.1), which Cognigy's HTTP
 * Request node sends for its "Form-Data" payload type. It yields `[name, value]` pairs like the urlencoded
 * form reader (webhook-body.ts), so the webhook applies one set of field rules to both.
 *
 * What it accepts: the boundary from the content type; the body starting with the first delimiter (no
 * preamble); parts with a `Content-Disposition: form-data; name=...` header and at most a `Content-Type` of
 * text/plain or application/json in UTF-8 (and a no-op `Content-Transfer-Encoding`); strict UTF-8 names and
 * values; the close delimiter, then nothing but line ends and white space. What it refuses, each with a
 * MalformedWebhookError `reason`: no boundary, a missing or unterminated delimiter, a part header that is
 * malformed, folded, repeated or larger than the limit, more parts than the limit, a file part (a
 * `filename`: a webhook seals variables, not uploads), anything else after the close delimiter.
 * Every step is a bounded `indexOf` over the body, so its cost is linear in the body size.
 */
import { decodeUtf8, MalformedWebhookError } from "./webhook-body.js";

/** Bounds on one multipart body beyond the body size limit the webhook already applies. */
export interface MultipartLimits {
  /** Most parts in one body. */
  maxParts: number;
  /** Most bytes in one part's header block, line ends included. */
  maxPartHeaderBytes: number;
}

export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = { maxParts: 64, maxPartHeaderBytes: 1024 };

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

/**
 * The `boundary` parameter of a multipart content type: 1 to 70 characters of RFC 2046's `bchars`, not
 * ending in a space, as a token or a quoted string. Throws MalformedWebhookError("no_boundary") otherwise.
 */
export function multipartBoundary(contentType: string): string {
  const semi = contentType.indexOf(";");
  const boundary =
    semi === -1 ? undefined : parseParams(contentType.slice(semi + 1), "no_boundary").get("boundary");
  if (boundary === undefined) {
    throw new MalformedWebhookError("no_boundary", "multipart/form-data needs a boundary parameter");
  }
  if (!/^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/.test(boundary)) {
    throw new MalformedWebhookError(
      "no_boundary",
      "the multipart boundary must be 1 to 70 characters of RFC 2046's set, not ending in a space",
    );
  }
  return boundary;
}

/** The `[name, value]` pairs of a multipart/form-data body, in order; throws MalformedWebhookError. */
export function parseMultipartForm(
  body: Uint8Array,
  boundary: string,
  limits: MultipartLimits = DEFAULT_MULTIPART_LIMITS,
): Array<[string, string]> {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const dash = Buffer.from(`--${boundary}`, "latin1");
  const delimiter = Buffer.concat([CRLF, dash]);
  if (!bytes.subarray(0, dash.length).equals(dash)) {
    throw new MalformedWebhookError(
      "multipart_malformed",
      "a multipart body must start with its first boundary delimiter",
    );
  }
  const pairs: Array<[string, string]> = [];
  let at = dash.length;
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise optional white space (RFC 2046 transport padding),
    // then CRLF and a part.
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) {
      assertEpilogue(bytes.subarray(at + 2));
      return pairs;
    }
    while (bytes[at] === 0x20 || bytes[at] === 0x09) at += 1;
    if (bytes[at] !== 0x0d || bytes[at + 1] !== 0x0a) {
      throw new MalformedWebhookError(
        at >= bytes.length ? "multipart_unterminated" : "multipart_malformed",
        at >= bytes.length
          ? "the multipart body ends before its close delimiter"
          : "a multipart boundary delimiter must be followed by a line end or --",
      );
    }
    at += 2;
    if (pairs.length === limits.maxParts) {
      throw new MalformedWebhookError(
        "too_many_parts",
        `the multipart body has more than ${limits.maxParts} parts`,
      );
    }
    // An empty header block ends right away ("\r\n" at the start); otherwise at the first blank line.
    let headerEnd: number;
    let contentStart: number;
    if (bytes[at] === 0x0d && bytes[at + 1] === 0x0a) {
      headerEnd = at;
      contentStart = at + 2;
    } else {
      const end = bytes.indexOf(HEADER_END, at);
      if (end === -1 || end + 2 - at > limits.maxPartHeaderBytes) {
        if (end === -1 && bytes.length - at <= limits.maxPartHeaderBytes) {
          throw new MalformedWebhookError(
            "multipart_unterminated",
            "the multipart body ends inside a part's headers",
          );
        }
        throw new MalformedWebhookError(
          "part_header_too_large",
          `a multipart part's headers exceed ${limits.maxPartHeaderBytes} bytes`,
        );
      }
      headerEnd = end + 2;
      contentStart = end + 4;
    }
    const name = partName(bytes.subarray(at, headerEnd));
    const next = bytes.indexOf(delimiter, contentStart);
    if (next === -1) {
      throw new MalformedWebhookError(
        "multipart_unterminated",
        "the multipart body ends before its close delimiter",
      );
    }
    pairs.push([name, decodeUtf8(bytes.subarray(contentStart, next), "a multipart part's value")]);
    at = next + delimiter.length;
  }
}

/** After the close delimiter only line ends and white space may follow (RFC 2046 allows an epilogue; a
 * webhook has no use for one, and text there would be read differently by another parser). */
function assertEpilogue(rest: Uint8Array): void {
  for (const b of rest) {
    if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x09) {
      throw new MalformedWebhookError(
        "multipart_malformed",
        "nothing but line ends may follow the multipart close delimiter",
      );
    }
  }
}

/** Reads a part's header block (CRLF-terminated lines) and returns its form field name. */
function partName(block: Uint8Array): string {
  const text = decodeUtf8(block, "a multipart part's headers");
  let name: string | undefined;
  const seen = new Set<string>();
  for (const line of text.split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    // RFC 7578 §4.8 leaves no room for folded or nameless header lines; a bare CR or LF is refused too.
    if (colon <= 0 || /^[ \t]/.test(line) || /[\r\n]/.test(line)) {
      throw new MalformedWebhookError("multipart_malformed", "a multipart part has a malformed header line");
    }
    const field = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (seen.has(field)) {
      throw new MalformedWebhookError("multipart_malformed", "a multipart part repeats a header");
    }
    seen.add(field);
    if (field === "content-disposition") {
      name = dispositionName(value);
    } else if (field === "content-type") {
      assertTextPart(value);
    } else if (field === "content-transfer-encoding") {
      // RFC 7578 §4.7: deprecated; only the identity encodings leave the bytes as they are.
      if (!["7bit", "8bit", "binary"].includes(value.toLowerCase())) {
        throw new MalformedWebhookError(
          "multipart_malformed",
          "a multipart part's Content-Transfer-Encoding must be 7bit, 8bit or binary",
        );
      }
    } else {
      throw new MalformedWebhookError(
        "multipart_malformed",
        "a multipart part may carry only Content-Disposition, Content-Type and Content-Transfer-Encoding",
      );
    }
  }
  if (name === undefined) {
    throw new MalformedWebhookError(
      "multipart_malformed",
      "every multipart part needs Content-Disposition: form-data with a name",
    );
  }
  return name;
}

function dispositionName(value: string): string {
  const semi = value.indexOf(";");
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (type !== "form-data") {
    throw new MalformedWebhookError(
      "multipart_malformed",
      "a multipart part's disposition must be form-data",
    );
  }
  const params = parseParams(semi === -1 ? "" : value.slice(semi + 1), "multipart_malformed");
  if (params.has("filename") || params.has("filename*")) {
    throw new MalformedWebhookError(
      "file_part",
      "a multipart part is a file upload: send variables as plain form fields",
    );
  }
  for (const key of params.keys()) {
    if (key !== "name") {
      throw new MalformedWebhookError(
        "multipart_malformed",
        "a multipart part's disposition may carry only a name",
      );
    }
  }
  const name = params.get("name");
  if (name === undefined || name === "") {
    throw new MalformedWebhookError("multipart_malformed", "a multipart part's disposition has no name");
  }
  return name;
}

/** Part content types: text in UTF-8 (a value) or JSON (the `variables` text); anything else is refused. */
function assertTextPart(value: string): void {
  const semi = value.indexOf(";");
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = parseParams(semi === -1 ? "" : value.slice(semi + 1), "multipart_malformed");
  const charset = params.get("charset")?.toLowerCase();
  if (
    (type !== "text/plain" && type !== "application/json") ||
    (charset !== undefined && charset !== "utf-8" && charset !== "utf8")
  ) {
    throw new MalformedWebhookError(
      "multipart_malformed",
      "a multipart part's Content-Type must be text/plain or application/json in UTF-8",
    );
  }
}

/**
 * `; key=value` parameters (RFC 9110 §5.6.6: token or quoted-string; keys case-insensitive). A key given
 * twice, a parameter without `=`, or a quoted string left open is refused with `reason`.
 */
function parseParams(text: string, reason: "no_boundary" | "multipart_malformed"): Map<string, string> {
  const params = new Map<string, string>();
  let i = 0;
  const n = text.length;
  const refuse = () => new MalformedWebhookError(reason, "a multipart header has a malformed parameter list");
  while (i < n) {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === ";")) i += 1;
    if (i >= n) break;
    const eq = text.indexOf("=", i);
    if (eq === -1) throw refuse();
    const key = text.slice(i, eq).trim().toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(key) || params.has(key)) throw refuse();
    i = eq + 1;
    let value = "";
    if (text[i] === '"') {
      i += 1;
      let closed = false;
      while (i < n) {
        const c = text[i] as string;
        if (c === '"') {
          closed = true;
          i += 1;
          break;
        }
        // A backslash quotes the next character (RFC 9110 quoted-pair); browsers percent-encode instead.
        if (c === "\\" && i + 1 < n) {
          value += text[i + 1];
          i += 2;
          continue;
        }
        value += c;
        i += 1;
      }
      if (!closed) throw refuse();
    } else {
      const end = text.indexOf(";", i);
      value = (end === -1 ? text.slice(i) : text.slice(i, end)).trim();
      i = end === -1 ? n : end;
    }
    while (i < n && (text[i] === " " || text[i] === "\t")) i += 1;
    if (i < n && text[i] !== ";") throw refuse();
    params.set(key, value);
  }
  return params;
}
