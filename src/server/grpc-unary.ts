import * as http2 from "node:http2";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { UnaryInvoker, UnaryRoute } from "../service/unary-invoker.js";
import {
  badEnvelopeFlags,
  COMPRESSED_WITHOUT_ENCODING,
  EXTRA_MESSAGE,
  INCOMPLETE_ENVELOPE,
  MISSING_MESSAGE,
  malformedRequest,
  oversizeRequest,
  parseBinaryRequest,
} from "./request-decoding.js";

export interface GrpcUnaryOptions {
  /** Largest request message accepted, in bytes (the same limit the Connect adapter applies). */
  readonly readMaxBytes: number;
  /** The per-call context values (peer certificate, draining flag), decided as the request arrives. */
  readonly contextValues: (req: http2.Http2ServerRequest) => ContextValues;
}

const FRAME_HEADER = 5;

/**
 * Serves the common case of gRPC, a unary call with an uncompressed binary message over HTTP/2, straight
 * from the request: one buffer in, the invoker, one frame and the trailers out. connect-node's general
 * pipeline (async iterables, a linked abort controller per call, envelope transforms) costs more than the
 * RPCs themselves, and this is the path every gRPC client in production takes.
 *
 * Returns false, having touched nothing, for everything else (gRPC-Web, JSON, compressed messages,
 * streaming or unknown methods, unparseable timeouts), which the Connect adapter then serves. Error codes
 * and messages for protocol faults are the ones connect-node gives, so a client cannot tell the paths apart.
 */
export function grpcUnaryFastPath(invoker: UnaryInvoker, opts: GrpcUnaryOptions) {
  return (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean => {
    if (req.method !== "POST") return false;
    const contentType = req.headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const route = invoker.route(req.url);
    if (route === undefined) return false;
    const timeoutHeader = req.headers["grpc-timeout"];
    // The deadline counts from the request's arrival, as connect-node counts it.
    let deadline: number | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = parseTimeout(timeoutHeader as string, Number.MAX_SAFE_INTEGER);
      if (timeout.error !== undefined || timeout.timeoutMs === undefined) return false;
      deadline = Date.now() + timeout.timeoutMs;
    }
    serve(invoker, route, req, res, opts, deadline);
    return true;
  };
}

function serve(
  invoker: UnaryInvoker,
  route: UnaryRoute,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  opts: GrpcUnaryOptions,
  deadline: number | undefined,
): void {
  // Decided as the request arrives, not after its body: whether the server is draining, and the peer.
  const contextValues = opts.contextValues(req);
  const aborter = new AbortController();
  let answered = false;
  // The client went away (RST_STREAM, connection lost) before the answer: tell whatever is still running.
  res.once("close", () => {
    if (!answered) aborter.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  });

  const answer = (message: Uint8Array | undefined, header: Headers | undefined, trailer: Headers) => {
    // A stream the client reset takes no answer (Http2ServerResponse has no `destroyed` of its own).
    if (answered || res.stream.destroyed || res.writableEnded) return;
    answered = true;
    const head: Record<string, string> = { "content-type": "application/grpc+proto" };
    header?.forEach((value, name) => {
      head[name] = value;
    });
    res.writeHead(200, head);
    const trailers: Record<string, string> = {};
    trailer.forEach((value, name) => {
      trailers[name] = value;
    });
    res.addTrailers(trailers);
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
    answer(undefined, undefined, setTrailerStatus(new Headers(), error));
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
        url: `http://${req.headers[":authority"] ?? "localhost"}${req.url}`,
      })
      .then(
        (out) => {
          const trailer = new Headers(out.trailer);
          trailer.set("grpc-status", "0");
          answer(toBinary(route.method.output, out.message), out.header, trailer);
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
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
    while (!finished) {
      if (frameEnd === undefined) {
        if (length < frameStart + FRAME_HEADER) return;
        const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
        const announced = all.readUInt32BE(frameStart + 1);
        if (announced > max) {
          finish(oversizeRequest(`message of ${announced} bytes`, max));
          return;
        }
        frameEnd = frameStart + FRAME_HEADER + announced;
      }
      if (length < frameEnd) return;
      frames++;
      if (frames === 2) {
        finish(undefined, Buffer.concat(chunks).subarray(0, frameEnd));
        return;
      }
      frameStart = frameEnd;
      frameEnd = undefined;
    }
  };
  req.on("data", onData);
  req.once("end", () =>
    finish(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
  );
  req.once("error", () => finish(new ConnectError("the request stream failed", Code.Canceled)));
}

/**
 * The one message of a unary request body, checked in the order connect-node checks it: each frame is
 * split, decompressed and parsed before the next is looked at, and only a second *valid* frame is "extra".
 */
function decodeUnary<D extends DescMessage>(schema: D, body: Buffer): MessageShape<D> {
  if (body.length === 0) {
    throw malformedRequest(MISSING_MESSAGE);
  }
  const first = frameAt(body, 0);
  const message = parseFrame(schema, first.payload);
  if (first.end === body.length) return message;
  parseFrame(schema, frameAt(body, first.end).payload);
  throw malformedRequest(EXTRA_MESSAGE);
}

function frameAt(body: Buffer, start: number): { payload: Uint8Array; end: number } {
  if (body.length < start + FRAME_HEADER) throw malformedRequest(INCOMPLETE_ENVELOPE);
  const flags = body[start] as number;
  const end = start + FRAME_HEADER + body.readUInt32BE(start + 1);
  if (body.length < end) throw malformedRequest(INCOMPLETE_ENVELOPE);
  // Bit 0 is "compressed", which needs a grpc-encoding this path never serves; no other flag is defined.
  if ((flags & 0b01) === 0b01) throw malformedRequest(COMPRESSED_WITHOUT_ENCODING);
  if (flags !== 0) throw badEnvelopeFlags(flags);
  return { payload: body.subarray(start + FRAME_HEADER, end), end };
}

function parseFrame<D extends DescMessage>(schema: D, payload: Uint8Array): MessageShape<D> {
  return parseBinaryRequest(schema, payload);
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
