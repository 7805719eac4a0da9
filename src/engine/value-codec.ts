import { FieldsealError } from "../errors.js";
import type { JsonValue } from "./json-value.js";

/**
 * Typed plaintext: the first byte says what the rest is, so a value comes back as the JSON type it was
 * sealed as. Strings, by far the common case (card numbers, IDs), cost one byte and no JSON quoting.
 * The type byte is inside the ciphertext, so even the type of a value stays confidential.
 */
const TYPE_STRING = 0x73; // "s": the rest is the string's UTF-8
const TYPE_JSON = 0x6a; // "j": the rest is UTF-8 JSON text of a number, boolean, null, array or object

/** The largest plaintext, type byte included, that the engine seals. */
export const MAX_PLAINTEXT_BYTES = 64 * 1024;

// fatal: a string that is not valid UTF-8 must fail loudly, never turn into replacement characters.
// ignoreBOM: a value that starts with U+FEFF comes back with it; by default the decoder would drop it.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Encodes a JSON value into typed plaintext bytes. */
export function encodeValue(value: JsonValue): Uint8Array {
  let text: string;
  let type: number;
  if (typeof value === "string") {
    // Buffer would silently turn a lone surrogate into U+FFFD; refuse it instead.
    if (!value.isWellFormed()) {
      throw new FieldsealError("invalid_argument", "string value contains a lone surrogate");
    }
    type = TYPE_STRING;
    text = value;
  } else {
    assertJson(value, 0);
    type = TYPE_JSON;
    // JSON.stringify escapes lone surrogates, so its output is always well-formed.
    text = JSON.stringify(value);
  }
  const length = Buffer.byteLength(text, "utf8");
  if (length + 1 > MAX_PLAINTEXT_BYTES) {
    throw new FieldsealError(
      "too_large",
      `value is ${length + 1} bytes encoded; the limit is ${MAX_PLAINTEXT_BYTES} bytes`,
    );
  }
  // The type byte and the UTF-8 written straight into one buffer, which every byte of fills.
  const out = Buffer.allocUnsafe(length + 1);
  out[0] = type;
  out.write(text, 1, "utf8");
  return out;
}

/** Decodes typed plaintext bytes into the JSON value they hold. */
export function decodeValue(bytes: Uint8Array): JsonValue {
  const type = bytes[0];
  try {
    const text = strictUtf8.decode(bytes.subarray(1));
    if (type === TYPE_STRING) return text;
    if (type === TYPE_JSON) return JSON.parse(text) as JsonValue;
  } catch {
    // Falls through: only reachable with a key that authenticated a value Fieldseal did not write.
  }
  throw new FieldsealError("envelope_malformed", "sealed value holds plaintext of an unknown type");
}

/**
 * The deepest nesting of a sealed value (a scalar at the top is depth 0). Bound by what every client can
 * read back, not by JSON: over protobuf each JSON level is two messages (Value, then Struct or ListValue),
 * and protobuf runtimes stop at 100 nested messages (protobuf-es, C++, Java, Go by default), so a value
 * nested deeper than about 48 levels would seal and then never open over gRPC. 32 leaves room for the
 * response messages around it, and is far past any session variable.
 */
export const MAX_VALUE_DEPTH = 32;
const MAX_DEPTH = MAX_VALUE_DEPTH;
const ownProperty = Object.prototype.hasOwnProperty;

function assertJson(value: unknown, depth: number): asserts value is JsonValue {
  if (depth > MAX_DEPTH) {
    throw new FieldsealError("invalid_argument", `value nests deeper than ${MAX_DEPTH} levels`);
  }
  if (value === null || typeof value === "boolean" || typeof value === "string") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new FieldsealError("invalid_argument", "value holds a number that JSON cannot represent");
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) assertJson(item, depth + 1);
    return;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    // The own enumerable properties, as Object.values would list them, in the same order. for...in walks
    // an object's cached keys without allocating an array (Object.values made this walk cost more than
    // the JSON.stringify after it), and V8 reduces this exact hasOwnProperty.call pattern inside for...in
    // to a map check, which it does not do for Object.hasOwn.
    for (const key in value) {
      if (ownProperty.call(value, key)) assertJson((value as Record<string, unknown>)[key], depth + 1);
    }
    return;
  }
  throw new FieldsealError("invalid_argument", `value of type ${typeof value} is not JSON`);
}
