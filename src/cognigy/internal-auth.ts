/**
 * How the webhook adapter calls the RPCs as the principal an HMAC signature proved.
 *
 * Bearer tokens are stored hashed, so the adapter cannot present a principal's own token. Instead the
 * server creates one InternalPrincipalAuth per process and gives `headersFor` to the adapter and `verify`
 * to its auth layer. The headers carry the principal's name and a 32-byte random secret that lives only in
 * this process's memory; the adapter reaches the RPCs over an in-process transport, so the headers never
 * touch a network. The auth layer must treat a request carrying the principal header with a wrong or
 * missing secret as unauthenticated (never fall back to other credentials for it).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { FieldsealError } from "../errors.js";

export const internalPrincipalHeader = "x-fieldseal-internal-principal";
export const internalSecretHeader = "x-fieldseal-internal-secret";

export interface InternalPrincipalAuth {
  /** Headers that make an in-process RPC call act as `principal`. */
  headersFor(principal: string): Headers;
  /**
   * The principal named by trusted internal headers; undefined when the headers are absent.
   * Throws when the principal header is present but the secret does not match.
   */
  verify(headers: Headers): string | undefined;
}

/** A fresh per-process internal credential. */
export function createInternalPrincipalAuth(): InternalPrincipalAuth {
  const secret = randomBytes(32);
  const secretText = secret.toString("base64url");
  return {
    headersFor(principal) {
      return new Headers({ [internalPrincipalHeader]: principal, [internalSecretHeader]: secretText });
    },
    verify(headers) {
      const principal = headers.get(internalPrincipalHeader);
      const presented = headers.get(internalSecretHeader);
      if (principal === null && presented === null) return undefined;
      const given = Buffer.from(presented ?? "", "base64url");
      // Equal length first: timingSafeEqual throws on unequal lengths, and the length is not secret.
      if (principal === null || given.length !== secret.length || !timingSafeEqual(given, secret)) {
        throw new FieldsealError("unauthenticated", "invalid internal principal credentials");
      }
      return principal;
    },
  };
}
