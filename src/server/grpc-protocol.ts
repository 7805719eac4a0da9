import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, encodeBinaryHeader } from "@connectrpc/connect";

// The few pieces of the gRPC protocol the fast path needs, copied from @connectrpc/connect 2.x
// (src/protocol-grpc/parse-timeout.ts, trailer-status.ts; src/protocol/protocol-headers.ts). connect marks
// its own copies "@private Internal code, does not follow semantic versioning", so any patch release may
// change or remove them. test/server/grpc-protocol.test.ts feeds the same inputs to these and to connect's
// and expects the same results: if an upgrade changes connect's behaviour, that test says so.

/** The value of `grpc-status` on success. */
export const GRPC_STATUS_OK = "0";

/**
 * A `grpc-timeout` header value in milliseconds: up to 8 digits and a unit (H, M, S, m, u, n). An error
 * (INVALID_ARGUMENT) when the value is malformed or above `maxTimeoutMs`; nothing when there is no header.
 */
export function parseGrpcTimeout(
  value: string | null,
  maxTimeoutMs: number,
): { timeoutMs?: number; error?: ConnectError } {
  if (value === null) return {};
  const parts = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (parts === null) {
    return {
      error: new ConnectError(`protocol error: invalid grpc timeout value: ${value}`, Code.InvalidArgument),
    };
  }
  const timeoutMs = UNIT_MS[parts[2] as keyof typeof UNIT_MS] * Number.parseInt(parts[1] as string, 10);
  if (timeoutMs > maxTimeoutMs) {
    return {
      timeoutMs,
      error: new ConnectError(`timeout ${timeoutMs}ms must be <= ${maxTimeoutMs}`, Code.InvalidArgument),
    };
  }
  return { timeoutMs };
}

const UNIT_MS = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 } as const;

/**
 * Headers the Connect, gRPC and gRPC-Web protocols reserve: never copied from an error's metadata into a
 * response, so a handler cannot forge a status or a content type through it.
 */
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "host",
  "user-agent",
  "trailer",
  "date",
  "accept-encoding",
  "trailer-",
  "connect-content-encoding",
  "connect-accept-encoding",
  "connect-timeout-ms",
  "connect-protocol-version",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
]);

/** Appends every header of `from` to `into`, except the protocol's own. */
export function mergeNonProtocolHeaders(into: Headers, from: Headers): void {
  from.forEach((value, name) => {
    if (!PROTOCOL_HEADERS.has(name.toLowerCase())) into.append(name, value);
  });
}

/**
 * Writes a call's outcome into its trailers, as a gRPC server must: `grpc-status: 0` for success; for an
 * error its code, its percent-encoded message, its metadata (minus protocol headers, and only for errors
 * raised here, not ones relayed from the wire) and, when it has details, `grpc-status-details-bin` (a
 * google.rpc.Status).
 */
export function setGrpcTrailerStatus(target: Headers, error: ConnectError | undefined): Headers {
  if (error === undefined) {
    target.set("grpc-status", GRPC_STATUS_OK);
    return target;
  }
  // An error a Connect client parsed from another server's answer carries that server's headers; connect
  // does not relay them, and neither do we. `isWireError` is a field of the public ConnectError class, but
  // its doc comment marks it "@private Internal field": the one thing this file still reads of connect's
  // internals, because nothing public tells a relayed error from a raised one. Were it renamed or removed,
  // this line would stop compiling, and test/server/grpc-protocol.test.ts compares the outcome with connect's.
  if (!error.isWireError) mergeNonProtocolHeaders(target, error.metadata);
  target.set("grpc-status", error.code.toString(10));
  // encodeURIComponent, as connect's setTrailerStatus does, rather than the gRPC spec's narrower encoding
  // (PROTOCOL-HTTP2.md: only bytes outside 0x20-0x7E, and "%"): every RPC must answer alike whichever path
  // serves it, and connect-node's path cannot be changed. Spec decoders (grpc-go, grpcio, connect's
  // decodeURIComponent) read both the same; only grpc-js, which decodes with decodeURI
  // (subchannel-call.js), leaves %3A, %2C, %3B... as they are, on either path.
  target.set("grpc-message", encodeURIComponent(error.rawMessage));
  if (error.details.length > 0) target.set("grpc-status-details-bin", encodeStatus(error));
  return target;
}

/**
 * google.rpc.Status {code = 1, message = 2, repeated Any details = 3} in binary, base64 without padding.
 * Written by hand because its schema is not part of connect's public API and one message does not justify
 * generating googleapis.
 */
function encodeStatus(error: ConnectError): string {
  const w = new BinaryWriter();
  // Connect's codes start at 1 (there is no OK error), so the code is never proto3's default and always written.
  w.tag(1, 0).int32(error.code);
  if (error.rawMessage !== "") w.tag(2, 2).string(error.rawMessage);
  for (const detail of error.details) {
    const any =
      "desc" in detail
        ? anyPack(detail.desc, create(detail.desc, detail.value))
        : create(AnySchema, { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value });
    w.tag(3, 2).bytes(toBinary(AnySchema, any));
  }
  return encodeBinaryHeader(w.finish());
}

/**
 * Why a call stopped when the client reset its HTTP/2 stream with `rstCode`, as connect-node tells a
 * handler (connect-node's private `connectErrorFromH2ResetCode`, src/node-error.ts): CANCEL is CANCELED,
 * REFUSED_STREAM UNAVAILABLE, and so on; NO_ERROR and STREAM_CLOSED give no reason (an AbortError).
 */
export function abortReasonOfReset(rstCode: number | undefined): ConnectError | undefined {
  const code = rstCode === undefined ? undefined : RESET_CODES[rstCode];
  if (code === undefined) return undefined;
  const name = H2_ERROR_NAMES[rstCode as number] as string;
  return new ConnectError(
    `http/2 stream closed with error code ${name} (0x${(rstCode as number).toString(16)})`,
    code,
  );
}

const H2_ERROR_NAMES: Readonly<Record<number, string>> = {
  1: "PROTOCOL_ERROR",
  2: "INTERNAL_ERROR",
  3: "FLOW_CONTROL_ERROR",
  4: "SETTINGS_TIMEOUT",
  6: "FRAME_SIZE_ERROR",
  7: "REFUSED_STREAM",
  8: "CANCEL",
  9: "COMPRESSION_ERROR",
  10: "CONNECT_ERROR",
  11: "ENHANCE_YOUR_CALM",
  12: "INADEQUATE_SECURITY",
  13: "HTTP_1_1_REQUIRED",
};

const RESET_CODES: Readonly<Record<number, Code>> = {
  1: Code.Internal,
  2: Code.Internal,
  3: Code.Internal,
  4: Code.Internal,
  6: Code.Internal,
  7: Code.Unavailable,
  8: Code.Canceled,
  9: Code.Internal,
  10: Code.Internal,
  11: Code.ResourceExhausted,
  12: Code.PermissionDenied,
  13: Code.PermissionDenied,
};

/**
 * The compression a gRPC server picks for its answer from the request's `grpc-accept-encoding`: the first
 * name in the client's list that the server supports, or none (connect's `compressionNegotiate`, for a
 * request that is itself uncompressed). connect-node announces its pick in the answer's `grpc-encoding`
 * even when the message is too small to be compressed.
 */
export function negotiateResponseEncoding(
  available: readonly string[],
  accepted: string | undefined,
): string | undefined {
  if (accepted === undefined || accepted === "") return undefined;
  for (const name of accepted.split(",")) {
    const trimmed = name.trim();
    if (available.includes(trimmed)) return trimmed;
  }
  return undefined;
}
