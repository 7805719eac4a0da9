import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createContextKey,
} from "@connectrpc/connect";
import type { Compression, UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { REASON_HEADER } from "../service/error-map.js";
import { ByteAccumulator } from "./byte-accumulator.js";
import { parseGrpcTimeout } from "./grpc-protocol.js";
import type { SharedRpcOptions } from "./grpc-unary.js";
import {
  badEnvelopeFlags,
  COMPRESSED_WITHOUT_ENCODING,
  checkJsonRequest,
  EXTRA_MESSAGE,
  EXTRA_SERVER_STREAMING_MESSAGE,
  INCOMPLETE_ENVELOPE,
  MISSING_MESSAGE,
  MISSING_SERVER_STREAMING_MESSAGE,
  malformedRequest,
  oversizeRequest,
  parseBinaryRequest,
  type RequestLimit,
  requestLimit,
} from "./request-decoding.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The options shared with the gRPC fast path and the unary invoker (`SharedRpcOptions`: the request size
 * limit, interceptors, context values, deadline cap, compression), plus this adapter's own.
 */
export interface ConnectAdapterOptions extends SharedRpcOptions {
  readonly routes: (router: ConnectRouter) => void;
  /**
   * Called for each request refused here, before any handler or interceptor ran (so the interceptor's call
   * log and metrics never see it), with its Fieldseal reason and how long it took.
   */
  readonly onRefused?: (rpc: string, reason: string, ms: number) => void;
  /** Called with anything connect-node's handler threw past its own error handling (a bug). */
  readonly onHandlerFailure?: (err: unknown) => void;
}

/** A refusal decided from the request head, thrown by the request gate so connect encodes it per protocol. */
const refusalKey = createContextKey<ConnectError | undefined>(undefined, {
  description: "fieldseal refusal",
});

const COMPRESSIONS: readonly Compression[] = [compressionGzip, compressionBrotli];

/**
 * connect-node's adapter with Fieldseal's request checks in front, built from connect's public API only
 * (createConnectRouter, router.handlers, universalRequestFromNodeRequest, universalResponseToNodeResponse).
 *
 * Why (read in @connectrpc/connect 2.2.0): each protocol's handler-factory.js parses the request message
 * before invokeUnaryImplementation applies the interceptors, so parse errors never reach ours;
 * protocol/serialization.js createBinarySerialization reports a binary parse failure as INTERNAL
 * ("parse binary: ...") and createJsonSerialization decodes JSON with a replacing `new TextDecoder()`;
 * protocol/universal.js answers a bad verb or content-type with a bare 405/415, connect-node-adapter.js an
 * unknown path with a bare 404; and readAllBytes / envelope splitting name the `readMaxBytes` option.
 * Here each request body is checked, message by message as it streams in, before connect reads it:
 * framing, size (naming Fieldseal's setting), decompression, strict UTF-8, JSON nesting, and a full parse
 * against the method's input type. A refusal is thrown from the body connect reads, so connect itself
 * encodes it correctly for Connect, gRPC and gRPC-Web, with its `fieldseal-reason`. Valid bodies pass
 * through unchanged (connect parses them once more: this path is not the hot one, see grpc-unary.ts).
 */
