import { type DescMessage, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { REASON_HEADER } from "../service/error-map.js";

/**
 * How request bodies are judged before any handler sees them, shared by the gRPC fast path and the
 * Connect adapter so that both refuse the same input with the same code, reason and message.
 *
 * Every refusal is INVALID_ARGUMENT (reason `invalid_argument`) or, for sizes, RESOURCE_EXHAUSTED (reason
 * `too_large`). Messages say what was wrong and never quote the request: a body that fails to parse may
 * well hold the plaintext it was meant to seal.
 */

/** The setting that bounds request size, as operators know it (see src/config.ts). */
const SIZE_SETTING = "FIELDSEAL_MAX_REQUEST_BYTES";

/**
 * Deepest bracket nesting accepted in a JSON request body. protobuf-es already stops decoding messages
 * nested deeper than 100 levels (its default recursionLimit); a JSON value nests one bracket per level where
 * its message form nests two, so this never refuses what the decoder would accept, and it refuses a
 * 10,000-deep body before JSON.parse builds it.
 */
export const MAX_JSON_NESTING = 100;

/** Messages of framing faults, spelt once so that both paths answer them alike. */
export const INCOMPLETE_ENVELOPE = "protocol error: incomplete envelope";
export const MISSING_MESSAGE = "protocol error: missing input message for unary method";
export const EXTRA_MESSAGE = "protocol error: received extra input message for unary method";
export const MISSING_SERVER_STREAMING_MESSAGE =
  "protocol error: missing input message for server-streaming method";
export const EXTRA_SERVER_STREAMING_MESSAGE =
  "protocol error: received extra input message for server-streaming method";
export const COMPRESSED_WITHOUT_ENCODING = "received compressed envelope, but do not know how to decompress";

/** A request envelope with flags other than bit 0 ("compressed"), the only one gRPC and Connect define. */
export function badEnvelopeFlags(flags: number): ConnectError {
  return malformedRequest(`envelope flags 0x${flags.toString(16)} are not valid in a request`);
}

/** INVALID_ARGUMENT with reason `invalid_argument`: the request is malformed. */
export function malformedRequest(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, { [REASON_HEADER]: "invalid_argument" });
}

/**
 * The largest request message a service takes, and what sets it (said in the refusal). Every service takes
 * FIELDSEAL_MAX_REQUEST_BYTES but those that answer without credentials (health, reflection): their
 * requests are tiny, and anyone can send them, so they take OPEN_SERVICE_LIMIT.
 */
export interface RequestLimit {
  readonly bytes: number;
  readonly setBy: string;
}

/** The limit of services that need no credentials: their largest real request is a few hundred bytes. */
export const OPEN_SERVICE_MAX_BYTES = 16 * 1024;

/** The limit of a service: the setting's, or, for a service open without credentials, the smaller fixed one. */
export function requestLimit(maxRequestBytes: number, open: boolean): RequestLimit {
  return open && OPEN_SERVICE_MAX_BYTES < maxRequestBytes
    ? { bytes: OPEN_SERVICE_MAX_BYTES, setBy: "the fixed limit of services that need no credentials" }
    : { bytes: maxRequestBytes, setBy: `the limit set by ${SIZE_SETTING}` };
}

/** RESOURCE_EXHAUSTED with reason `too_large`, naming what sets the limit. */
export function oversizeRequest(
  what: string,
  max: number,
  setBy = `the limit set by ${SIZE_SETTING}`,
): ConnectError {
  return new ConnectError(`${what} is larger than ${max} bytes, ${setBy}`, Code.ResourceExhausted, {
    [REASON_HEADER]: "too_large",
  });
}

/** Parses one binary request message, or throws malformedRequest saying why it is not one. */
export function parseBinaryRequest<D extends DescMessage>(schema: D, bytes: Uint8Array) {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    // protobuf-es reports positions, tags and types here (and invalid UTF-8 as TextDecoder's TypeError),
    // never field contents.
    throw malformedRequest(`request is not a valid binary ${schema.typeName}: ${(e as Error)?.message}`);
  }
}

// fatal: invalid UTF-8 is refused, never replaced with U+FFFD and sealed. The BOM is dropped, as
// connect-es's own decoder drops it.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks one JSON request message as the Connect protocol would decode it (unknown fields ignored), and
 * more strictly: the bytes must be UTF-8 and nest at most MAX_JSON_NESTING deep.
 */
export function checkJsonRequest(schema: DescMessage, bytes: Uint8Array): void {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw malformedRequest("request body is not valid UTF-8");
  }
  if (jsonNesting(text) > MAX_JSON_NESTING) {
    throw malformedRequest(`request JSON nests deeper than ${MAX_JSON_NESTING} levels`);
  }
  try {
    // fromJsonString, as connect decodes it: it also refuses duplicate object keys, which JSON.parse would
    // silently merge (two parsers could then read different values from one body).
    fromJsonString(schema, text, { ignoreUnknownFields: true });
  } catch (e) {
    // V8's SyntaxError quotes the text around the fault: never sent back.
    if ((e as Error)?.cause instanceof SyntaxError) throw malformedRequest("request body is not valid JSON");
    // protobuf-es names the field, then may quote the offending value (or key) after "from JSON:"; keep
    // the name only.
    const message = (e as Error)?.message ?? "";
    if (/^cannot decode message \S+ from JSON: duplicate object key /.test(message))
      throw malformedRequest(`request is not a valid JSON ${schema.typeName}: an object has a key twice`);
    const at = message.indexOf(" from JSON");
    const where = at < 0 ? "" : `: ${message.slice(0, at + " from JSON".length)}`;
    throw malformedRequest(`request is not a valid JSON ${schema.typeName}${where}`);
  }
}

/** The deepest nesting of brackets in JSON text, brackets inside strings not counted. */
function jsonNesting(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > deepest) deepest = depth;
      // Nothing deeper changes the verdict; stop scanning a huge body early.
      if (deepest > MAX_JSON_NESTING) return deepest;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return deepest;
}
