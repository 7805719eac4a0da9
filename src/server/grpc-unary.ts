import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { CredentialsGate } from "../service/interceptor.js";
import type { UnaryInvoker, UnaryRoute } from "../service/unary-invoker.js";
import { ByteAccumulator } from "./byte-accumulator.js";
import {
  abortReasonOfReset,
  GRPC_STATUS_OK,
  negotiateResponseEncoding,
  parseGrpcTimeout,
  setGrpcTrailerStatus,
} from "./grpc-protocol.js";
import {
  badEnvelopeFlags,
  COMPRESSED_WITHOUT_ENCODING,
  EXTRA_MESSAGE,
  INCOMPLETE_ENVELOPE,
  MISSING_MESSAGE,
  malformedRequest,
  oversizeRequest,
  parseBinaryRequest,
  type RequestLimit,
  requestLimit,
} from "./request-decoding.js";

/**
 * The options the fast path shares with connect-node. src/server/app.ts builds one object of this type and
 * hands the same object to `connectNodeAdapter`, to the UnaryInvoker and to the fast path, so a limit, an
 * interceptor or a context value cannot apply to one pipeline and not the other. It is a subset of
 * connect-node's options on purpose: an option the fast path does not honour cannot be set here.
 */
export type SharedRpcOptions = Required<
  Pick<ConnectNodeAdapterOptions, "readMaxBytes" | "interceptors" | "contextValues">
> &
  Pick<ConnectNodeAdapterOptions, "maxTimeoutMs" | "acceptCompression" | "compressMinBytes"> & {
    /**
     * Judges a call's credentials from its headers alone, before a byte of its body is read, so a client
     * without credentials never has a request body buffered (the interceptor authenticates again, and
     * authorizes, once the message is in). Returns the refusal, or undefined to go on.
     */
    readonly credentialsGate?: CredentialsGate;
    /**
     * Whether a service answers without credentials (health, reflection): its requests are held to
     * OPEN_SERVICE_MAX_BYTES (request-decoding.ts), since anyone may send them.
     */
    readonly isOpenService?: (service: string) => boolean;
  };

const FRAME_HEADER = 5;

/**
 * Serves the common case of gRPC, a unary call with an uncompressed binary message over HTTP/2, straight
 * from the request: one buffer in, the invoker, one frame and the trailers out. connect-node's general
 * pipeline (async iterables, a linked abort controller per call, envelope transforms) costs more than the
 * RPCs themselves, and this is the path every gRPC client in production takes.
 *
 * Returns false, having touched nothing, for everything else (gRPC-Web, JSON, compressed messages,
 * streaming or unknown methods, unparseable or too long timeouts, a client that accepts a compression
 * connect-node might apply), which the Connect adapter then serves. Error codes and messages for protocol
 * faults, and every header and trailer, are the ones connect-node gives, so a client cannot tell the paths
 * apart (test/server/grpc-unary.test.ts).
 */
export function grpcUnaryFastPath(invoker: UnaryInvoker, opts: SharedRpcOptions) {
  // connect's default when no maximum is configured (validateUniversalHandlerOptions).
  const maxTimeoutMs = opts.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER;
  // connect-node's defaults (connectNodeAdapter, validateReadWriteMaxBytes) when none are configured.
  const compressions = (opts.acceptCompression ?? [compressionGzip, compressionBrotli]).map((c) => c.name);
  const compressMinBytes = opts.compressMinBytes ?? 1024;
  return (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean => {
    if (req.method !== "POST") return false;
    const contentType = req.headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const route = invoker.route(req.url);
    if (route === undefined) return false;
    const accepted = req.headers["grpc-accept-encoding"];
    const responseEncoding = negotiateResponseEncoding(
      compressions,
      Array.isArray(accepted) ? accepted.join(", ") : accepted,
    );
    // connect-node names the compression it picked in the answer's header, and compresses an answer of
    // compressMinBytes or more. This path never compresses: it serves such a client only when no answer
    // can be that large.
    if (responseEncoding !== undefined && compressMinBytes !== Number.POSITIVE_INFINITY) return false;
    // connect-node refuses a request without an authority; let it say so.
    if (req.authority === undefined || req.authority === "") return false;
    const timeoutHeader = req.headers["grpc-timeout"];
    // The deadline counts from the request's arrival, as connect-node counts it.
    let deadline: number | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = parseGrpcTimeout(timeoutHeader as string, maxTimeoutMs);
      if (timeout.error !== undefined || timeout.timeoutMs === undefined) return false;
      deadline = Date.now() + timeout.timeoutMs;
    }
    serve(invoker, route, req, res, opts, deadline, responseEncoding);
    return true;
  };
}

