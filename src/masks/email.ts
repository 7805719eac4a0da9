import { formatInvalid, type MaskedValue } from "./field-format.js";
import { HIDDEN } from "./reveal.js";
import { sayDomain } from "./spoken.js";

/** RFC 5321 limits: 64 octets of local part, 254 of address (255 of path minus the angle brackets). */
const MAX_LOCAL = 64;
const MAX_ADDRESS = 254;
/**
 * A dot-atom local part (RFC 5322 atext; UTF-8 letters allowed as RFC 6531 does), with no leading,
 * trailing or doubled dot. Quoted local parts are refused: no bot collects one.
 */
const LOCAL = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u;
/** Two or more DNS labels of letters, digits and inner hyphens, each 1-63 characters. */
const DOMAIN =
  /^([\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/** An e-mail address split into its local part and lowercased domain; field_format_invalid otherwise. */
export function emailParts(value: string): { local: string; domain: string } {
  const address = value.trim();
  const at = address.indexOf("@");
  if (at < 0 || address.indexOf("@", at + 1) >= 0) throw formatInvalid("must hold exactly one @");
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  if (address.length > MAX_ADDRESS) throw formatInvalid(`must be at most ${MAX_ADDRESS} characters`);
  if (local.length === 0 || local.length > MAX_LOCAL || !LOCAL.test(local)) {
    throw formatInvalid(`must have a local part of 1 to ${MAX_LOCAL} address characters before the @`);
  }
  if (!DOMAIN.test(domain)) throw formatInvalid("must have a domain name of two or more labels after the @");
  return { local, domain };
}

/**
 * `j••••@example.com` / `starting with j at example dot com`: the first character of the local part, when
 * it is a letter or digit and the local part is longer than one character, and the whole domain.
 */
export function maskEmail(value: string): MaskedValue {
  const { local, domain } = emailParts(value);
  const chars = Array.from(local);
  const first = chars[0];
  const shown = chars.length > 1 && first !== undefined && /^[\p{L}\p{N}]$/u.test(first) ? first : "";
  return {
    format: "email",
    text: `${shown}${HIDDEN}@${domain}`,
    speakable: `${shown === "" ? "an address" : `starting with ${shown}`} at ${sayDomain(domain)}`,
  };
}
