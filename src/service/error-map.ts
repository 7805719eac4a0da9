import { Code, ConnectError } from "@connectrpc/connect";
import { type FieldsealErrorCode, isFieldsealError } from "../errors.js";

/** The one mapping from Fieldseal's error codes to Connect codes. */
const CONNECT_CODES: Record<FieldsealErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  envelope_malformed: Code.InvalidArgument,
  // A tampered or moved value is a bad argument from the caller's side; the reason metadata tells the two apart.
  envelope_tampered: Code.InvalidArgument,
  keyring_not_found: Code.NotFound,
  key_version_not_found: Code.NotFound,
  key_version_retired: Code.FailedPrecondition,
  conflict: Code.Aborted,
  failed_precondition: Code.FailedPrecondition,
  too_large: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  store_unavailable: Code.Unavailable,
  push_failed: Code.FailedPrecondition,
  rate_limited: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  internal: Code.Internal,
};

/** HTTP statuses for the plain-HTTP surfaces (webhooks), by Fieldseal error code. */
const HTTP_STATUSES: Record<FieldsealErrorCode, number> = {
  invalid_argument: 400,
  envelope_malformed: 400,
  envelope_tampered: 400,
  keyring_not_found: 404,
  key_version_not_found: 404,
  key_version_retired: 409,
  conflict: 409,
  failed_precondition: 409,
  too_large: 413,
  unauthenticated: 401,
  permission_denied: 403,
  store_unavailable: 503,
  push_failed: 502,
  rate_limited: 429,
  deadline_exceeded: 504,
  internal: 500,
};

/** Response metadata key carrying Fieldseal's own error code next to the Connect code. */
export const REASON_HEADER = "fieldseal-reason";

/** Connect code for a Fieldseal error code. */
export function connectCodeFor(code: FieldsealErrorCode): Code {
  return CONNECT_CODES[code];
}

/** HTTP status for a Fieldseal error code. */
export function httpStatusFor(code: FieldsealErrorCode): number {
  return HTTP_STATUSES[code];
}

/** Connect code → HTTP status, as in the Connect protocol specification. */
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

/** Connect code name as the Connect protocol spells it, e.g. `invalid_argument`. */
export function connectCodeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/**
 * Turns anything thrown by a handler into a ConnectError that is safe to send: FieldsealErrors keep their
 * message (written to be safe) and get their code; ConnectErrors pass through; anything else becomes a bare
 * INTERNAL, because its message may quote data we never want on the wire.
 */
export function toConnectError(err: unknown): ConnectError {
  if (isFieldsealError(err)) {
    const error = new ConnectError(err.message, CONNECT_CODES[err.code]);
    error.metadata.set(REASON_HEADER, err.code);
    return error;
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError("internal error", Code.Internal);
}
