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
  assertScopeId(ctx.scope);
  assertAadPart("field name", ctx.field);
  return aadBytes(keyring, version, ctx.scope, ctx.field);
}

/** The AAD layout above, for parts already validated. The one place that spells it. */
function aadBytes(keyring: string, version: number, scope: Scope, field: string): Uint8Array {
  return Buffer.from(`${FORMAT_TAG}\0${keyring}\0${version}\0${scope.kind}:${scope.id}\0${field}`, "utf8");
}

function assertScopeId(scope: Scope): void {
  assertAadPart(scope.kind === "session" ? "session id" : "user id", scope.id);
}

// Per call, the AAD's keyring, version, scope kind and field mostly repeat, and so does the scope id for a
// run of calls about one session. Each such combination that passed validation is remembered with the last
// scope id it was used with and that AAD: a repeat costs a few map lookups, a new scope id only its own
// validation and encoding, never more than building the AAD from scratch. Only names, ids and versions
// are kept, never a value or key material, and at most AAD_CACHE_ENTRIES combinations (then it is
// emptied and refills with those in use).
const AAD_CACHE_ENTRIES = 256;

/** For a validated keyring, version, scope kind and field: the last (valid) scope id and its AAD. */
interface LastAad {
  id: string;
  aad: Uint8Array;
}

type Branch<T> = Map<string, T>;
const aadCache = new Map<number, Branch<Branch<Branch<LastAad>>>>();
let aadCacheEntries = 0;

/**
 * buildAad for the engine's own seal and open: the same bytes and the same errors, but the returned
 * buffer may be shared with other calls and must never be modified.
 */
export function contextAad(keyring: string, version: number, ctx: SealContext): Uint8Array {
  const { scope, field } = ctx;
  const last = aadCache.get(version)?.get(keyring)?.get(scope.kind)?.get(field);
  if (last === undefined) {
    // Validates keyring, scope id and field in that order, so a bad context fails as it always did.
    const aad = buildAad(keyring, version, ctx);
    if (aadCacheEntries >= AAD_CACHE_ENTRIES) {
      aadCache.clear();
      aadCacheEntries = 0;
    }
    branch(branch(branch(aadCache, version), keyring), scope.kind).set(field, { id: scope.id, aad });
    aadCacheEntries++;
    return aad;
  }
  if (scope.id === last.id) return last.aad;
  // Keyring and field are known to be valid: only the new scope id needs checking.
  assertScopeId(scope);
  last.aad = aadBytes(keyring, version, scope, field);
  last.id = scope.id;
  return last.aad;
}

function branch<K, T>(map: Map<K, Branch<T>>, key: K): Branch<T> {
  let next = map.get(key);
  if (next === undefined) {
    next = new Map();
    map.set(key, next);
  }
  return next;
}
