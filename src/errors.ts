/**
 * Fieldseal's error vocabulary. Every failure the service reports is a FieldsealError with a stable `code`;
 * `src/service/error-map.ts` is the one place that turns these codes into Connect codes and HTTP statuses.
 *
 * Messages say what was wrong in terms of names, sizes and versions. They never contain a plaintext value,
 * a sealed value's payload or key material: callers may log them.
 */
export type FieldsealErrorCode =
  /** A request field is missing or malformed. */
  | "invalid_argument"
  /**
   * A value does not fit its field's configured format (a card number failing Luhn, an e-mail without a
   * domain, a non-string): nothing of the call is sealed. The message names the field and format only.
   */
  | "field_format_invalid"
  /** A sealed value is not a well-formed envelope or legacy blob. */
  | "envelope_malformed"
  /** A sealed value failed authentication: tampered, or moved to another field, scope or keyring. */
  | "envelope_tampered"
  /** The keyring named does not exist. */
  | "keyring_not_found"
  /** The key version named does not exist in the keyring. */
  | "key_version_not_found"
  /** The key version is below the keyring's minimum decryption version. */
  | "key_version_retired"
  /** The key version's material was destroyed (DestroyKeyVersions): its values can never open again. */
  | "key_version_destroyed"
  /**
   * The key store holds a keyring state that contradicts keys already in use (a version's material changed,
   * or a migrated keyring's secret was overwritten with the tutorial's shape); refused, never absorbed.
   */
  | "key_store_conflict"
  /** A compare-and-swap on key state lost to another writer, or an expected primary version did not match. */
  | "conflict"
  /** A precondition of the operation does not hold (other than a retired version). */
  | "failed_precondition"
  /**
   * The value's scope was forgotten (ForgetScope on an erasable keyring): its data key is gone and the value
   * can never open again; or sealing for a forgotten scope that the keyring does not let seal again.
   */
  | "scope_forgotten"
  /** A legacy tutorial value was given, and the legacy path is turned off (after migration). */
  | "legacy_disabled"
  /** A request or value is larger than allowed. */
  | "too_large"
  /** The caller presented no credentials, or unknown ones. */
  | "unauthenticated"
  /** The caller is known but may not do this. */
  | "permission_denied"
  /** The key store cannot be reached and nothing cached can serve the request. */
  | "store_unavailable"
  /** Cognigy.AI refused a push, or the push ran out of time or attempts. */
  | "push_failed"
  /** A caller went over one of Fieldseal's own rate limits (a webhook signer's replay capacity). */
  | "rate_limited"
  /**
   * Cognigy.AI's REST rate limit: this process's request budget was spent, or Cognigy answered 429, and no
   * attempt could go out before the push deadline.
   */
  | "cognigy_rate_limited"
  /** The deadline passed. */
  | "deadline_exceeded"
  /** A bug or an unexpected failure; details go to the log, not to the caller. */
  | "internal";

/** The one error class Fieldseal throws on purpose. */
export class FieldsealError extends Error {
  override readonly name = "FieldsealError";
  readonly code: FieldsealErrorCode;

  constructor(code: FieldsealErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `err` is a FieldsealError, optionally of the given code. */
export function isFieldsealError(err: unknown, code?: FieldsealErrorCode): err is FieldsealError {
  return err instanceof FieldsealError && (code === undefined || err.code === code);
}