export function guardedConnectAdapter(opts: ConnectAdapterOptions) {
  const max = opts.readMaxBytes;
  const router = createConnectRouter({
    interceptors: opts.interceptors,
    readMaxBytes: max,
    acceptCompression: [...COMPRESSIONS],
    ...(opts.maxTimeoutMs === undefined ? {} : { maxTimeoutMs: opts.maxTimeoutMs }),
    ...(opts.compressMinBytes === undefined ? {} : { compressMinBytes: opts.compressMinBytes }),
    // Runs before connect reads a byte of the body (each protocol's handler-factory.js says so).
    requestGate: (context) => {
      const refusal = context.values.get(refusalKey);
      if (refusal !== undefined) throw refusal;
      const denied = opts.credentialsGate?.({
        service: context.service.typeName,
        method: context.method.name,
        header: context.requestHeader,
        contextValues: context.values,
      });
      if (denied !== undefined) throw denied;
    },
  });
  opts.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);
  const services = [...new Set(router.handlers.map((h) => h.service.typeName))].join(", ");

  return (req: NodeRequest, res: NodeResponse): void => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (handler === undefined) {
      // gRPC clients read a 404 as UNIMPLEMENTED and expect no Connect body; everyone else gets one.
      const grpc = /^application\/grpc/i.test(req.headers["content-type"] ?? "");
      answerError(
        res,
        404,
        grpc
          ? undefined
          : {
              code: "unimplemented",
              message: `no procedure at this path; POST to /<service>/<method> of: ${services}`,
            },
      );
      return;
    }
    const started = performance.now();
    const rpc = `${handler.service.typeName}/${handler.method.name}`;
    const refused = (err: ConnectError) =>
      opts.onRefused?.(rpc, err.metadata.get(REASON_HEADER) ?? "", performance.now() - started);
    const values = opts.contextValues(req);
    const limit = requestLimit(max, opts.isOpenService?.(handler.service.typeName) ?? false);
    const framing = requestFraming(req.headers);
    const refusal = framing === undefined ? undefined : headRefusal(req.headers, framing, limit);
    if (refusal !== undefined) {
      values.set(refusalKey, refusal);
      refused(refusal);
    }
    const uReq = universalRequestFromNodeRequest(
      req as http.IncomingMessage,
      res as http.ServerResponse,
      undefined,
      values,
    );
    if (framing !== undefined && refusal === undefined)
      dropUnreachableDeadline(uReq.header, framing.timeout, opts.maxTimeoutMs);
    let body = uReq.body; // unless checked: a content-type or encoding connect refuses before reading it
    if (framing !== undefined && framing.compression !== undefined && isByteStream(uReq.body)) {
      const checked = checkedBody(
        uReq.body,
        handler.method.input,
        framing as Framing & { compression: Compression | null },
        { limit, kind: handler.method.methodKind },
      );
      // connect reads a unary body before any interceptor runs, so its refusal is reported here. A
      // streaming method's messages are read once the interceptor has seen the call: it logs and counts
      // the outcome itself, and reporting here too would count one call twice.
      body = handler.method.methodKind === "unary" ? reportRefusal(checked, refused) : checked;
    }
    handler({ ...uReq, body })
      .then((uRes) => universalResponseToNodeResponse(withErrorBody(uRes), res))
      .catch((err: unknown) => {
        // As connect-node: a client that went away mid-answer is not a failure.
        if (ConnectError.from(err).code !== Code.Aborted) opts.onHandlerFailure?.(err);
      });
  };
}

/**
 * What is wrong with the request head, judged before connect reads the body. connect checks these too, but
 * without a `fieldseal-reason` and, for size, naming its own option rather than our setting.
 */
function headRefusal(
  headers: http.IncomingHttpHeaders,
  framing: Framing,
  limit: RequestLimit,
): ConnectError | undefined {
  // connect checks a Connect unary body's content-length against its limit before reading a byte.
  if (!framing.enveloped && (contentLength(headers) ?? 0) > limit.bytes)
    return oversizeRequest("request body", limit.bytes, limit.setBy);
  if (framing.compression === undefined) {
    // UNIMPLEMENTED, not INVALID_ARGUMENT: gRPC's compression spec (doc/compression.md) and the Connect
    // protocol tell clients to expect it, and some retry uncompressed on it.
    const names = COMPRESSIONS.map((c) => c.name).join(",");
    return new ConnectError(`unknown compression: supported encodings are ${names}`, Code.Unimplemented, {
      [REASON_HEADER]: "invalid_argument",
    });
  }
  // The formats connect-es accepts (protocol-grpc/parse-timeout.js, protocol-connect/parse-timeout.js).
  if (framing.timeout === "grpc") {
    const value = headers["grpc-timeout"];
    if (value !== undefined && !/^\d{1,8}[HMSmun]$/.test(String(value)))
      return malformedRequest("grpc-timeout must be 1 to 8 digits and a unit: H, M, S, m, u or n");
  } else {
    const value = headers["connect-timeout-ms"];
    if (value !== undefined && !/^\d{1,10}$/.test(String(value)))
      return malformedRequest("connect-timeout-ms must be 1 to 10 digits (milliseconds)");
  }
  return undefined;
}

