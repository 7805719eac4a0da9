import { FieldsealError } from "../errors.js";

/** Keyring names: short, lowercase, and free of the envelope's `.` separator. */
export const KEYRING_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const MAX_NAME_BYTES = 256;

/** Throws invalid_argument unless `name` is a valid keyring name. */
export function assertKeyringName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !KEYRING_NAME.test(name)) {
    // A rejected name is not secret, but it may be long or unprintable: show a bounded, quoted prefix.
    const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 70)) : typeof name;
    throw new FieldsealError(
      "invalid_argument",
      `keyring name ${shown} is invalid: use 1-63 characters a-z, 0-9, "_" or "-", starting with a letter or digit`,
    );
  }
}

/**
 * Throws invalid_argument unless `text` can stand in the AAD: 1 to 256 bytes of UTF-8 without NUL.
 * NUL is the AAD's separator; forbidding it is what makes the AAD encoding unambiguous.
 */
export function assertAadPart(what: "field name" | "session id" | "user id", text: string): void {
  if (text.length === 0) throw new FieldsealError("invalid_argument", `${what} is empty`);
  if (!text.isWellFormed()) throw new FieldsealError("invalid_argument", `${what} is not valid UTF-8`);
  if (text.includes("\0")) throw new FieldsealError("invalid_argument", `${what} contains a NUL character`);
  // Well-formed (checked above), so byteLength counts exactly the UTF-8 bytes the AAD will hold.
  if (Buffer.byteLength(text, "utf8") > MAX_NAME_BYTES) {
    throw new FieldsealError("invalid_argument", `${what} is longer than ${MAX_NAME_BYTES} bytes`);
  }
}
