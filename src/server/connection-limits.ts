import type * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import type { ConnectionLimits } from "../config.js";

export type { ConnectionLimits };

/**
 * Admits a new connection only while its peer address holds fewer than `maxConnectionsPerPeer`; the
 * total is bounded by `net.Server.maxConnections`, which Node enforces before a socket is even created.
 * Returns false (after closing the socket) when the connection is refused.
 */
export function peerAdmission(limits: ConnectionLimits): (socket: net.Socket) => boolean {
  const perPeer = new Map<string, number>();
  return (socket) => {
    const peer = socket.remoteAddress ?? "";
    const n = perPeer.get(peer) ?? 0;
    if (n >= limits.maxConnectionsPerPeer) {
      socket.destroy();
      return false;
    }
    perPeer.set(peer, n + 1);
    socket.once("close", () => {
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left === 0) perPeer.delete(peer);
      else perPeer.set(peer, left);
    });
    return true;
  };
}

/** Node's HTTP/2 options that carry the limits: concurrent streams and the header list size. */
export function http2Settings(limits: ConnectionLimits, maxHeaderBytes: number): http2.Settings {
  return { maxConcurrentStreams: limits.h2MaxConcurrentStreams, maxHeaderListSize: maxHeaderBytes };
}

/**
 * Closes (GOAWAY) an HTTP/2 session after `h2IdleTimeoutMs` without traffic, and resets each stream whose
 * request has not ended `bodyTimeoutMs` after its headers, so a client cannot hold streams open by never
 * sending a body. Streams whose request has ended are left alone however long their answer takes.
 */
export function boundHttp2(server: http2.Http2Server | http2.Http2SecureServer, limits: ConnectionLimits) {
  server.on("session", (session: http2.ServerHttp2Session) => {
    session.setTimeout(limits.h2IdleTimeoutMs, () => session.close());
  });
  server.on("stream", (stream: http2.ServerHttp2Stream, _headers, flags: number) => {
    // END_STREAM on the HEADERS frame: there is no body to wait for.
    if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) return;
    const timer = setTimeout(() => {
      if (!stream.closed && stream.state.remoteClose !== 1) stream.close(http2.constants.NGHTTP2_CANCEL);
    }, limits.bodyTimeoutMs);
    timer.unref();
    stream.once("close", () => clearTimeout(timer));
  });
}

/**
 * Deadlines for HTTP/1.1 connections, kept by one timer per connection. Node's own `headersTimeout` and
 * `requestTimeout` are checked by a timer that only a listening `http.Server` starts (`_http_server.js`,
 * setupConnectionsTracking on 'listening'); the cleartext HTTP/1.1 server here is handed sockets and never
 * listens, so these deadlines are kept here, alike for both listeners.
 *
 * - the request head must be complete `headTimeoutMs` after the connection was handed over, or after the
 *   previous response plus the keep-alive time (Node closes an idle keep-alive connection itself, but stops
 *   counting at the next request's first byte);
 * - the request body must end `bodyTimeoutMs` after its head.
 *
 * A head that misses its deadline is answered 408 and the connection closed; a body that misses its
 * deadline has its connection destroyed (a response may already be under way).
 */
export class Http1Deadlines {
  readonly #limits: ConnectionLimits;
  readonly #conns = new WeakMap<net.Socket, { timer: NodeJS.Timeout | undefined; active: number }>();

  constructor(server: http.Server | http2.Http2SecureServer, limits: ConnectionLimits) {
    this.#limits = limits;
    server.on("request", (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse) => {
      if (req.httpVersionMajor !== 1) return;
      const socket = req.socket as net.Socket;
      const conn = this.#conns.get(socket);
      if (conn === undefined) return;
      const r = req as http.IncomingMessage;
      conn.active++;
      clearTimeout(conn.timer);
      conn.timer = r.complete
        ? undefined
        : deadline(limits.bodyTimeoutMs, () => !r.complete && socket.destroy());
      res.once("close", () => {
        conn.active--;
        if (conn.active > 0 || socket.destroyed) return;
        clearTimeout(conn.timer);
        conn.timer = deadline(limits.keepAliveTimeoutMs + 1000 + limits.headTimeoutMs, () =>
          requestTimeout(socket),
        );
      });
    });
  }

  /** A connection handed to the HTTP/1.1 parser: its first request head is due within `headTimeoutMs`. */
  connection(socket: net.Socket): void {
    const conn = {
      timer: deadline(this.#limits.headTimeoutMs, () => requestTimeout(socket)),
      active: 0,
    };
    this.#conns.set(socket, conn);
    socket.once("close", () => clearTimeout(conn.timer));
  }
}

function deadline(ms: number, expire: () => void): NodeJS.Timeout {
  const timer = setTimeout(expire, ms);
  timer.unref();
  return timer;
}

const REQUEST_TIMEOUT = Buffer.from(
  "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\nfieldseal-reason: request_head_timeout\r\n\r\n",
);

/** Answers 408 to a request head that did not arrive in time and closes, without waiting for the peer. */
function requestTimeout(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (!socket.writable) return void socket.destroy();
  socket.end(REQUEST_TIMEOUT, () => socket.destroy());
  // A peer that does not read must not keep the socket either.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Closes a connection that has not sent its first bytes `firstBytesTimeoutMs` after it was accepted. */
export function firstBytesDeadline(socket: net.Socket, limits: ConnectionLimits): () => void {
  const timer = setTimeout(() => socket.destroy(), limits.firstBytesTimeoutMs);
  timer.unref();
  return () => clearTimeout(timer);
}