// Any number of digits: connect reads up to 2^53 - 1 (16 digits) and refuses one over its limit itself,
// naming its own option and without a reason. Node's parsers let no other form through.
/** The longest delay Node's timers take; a longer one fires after 1 ms, with a TimeoutOverflowWarning. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Removes a deadline more than MAX_TIMER_MS (24.8 days) away from the request head. connect arms a timer
 * for the deadline as given, and Node fires such a timer after 1 ms: the call's signal would abort at
 * once with DEADLINE_EXCEEDED, and each such request printed a warning line to stderr. A deadline that far
 * away is as good as none, as the fast path's UnaryInvoker treats it; one over a configured maximum is
 * left for connect to refuse.
 */
function dropUnreachableDeadline(
  headers: Headers,
  timeout: Framing["timeout"],
  maxTimeoutMs: number | undefined,
): void {
  const name = timeout === "grpc" ? "grpc-timeout" : "connect-timeout-ms";
  const value = headers.get(name);
  if (value === null) return;
  const ms = timeout === "grpc" ? parseGrpcTimeout(value, Number.POSITIVE_INFINITY).timeoutMs : Number(value);
  if (ms !== undefined && ms > MAX_TIMER_MS && (maxTimeoutMs === undefined || ms <= maxTimeoutMs))
    headers.delete(name);
}

