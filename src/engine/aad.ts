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
