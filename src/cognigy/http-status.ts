/**
 * The HTTP status the webhook adapter answers for a Connect error from the RPC it called. It follows the
 * Connect protocol's table, with one refinement: RESOURCE_EXHAUSTED means "too large" (413) when the server
 * says so in the `fieldseal-reason` response metadata, and "rate limited" (429) otherwise.
 * Kept apart so it can move into the service's one error map (src/service/error-map.ts).
 */
import { Code, ConnectError } from "@connectrpc/connect";

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

/** Metadata key under which the service may name its FieldsealError code (e.g. `too_large`). */
export const reasonMetadataKey = "fieldseal-reason";

/** HTTP status for any error thrown by a Connect client call. */
export function httpStatusForConnectError(err: unknown): number {
  const ce = ConnectError.from(err);
  if (ce.code === Code.ResourceExhausted && ce.metadata.get(reasonMetadataKey) === "too_large") return 413;
  return httpStatusForConnectCode(ce.code);
}