function contentLength(headers: http.IncomingHttpHeaders): number | undefined {
  const value = headers["content-length"];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

interface Framing {
  /** Messages come in 5-byte-headed envelopes (gRPC, gRPC-Web, Connect streaming), else one whole body. */
  readonly enveloped: boolean;
  /** Which deadline header the protocol reads. */
  readonly timeout: "grpc" | "connect";
  readonly json: boolean;
  /** null: uncompressed; undefined: an encoding we do not accept (connect refuses it). */
  readonly compression: Compression | null | undefined;
}

/** How the body of a request with these headers is framed, as connect-es reads it; undefined if it would not. */
function requestFraming(headers: http.IncomingHttpHeaders): Framing | undefined {
  const contentType = (headers["content-type"] ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
  let m = /^application\/(proto|json)$/.exec(contentType);
  if (m !== null) return framing(false, "connect", m[1] === "json", headers["content-encoding"]);
  m = /^application\/connect\+(proto|json)$/.exec(contentType);
  if (m !== null) return framing(true, "connect", m[1] === "json", headers["connect-content-encoding"]);
  m = /^application\/grpc(?:-web)?(?:\+(proto|json))?$/.exec(contentType);
  if (m !== null) return framing(true, "grpc", m[1] === "json", headers["grpc-encoding"]);
  return undefined;
}

function framing(
  enveloped: boolean,
  timeout: Framing["timeout"],
  json: boolean,
  encoding: string | string[] | undefined,
): Framing {
  const name = Array.isArray(encoding) ? encoding.join(",") : encoding;
  // Matched exactly, as connect matches it.
  const compression =
    name === undefined || name === "identity" ? null : COMPRESSIONS.find((c) => c.name === name);
  return { enveloped, timeout, json, compression };
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** `body`, telling `refused` when it ends in one of our refusals (not a client that went away). */
async function* reportRefusal(
  body: AsyncIterable<Uint8Array>,
  refused: (err: ConnectError) => void,
): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } catch (e) {
    if (e instanceof ConnectError && e.metadata.has(REASON_HEADER)) refused(e);
    throw e;
  }
}

/** The request body, passed on as it arrives, each message checked before connect sees it. */
async function* checkedBody(
  source: AsyncIterable<Uint8Array>,
  schema: DescMessage,
  framing: Framing & { compression: Compression | null },
  limits: { limit: RequestLimit; kind: DescMethod["methodKind"] },
): AsyncGenerator<Uint8Array> {
  const check = async (payload: Uint8Array, compressed: boolean) => {
    let message = payload;
    if (compressed) {
      if (framing.compression === null) throw malformedRequest(COMPRESSED_WITHOUT_ENCODING);
      message = await decompress(framing.compression, payload, limits.limit);
    }
    if (framing.json) checkJsonRequest(schema, message);
    else parseBinaryRequest(schema, message);
  };
  // One buffer, not a list of chunks: a body sent one byte per DATA frame costs what a whole one does.
  const max = limits.limit.bytes;
  const oversize = (what: string) => oversizeRequest(what, max, limits.limit.setBy);
  const held = new ByteAccumulator(framing.enveloped ? 5 + max : max);
  if (!framing.enveloped) {
    for await (const chunk of source) {
      if (held.length + chunk.byteLength > max) throw oversize("request body");
      held.append(chunk);
    }
    const body = held.view();
    await check(body, framing.compression !== null);
    yield body;
    return;
  }
  // Unary and server-streaming methods take exactly one message (connect answers UNIMPLEMENTED, without a
  // reason, to none or two for a server-streaming one).
  const single =
    limits.kind === "unary"
      ? { extra: EXTRA_MESSAGE, missing: MISSING_MESSAGE }
      : limits.kind === "server_streaming"
        ? { extra: EXTRA_SERVER_STREAMING_MESSAGE, missing: MISSING_SERVER_STREAMING_MESSAGE }
        : undefined;
  let messages = 0;
  for await (const chunk of source) {
    held.append(chunk);
    for (;;) {
      const pending = held.view();
      if (pending.length < 5) break;
      const flags = pending[0] as number;
      const size = pending.readUInt32BE(1);
      if (size > max) throw oversize(`message of ${size} bytes`);
      if (pending.length < 5 + size) break;
      const envelope = pending.subarray(0, 5 + size);
      held.consume(5 + size);
      // Bit 0 is "compressed"; no other flag is defined for a request message.
      if ((flags & ~1) !== 0) throw badEnvelopeFlags(flags);
      await check(envelope.subarray(5), (flags & 1) === 1);
      if (single !== undefined && ++messages > 1) throw malformedRequest(single.extra);
      yield envelope;
    }
  }
  if (held.length > 0) throw malformedRequest(INCOMPLETE_ENVELOPE);
  if (single !== undefined && messages === 0) throw malformedRequest(single.missing);
}

async function decompress(
  compression: Compression,
  payload: Uint8Array,
  limit: RequestLimit,
): Promise<Uint8Array> {
  try {
    return await compression.decompress(payload, limit.bytes);
  } catch (e) {
    // connect-node's zlib wrapper says RESOURCE_EXHAUSTED when the output passes the limit.
    if (e instanceof ConnectError && e.code === Code.ResourceExhausted)
      throw oversizeRequest(`message after ${compression.name} decompression`, limit.bytes, limit.setBy);
    throw malformedRequest(`message is not valid ${compression.name} data`);
  }
}

const SUPPORTED_TYPES =
  "application/json or application/proto (Connect), application/grpc[+proto|+json] (gRPC), " +
  "application/grpc-web[+proto|+json] (gRPC-Web), application/connect+proto|json (Connect streaming)";

/**
 * connect answers a wrong verb, content-type or HTTP version with a bare status; give it a Connect error
 * body. A bidirectional stream over HTTP/1.1 is the caller's mistake, so 400 rather than connect's 505.
 */
function withErrorBody(uRes: UniversalServerResponse): UniversalServerResponse {
  if (uRes.body !== undefined) return uRes;
  if (uRes.status === 415)
    return errorResponse(415, "invalid_argument", `unsupported content-type; send ${SUPPORTED_TYPES}`);
  if (uRes.status === 405)
    return errorResponse(405, "invalid_argument", "method not allowed; use POST", { allow: "POST" });
  if (uRes.status === 505)
    return errorResponse(400, "invalid_argument", "bidirectional streaming needs HTTP/2", {
      connection: "close",
    });
  return uRes;
}

function errorBody(code: string, message: string): Uint8Array {
  return Buffer.from(JSON.stringify({ code, message }));
}

function errorResponse(
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): UniversalServerResponse {
  const body = errorBody(code, message);
  return {
    status,
    header: new Headers({
      ...extra,
      "content-type": "application/json",
      "content-length": String(body.byteLength),
      [REASON_HEADER]: "invalid_argument",
    }),
    body: (async function* () {
      yield body;
    })(),
  };
}

function answerError(
  res: NodeResponse,
  status: number,
  error: { code: string; message: string } | undefined,
): void {
  const body = error === undefined ? Buffer.alloc(0) : errorBody(error.code, error.message);
  (res as http.ServerResponse).writeHead(status, {
    ...(error === undefined ? {} : { "content-type": "application/json" }),
    "content-length": body.byteLength,
    [REASON_HEADER]: "invalid_argument",
  });
  res.end(body);
}
