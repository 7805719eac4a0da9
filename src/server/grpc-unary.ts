import type * as http2 from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { UnaryInvoker, UnaryRoute } from "../service/unary-invoker.js";

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
    let timeoutMs: number | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = parseTimeout(timeoutHeader as string, Number.MAX_SAFE_INTEGER);
      if (timeout.error !== undefined) return false;
      timeoutMs = timeout.timeoutMs;
    }
    serve(invoker, route, req, res, opts, timeoutMs);
    return true;
  };
}

function serve(
  invoker: UnaryInvoker,
  route: UnaryRoute,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  opts: GrpcUnaryOptions,
  timeoutMs: number | undefined,
): void {
  const contextValues = opts.contextValues(req);
  const aborter = new AbortController();
  let answered = false;
  // The client went away (RST_STREAM, connection lost) before the answer: tell whatever is still running.
  res.once("close", () => {
    if (!answered) aborter.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  });

  const answer = (message: Uint8Array | undefined, header: Headers | undefined, trailer: Headers) => {
    if (answered || res.destroyed) return;
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
    let input: ReturnType<typeof fromBinary>;
    try {
      input = fromBinary(route.method.input, unframe(body as Buffer));
    } catch (e) {
      return fail(
        e instanceof ConnectError
          ? e
          : new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal),
      );
    }
    invoker
      .invoke(route, input, {
        header: webHeaders(req.headers),
        contextValues,
        signal: aborter.signal,
        timeoutMs,
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
        (e: unknown) => {
          // A deadline that passed while the handler ran: it no longer needs to go on.
          if (e instanceof ConnectError && e.code === Code.DeadlineExceeded) aborter.abort(e);
          fail(e);
        },
      );
  });
}

/**
 * Collects the request body, refusing it as soon as the message it announces is larger than `max`
 * (RESOURCE_EXHAUSTED, as connect-node does) rather than after buffering it.
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
    if (err !== undefined) req.resume();
    done(err, body);
  };
  let announced: number | undefined;
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
    if (announced === undefined && length >= FRAME_HEADER) {
      announced = (chunks.length === 1 ? chunk : Buffer.concat(chunks)).readUInt32BE(1);
      if (announced > max) {
        finish(
          new ConnectError(
            `message size ${announced} is larger than configured readMaxBytes ${max}`,
            Code.ResourceExhausted,
          ),
        );
      }
    }
    // Room for a second frame header past the announced message: never a valid unary request, so the rest
    // is not buffered.
    if (announced !== undefined && length > 2 * FRAME_HEADER + announced) {
      finish(
        new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented),
      );
    }
  };
  req.on("data", onData);
  req.once("end", () =>
    finish(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
  );
  req.once("error", () => finish(new ConnectError("the request stream failed", Code.Canceled)));
}

/** The one message of a unary request body, checked exactly as connect-node checks it. */
function unframe(body: Buffer): Uint8Array {
  if (body.length === 0) {
    throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  }
  if (body.length < FRAME_HEADER)
    throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if ((flags & 0b01) === 0b01) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  }
  const end = FRAME_HEADER + length;
  if (body.length < end) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (body.length > end) {
    throw new ConnectError(
      "protocol error: received extra input message for unary method",
      Code.Unimplemented,
    );
  }
  return body.subarray(FRAME_HEADER, end);
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
