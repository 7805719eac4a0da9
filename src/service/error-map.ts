import { Code, ConnectError } from "@connectrpc/connect";
import { CognigyPushError } from "../cognigy/client.js";
import { type FieldsealError, type FieldsealErrorCode, isFieldsealError } from "../errors.js";

/** The one mapping from Fieldseal's error codes to Connect codes. */
const CONNECT_CODES: Record<FieldsealErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  field_format_invalid: Code.InvalidArgument,
  envelope_malformed: Code.InvalidArgument,
  // A tampered or moved value is a bad argument from the caller's side; the reason metadata tells the two apart.
  envelope_tampered: Code.InvalidArgument,
  keyring_not_found: Code.NotFound,
  key_version_not_found: Code.NotFound,
  key_version_retired: Code.FailedPrecondition,
  key_version_destroyed: Code.FailedPrecondition,
  // The store must be repaired by an operator before the operation can run: a precondition of the system.
  key_store_conflict: Code.FailedPrecondition,
  conflict: Code.Aborted,
  failed_precondition: Code.FailedPrecondition,
  legacy_disabled: Code.FailedPrecondition,
  // Final, like a destroyed version: no retry helps.
  scope_forgotten: Code.FailedPrecondition,
  too_large: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  store_unavailable: Code.Unavailable,
  // A push Cognigy.AI refused for good (401/403/404...): retrying cannot help until the setup changes.
  // Transient push failures are UNAVAILABLE instead; see connectCodeForError.
  push_failed: Code.FailedPrecondition,
  rate_limited: Code.ResourceExhausted,
  cognigy_rate_limited: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  internal: Code.Internal,
};

/** HTTP statuses for the plain-HTTP surfaces (webhooks), by Fieldseal error code. */
const HTTP_STATUSES: Record<FieldsealErrorCode, number> = {
  invalid_argument: 400,
  field_format_invalid: 400,
  envelope_malformed: 400,
  envelope_tampered: 400,
  keyring_not_found: 404,
  key_version_not_found: 404,
  key_version_retired: 409,
  key_version_destroyed: 409,
  key_store_conflict: 409,
  conflict: 409,
  failed_precondition: 409,
  legacy_disabled: 409,
  scope_forgotten: 409,
  too_large: 413,
  unauthenticated: 401,
  permission_denied: 403,
  store_unavailable: 503,
  push_failed: 502,
  rate_limited: 429,
  cognigy_rate_limited: 429,
  deadline_exceeded: 504,
  internal: 500,
};

/** Response metadata key carrying Fieldseal's own error code next to the Connect code. */
export const REASON_HEADER = "fieldseal-reason";

/** Connect code for a Fieldseal error code. */
export function connectCodeFor(code: FieldsealErrorCode): Code {
  return CONNECT_CODES[code];
}

/**
 * Connect code for one error. Same as connectCodeFor, except a push that failed on Cognigy's 5xx, a 408 or
 * a connection error is UNAVAILABLE: gRPC clients and proxies treat that as "retry with backoff", which is
 * right for an outage and safe because a retried push carries the same idempotency key. FAILED_PRECONDITION
 * would tell them not to retry until someone fixes the setup, which is only true of 4xx refusals.
 */
export function connectCodeForError(err: FieldsealError): Code {
  if (err.code === "push_failed" && err instanceof CognigyPushError && err.attempts > 0) {
    const status = err.httpStatus;
    if (status === undefined || status >= 500 || status === 408) return Code.Unavailable;
  }
  return CONNECT_CODES[err.code];
}

/** HTTP status for a Fieldseal error code. */
export function httpStatusFor(code: FieldsealErrorCode): number {
  return HTTP_STATUSES[code];
}

/**
 * Connect code → HTTP status, as in the Connect protocol specification
 * (https://connectrpc.com/docs/protocol#error-codes). connect has the same table as a private helper
 * (`codeToHttpStatus`); test/unit/error-map.test.ts checks that the two agree for every code.
 */
export function httpStatusForConnectCode(code: Code): number {
  switch (code) {
    case Code.Canceled:
      return 499;
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return 400;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.ResourceExhausted:
      return 429;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.DeadlineExceeded:
      return 504;
    default:
      // Unknown, Internal, DataLoss and anything new.
      return 500;
  }
}

/**
 * HTTP status for an error from a Connect call: the Fieldseal reason in the error's metadata when the
 * server named one (so a too-large request is 413, not Connect's generic 429), else Connect's table.
 */
export function httpStatusForConnectError(err: unknown): number {
  const ce = ConnectError.from(err);
  const reason = ce.metadata.get(REASON_HEADER);
  if (reason !== null && Object.hasOwn(HTTP_STATUSES, reason))
    return HTTP_STATUSES[reason as FieldsealErrorCode];
  return httpStatusForConnectCode(ce.code);
}

/**
 * Connect code name as the Connect protocol spells it, e.g. `invalid_argument`; a code this version of
 * Connect does not know is spelled as its number. Agrees with connect's private `codeToString` (tested).
 */
export function connectCodeName(code: Code): string {
  const name: string | undefined = Code[code];
  if (name === undefined) return String(code);
  return name.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/**
 * Turns anything thrown by a handler into a ConnectError that is safe to send: FieldsealErrors keep their
 * message (written to be safe) and get their code; ConnectErrors pass through; anything else becomes a bare
 * INTERNAL, because its message may quote data we never want on the wire.
 */
export function toConnectError(err: unknown): ConnectError {
  if (isFieldsealError(err)) {
    const error = new ConnectError(err.message, connectCodeForError(err));
    error.metadata.set(REASON_HEADER, err.code);
    return error;
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError("internal error", Code.Internal);
}
