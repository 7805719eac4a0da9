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
  return Buffer.from(aadText(keyring, version, ctx), "utf8");
}

function aadText(keyring: string, version: number, ctx: SealContext): string {
  return `${FORMAT_TAG}\0${keyring}\0${version}\0${ctx.scope.kind}:${ctx.scope.id}\0${ctx.field}`;
}

// Sealing and opening see the same few contexts again and again (a session's fields, a keyring's primary
// version), and validating and encoding the AAD is a measurable part of a small seal. So the AAD of each
// context that passed validation is kept, keyed by its own text. It holds names, ids and versions only,
// never a value or key material; it is bounded, oldest entry out first.
const AAD_CACHE_ENTRIES = 1024;
const aadCache = new Map<string, Uint8Array>();

/**
 * buildAad for the engine's own seal and open: the same bytes and the same errors, but the returned
 * buffer is shared with later calls and must never be modified.
 */
export function contextAad(keyring: string, version: number, ctx: SealContext): Uint8Array {
  const kind = ctx.scope.kind;
  // A hit must stand for a context that would pass validation. The text determines every part only when
  // parts hold no NUL (true of anything cached: it passed) and the kind is one of the two known ones;
  // any other kind (a caller outside the types) takes the uncached path.
  if (kind !== "session" && kind !== "user") return buildAad(keyring, version, ctx);
  const text = aadText(keyring, version, ctx);
  let aad = aadCache.get(text);
  if (aad === undefined) {
    aad = buildAad(keyring, version, ctx);
    if (aadCache.size >= AAD_CACHE_ENTRIES) {
      const oldest = aadCache.keys().next().value;
      if (oldest !== undefined) aadCache.delete(oldest);
    }
    aadCache.set(text, aad);
  }
  return aad;
}
