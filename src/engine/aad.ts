import { assertAadPart, assertKeyringName } from "./names.js";

/** Where a sealed value belongs: a Cognigy session (the default) or a user, for values that outlive one. */
export type Scope = { readonly kind: "session" | "user"; readonly id: string };

/** The context a value is sealed in; opening it anywhere else fails. */
export interface SealContext {
  readonly scope: Scope;
  readonly field: string;
}

export const FORMAT_TAG = "fs1";

/**
 * The associated data that binds a sealed value to its format, keyring, key version, scope and field:
 *
 *   "fs1" NUL keyring NUL decimal(version) NUL ("session:" | "user:") scopeId NUL field
 *
 * No part may contain NUL (checked by assertAadPart), so two different contexts can never produce the same
 * bytes. Changing any part (moving a value to another field or session, relabelling its version) makes
 * the GCM tag check fail.
 */
export function buildAad(keyring: string, version: number, ctx: SealContext): Uint8Array {
  assertKeyringName(keyring);
  assertAadPart(ctx.scope.kind === "session" ? "session id" : "user id", ctx.scope.id);
  assertAadPart("field name", ctx.field);
  return Buffer.from(
    `${FORMAT_TAG}\0${keyring}\0${version}\0${ctx.scope.kind}:${ctx.scope.id}\0${ctx.field}`,
    "utf8",
  );
}

// Sealing and opening see the same few contexts again and again (a session's fields, a keyring's primary
// version), and validating and encoding the AAD is a measurable part of a small seal. So the AAD of each
// context that passed validation is kept, looked up part by part: every part is compared as it is, so a
// hit is a context that was validated, and no key string has to be built and hashed per call. It
// holds names, ids and versions only, never a value or key material, and is bounded: when full, it is
// emptied and refills with the contexts in use.
const AAD_CACHE_ENTRIES = 1024;
type Branch<T> = Map<string, T>;
const aadCache = new Map<number, Branch<Branch<Branch<Branch<Uint8Array>>>>>();
let aadCacheEntries = 0;

/**
 * buildAad for the engine's own seal and open: the same bytes and the same errors, but the returned
 * buffer is shared with later calls and must never be modified.
 */
export function contextAad(keyring: string, version: number, ctx: SealContext): Uint8Array {
  const { scope, field } = ctx;
  const cached = aadCache.get(version)?.get(keyring)?.get(scope.kind)?.get(scope.id)?.get(field);
  if (cached !== undefined) return cached;
  // Throws for an invalid context, so only validated ones are ever stored.
  const aad = buildAad(keyring, version, ctx);
  if (aadCacheEntries >= AAD_CACHE_ENTRIES) {
    aadCache.clear();
    aadCacheEntries = 0;
  }
  branch(branch(branch(branch(aadCache, version), keyring), scope.kind), scope.id).set(field, aad);
  aadCacheEntries++;
  return aad;
}

function branch<K, T>(map: Map<K, Branch<T>>, key: K): Branch<T> {
  let next = map.get(key);
  if (next === undefined) {
    next = new Map();
    map.set(key, next);
  }
  return next;
}