function serve(
  invoker: UnaryInvoker,
  route: UnaryRoute,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  opts: SharedRpcOptions,
  deadline: number | undefined,
  responseEncoding: string | undefined,
): void {
  // Decided as the request arrives, not after its body: whether the server is draining, and the peer.
  const contextValues = opts.contextValues(req);
  const aborter = new AbortController();
  // What the handler and the interceptors set, kept for the answer even when the call fails. They start
  // as connect-node's handler context starts them, so a handler sees the same on either path.
  const responseHeader = new Headers({ "content-type": "application/grpc+proto" });
  if (responseEncoding !== undefined) responseHeader.set("grpc-encoding", responseEncoding);
  const responseTrailer = new Headers({ "grpc-status": GRPC_STATUS_OK });
  let answered = false;
  // The client went away (RST_STREAM, connection lost) before the answer: tell whatever is still running,
  // with the reason connect-node gives for the same reset code.
  res.once("close", () => {
    if (!answered) aborter.abort(abortReasonOfReset(res.stream.rstCode));
  });

  const answer = (message: Uint8Array | undefined, header: Headers, trailer: Headers) => {
    // A stream the client reset takes no answer (Http2ServerResponse has no `destroyed` of its own).
    if (answered || res.stream.destroyed || res.writableEnded) return;
    answered = true;
    res.writeHead(200, nodeHeaders(header));
    res.addTrailers(nodeHeaders(trailer));
    if (message === undefined) {
      res.end();
      return;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, FRAME_HEADER);
    res.end(frame);
  };
  const fail = (err: unknown) => {
    const error =
      err instanceof ConnectError
        ? err
        : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    answer(undefined, responseHeader, setGrpcTrailerStatus(responseTrailer, error));
  };

  const header = webHeaders(req.headers);
  const refused = opts.credentialsGate?.({
    service: route.method.parent.typeName,
    method: route.method.name,
    header,
    contextValues,
  });
  if (refused !== undefined) {
    // Answered without reading the body; what the client still sends is discarded, never buffered, and
    // once the answer is out the stream is closed with NO_ERROR (RFC 9113 §8.1), so the client cannot keep
    // it open by sending a body nobody will read.
    req.resume();
    fail(refused);
    // After the trailers: the compat layer sends them on `wantTrailers`, and a reset queued before they
    // left would drop them.
    res.stream.once("wantTrailers", () =>
      setImmediate(() => {
        if (!res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }),
    );
    return;
  }
  const limit = requestLimit(opts.readMaxBytes, opts.isOpenService?.(route.method.parent.typeName) ?? false);
  readUnaryMessage(req, route.method.input, limit, (err, input) => {
    if (err !== undefined || input === undefined) return fail(err);
    invoker
      .invoke(route, input, {
        header,
        contextValues,
        signal: aborter.signal,
        deadline,
        protocolName: "grpc",
        requestMethod: "POST",
        // As connect-node builds it: the scheme from the socket, not from what the client claims.
        url: new URL(
          req.url,
          `${(req.socket as TLSSocket).encrypted ? "https" : "http"}://${req.authority}`,
        ).toString(),
        responseHeader,
        responseTrailer,
      })
      .then(
        (out) => {
          // As connect-node answers: the headers and trailers the interceptors returned, as they are.
          answer(toBinary(route.method.output, out.message), out.header, out.trailer);
        },
        (e: unknown) => fail(e),
      )
      .catch(() => {
        // Only a bug gets here (the answer could not be encoded or written): reset the stream rather
        // than leave the call hanging, and never let it become an unhandled rejection.
        if (!res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
  });
}

/**
 * Reads the one message of a unary request, checking it frame by frame as it arrives, in the order the
 * guarded connect adapter (connect-adapter.ts, checkedBody) checks it, so both paths refuse the same body
 * with the same answer: a frame header announcing more than `limit.bytes` is RESOURCE_EXHAUSTED before its payload
 * is buffered; a complete frame's flags, then its payload, are checked before the next frame is looked at;
 * a second valid frame is "extra"; bytes left at the end that are no whole frame are an incomplete envelope.
 * At most two frames (and a header) are ever held: whatever follows a second frame cannot make it valid.
 * Chunks are gathered in a ByteAccumulator: a body sent one byte per DATA frame costs what a whole one does.
 */
function readUnaryMessage<D extends DescMessage>(
  req: http2.Http2ServerRequest,
  schema: D,
  limit: RequestLimit,
  done: (err: ConnectError | undefined, message?: MessageShape<D>) => void,
): void {
  const held = new ByteAccumulator(FRAME_HEADER + limit.bytes);
  let finished = false;
  const finish = (err: ConnectError | undefined, message?: MessageShape<D>) => {
    if (finished) return;
    finished = true;
    req.off("data", onData);
    req.resume();
    done(err, message);
  };
  // The message of the first frame once it is parsed.
  let message: MessageShape<D> | undefined;
  const onData = (chunk: Buffer) => {
    held.append(chunk);
    try {
      for (;;) {
        const pending = held.view();
        if (pending.length < FRAME_HEADER) break;
        const announced = pending.readUInt32BE(1);
        if (announced > limit.bytes)
          throw oversizeRequest(`message of ${announced} bytes`, limit.bytes, limit.setBy);
        const end = FRAME_HEADER + announced;
        if (pending.length < end) break;
        const flags = pending[0] as number;
        // Bit 0 is "compressed", which needs a grpc-encoding this path never serves; no other flag is defined.
        if ((flags & ~0b01) !== 0) throw badEnvelopeFlags(flags);
        if ((flags & 0b01) === 0b01) throw malformedRequest(COMPRESSED_WITHOUT_ENCODING);
        const parsed = parseBinaryRequest(schema, pending.subarray(FRAME_HEADER, end));
        if (message !== undefined) throw malformedRequest(EXTRA_MESSAGE);
        message = parsed;
        held.consume(end);
      }
    } catch (e) {
      finish(e as ConnectError);
    }
  };
  req.on("data", onData);
  req.once("end", () => {
    if (held.length > 0) finish(malformedRequest(INCOMPLETE_ENVELOPE));
    else if (message === undefined) finish(malformedRequest(MISSING_MESSAGE));
    else finish(undefined, message);
  });
  // Every stream closes, most of them after their body was read: build the error only when it is news (a
  // ConnectError captures a stack trace, which cost more than the rest of a health check).
  req.once("error", () => {
    if (!finished) finish(new ConnectError("the request stream failed", Code.Canceled));
  });
  // Reset or cut off before its end: nothing is parsed or invoked, and nothing waits for more data.
  req.once("close", () => {
    if (!finished) finish(new ConnectError("the request stream closed early", Code.Canceled));
  });
}

/**
 * Web Headers as Node's header object, as connect-node writes them (webHeaderToNodeHeaders): names in
 * lowercase, a name given more than once (only `set-cookie` can be) as an array.
 */
function nodeHeaders(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  headers.forEach((value, name) => {
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  });
  return out;
}

/** Node's header object as web Headers, without HTTP/2 pseudo-headers (which Headers cannot hold). */
function webHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(name, v);
    else out.set(name, value);
  }
  return out;
}
