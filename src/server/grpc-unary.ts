import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { UnaryInvoker, UnaryRoute } from "../service/unary-invoker.js";
import {
  abortReasonOfReset,
  GRPC_STATUS_OK,
  negotiateResponseEncoding,
  parseGrpcTimeout,
  setGrpcTrailerStatus,
} from "./grpc-protocol.js";

/**
 * The options the fast path shares with connect-node. src/server/app.ts builds one object of this type and
 * hands the same object to `connectNodeAdapter`, to the UnaryInvoker and to the fast path, so a limit, an
 * interceptor or a context value cannot apply to one pipeline and not the other. It is a subset of
 * connect-node's options on purpose: an option the fast path does not honour cannot be set here.
 */
export type SharedRpcOptions = Required<
  Pick<ConnectNodeAdapterOptions, "readMaxBytes" | "interceptors" | "contextValues">
> &
  Pick<ConnectNodeAdapterOptions, "maxTimeoutMs" | "acceptCompression" | "compressMinBytes">;

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

  readBody(req, opts.readMaxBytes, (err, body) => {
    if (err !== undefined) return fail(err);
    let input: MessageShape<DescMessage>;
    try {
      input = decodeUnary(route.method.input, body as Buffer);
    } catch (e) {
      return fail(e);
    }
    invoker
      .invoke(route, input, {
        header: webHeaders(req.headers),
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
 * Collects the request body, refusing it as soon as a frame header announces a message larger than `max`
 * (RESOURCE_EXHAUSTED, as connect-node does) rather than after buffering it. Once a second frame is
 * complete nothing more is read: the request is invalid whatever follows, and `decodeUnary` says why.
 * connect's envelope decoder reads every frame header of a chunk before it hands on the chunk's first
 * message, so the headers that arrived in the same chunk as the second frame's end are still checked.
 */
function readBody(
  req: http2.Http2ServerRequest,
  max: number,
  done: (err: ConnectError | undefined, body?: Buffer) => void,
): void {
  const chunks: Buffer[] = [];
  let length = 0;
  let finished = false;
  const finish = (err: ConnectError | undefined, body?: Buffer) => {
    if (finished) return;
    finished = true;
    req.off("data", onData);
    if (err !== undefined || body !== undefined) req.resume();
    done(err, body);
  };
  // Where the frame being read starts, and where it ends once its header is in.
  let frameStart = 0;
  let frameEnd: number | undefined;
  let frames = 0;
  // Where the second frame ends, once it is complete.
  let secondEnd: number | undefined;
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
    const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
    for (;;) {
      if (frameEnd === undefined) {
        if (length < frameStart + FRAME_HEADER) break;
        const announced = all.readUInt32BE(frameStart + 1);
        if (announced > max) {
          finish(
            new ConnectError(
              `message size ${announced} is larger than configured readMaxBytes ${max}`,
              Code.ResourceExhausted,
            ),
          );
          return;
        }
        frameEnd = frameStart + FRAME_HEADER + announced;
      }
      if (length < frameEnd) break;
      frames++;
      if (frames === 2) secondEnd = frameEnd;
      frameStart = frameEnd;
      frameEnd = undefined;
    }
    if (secondEnd !== undefined) finish(undefined, all.subarray(0, secondEnd));
  };
  req.on("data", onData);
  req.once("end", () =>
    finish(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
  );
  req.once("error", () => finish(new ConnectError("the request stream failed", Code.Canceled)));
  // Reset or cut off before its end: nothing is parsed or invoked, and nothing waits for more data.
  req.once("close", () => finish(new ConnectError("the request stream closed early", Code.Canceled)));
}

/**
 * The one message of a unary request body, checked in the order connect-node checks it: each frame is
 * split, decompressed and parsed before the next is looked at, and only a second *valid* frame is "extra".
 */
function decodeUnary<D extends DescMessage>(schema: D, body: Buffer): MessageShape<D> {
  const first = frameAt(body, 0);
  if (first === undefined) {
    throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  }
  const message = parseFrame(schema, first.payload);
  const second = frameAt(body, first.end);
  if (second === undefined) return message;
  parseFrame(schema, second.payload);
  throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
}

/**
 * The frame starting at `start`, as connect's envelope decoder (protocol/envelope.ts) sees it: nothing
 * there, or a frame header with not one byte of its payload after it, is no frame; a header or a payload
 * cut short is an incomplete envelope. (So a body ending in a bare 5-byte header answers as if the header
 * were absent; connect-node does the same, and the parity test holds both to it.)
 */
function frameAt(body: Buffer, start: number): { payload: Uint8Array; end: number } | undefined {
  const rest = body.length - start;
  if (rest === 0) return undefined;
  if (rest < FRAME_HEADER)
    throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const flags = body[start] as number;
  const end = start + FRAME_HEADER + body.readUInt32BE(start + 1);
  if (body.length < end) {
    if (rest === FRAME_HEADER) return undefined;
    throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  }
  if ((flags & 0b01) === 0b01) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  }
  return { payload: body.subarray(start + FRAME_HEADER, end), end };
}

function parseFrame<D extends DescMessage>(schema: D, payload: Uint8Array): MessageShape<D> {
  try {
    return fromBinary(schema, payload);
  } catch (e) {
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
  }
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
