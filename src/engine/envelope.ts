import { FieldsealError } from "../errors.js";
import { FORMAT_TAG } from "./aad.js";
import { KEYRING_NAME } from "./names.js";

/** AES-GCM nonce length: 96 bits, the size GCM is designed for. */
export const NONCE_BYTES = 12;
/** AES-GCM tag length: the full 128 bits; shorter tags weaken authentication. */
export const TAG_BYTES = 16;

/** A parsed `fs1.` envelope: which key opens it and the raw nonce || ciphertext || tag. */
export interface Envelope {
  readonly keyring: string;
  readonly version: number;
  readonly nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  readonly sealed: Uint8Array;
}

const VERSION_TEXT = /^[1-9][0-9]{0,9}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_VERSION = 0xffff_ffff;
/** Longest envelope text accepted before any decoding work: the largest plaintext plus headroom. */
export const MAX_ENVELOPE_CHARS = 90_000;

/** Formats an envelope as URL-safe text: `fs1.<keyring>.<version>.<base64url(nonce || ciphertext || tag)>`. */
export function formatEnvelope(
  keyring: string,
  version: number,
  nonce: Uint8Array,
  sealed: Uint8Array,
): string {
  const payload = Buffer.allocUnsafe(nonce.length + sealed.length);
  payload.set(nonce, 0);
  payload.set(sealed, nonce.length);
  return formatEnvelopePayload(keyring, version, payload);
}

/** Formats an envelope from its payload, already laid out as `nonce || ciphertext || tag`. */
export function formatEnvelopePayload(keyring: string, version: number, payload: Buffer): string {
  return `${FORMAT_TAG}.${keyring}.${version}.${payload.toString("base64url")}`;
}

/**
 * The keyring an envelope's clear header names, read without decoding the payload: enough to check access
 * before any key is fetched. The full parse (parseEnvelope) still happens when the value is opened.
 */
export function envelopeKeyring(text: string): string {
  const end = text.indexOf(".", FORMAT_TAG.length + 1);
  const keyring = end < 0 ? "" : text.slice(FORMAT_TAG.length + 1, end);
  if (!looksLikeEnvelope(text) || !KEYRING_NAME.test(keyring)) throw malformed("keyring name is not valid");
  return keyring;
}

/** True when `text` claims to be an `fs1.` envelope (it may still be malformed). */
export function looksLikeEnvelope(text: string): boolean {
  return text.startsWith(`${FORMAT_TAG}.`);
}

/** Parses envelope text strictly; anything but the canonical form fails with envelope_malformed. */
export function parseEnvelope(text: string): Envelope {
  if (text.length > MAX_ENVELOPE_CHARS) {
    throw new FieldsealError("too_large", `sealed value is longer than ${MAX_ENVELOPE_CHARS} characters`);
  }
  // Three dots, found by index rather than split(): this runs on every open.
  const first = text.indexOf(".");
  const second = text.indexOf(".", first + 1);
  const third = second < 0 ? -1 : text.indexOf(".", second + 1);
  if (
    first !== FORMAT_TAG.length ||
    !text.startsWith(FORMAT_TAG) ||
    third < 0 ||
    text.includes(".", third + 1)
  ) {
    throw malformed("expected four dot-separated parts starting with 'fs1'");
  }
  const keyring = text.slice(first + 1, second);
  const versionText = text.slice(second + 1, third);
  const payloadText = text.slice(third + 1);
  if (!KEYRING_NAME.test(keyring)) throw malformed("keyring name is not valid");
  if (!isEnvelopeNumber(versionText)) throw malformed("key version is not a positive integer");
  return { keyring, version: Number(versionText), ...decodePayload(payloadText, malformed) };
}

/** True when `text` is a number field of an envelope (fs1 or fs1s): 1 to 2^32-1, no leading zero or sign. */
export function isEnvelopeNumber(text: string): boolean {
  return VERSION_TEXT.test(text) && Number(text) <= MAX_VERSION;
}

/**
 * Decodes an envelope's (fs1 or fs1s) payload text into its nonce and its ciphertext || tag; a payload
 * that is not canonical base64url or too short fails with `malformed(why)`.
 */
export function decodePayload(
  payloadText: string,
  malformed: (why: string) => FieldsealError,
): { nonce: Buffer; sealed: Buffer } {
  // Node's decoder is lenient: it skips characters outside the alphabet, accepts "+" and "/" too, and
  // ignores stray trailing bits and a lone trailing character. Only the one canonical spelling of the bytes
  // is accepted, so any change to the text is a change to the bytes (and fails authentication) or fails
  // here. Comparing with the re-encoding checks alphabet and canonical form in one go, several times
  // faster than a regular expression over a long payload; the expression only words the error.
  const payload = Buffer.from(payloadText, "base64url");
  if (payloadText.length === 0 || payload.toString("base64url") !== payloadText) {
    throw malformed(
      BASE64URL.test(payloadText) ? "payload is not canonical base64url" : "payload is not base64url",
    );
  }
  if (payload.length < NONCE_BYTES + 1 + TAG_BYTES) throw malformed("payload is too short");
  return { nonce: payload.subarray(0, NONCE_BYTES), sealed: payload.subarray(NONCE_BYTES) };
}

function malformed(why: string): FieldsealError {
  return new FieldsealError("envelope_malformed", `sealed value is not a valid fs1 envelope: ${why}`);
}
