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
 * Closes (GOAWAY) an HTTP/2 session after `h2IdleTimeoutMs` without traffic, and resets (CANCEL) a stream
 * - whose request has not ended `bodyTimeoutMs` after its headers, so a client cannot hold streams open
 *   by never sending a body;
 * - whose answer has bytes waiting and none of them was taken by the client over a whole `bodyTimeoutMs`
 *   (checked every `bodyTimeoutMs`, so cut within twice that): a client that never opens its
 *   flow-control window would otherwise hold the stream, its answer and (GOAWAY waits for open streams)
 *   its session forever.
 * A stream whose request has ended and whose answer is still being computed is left alone however long
 * it takes. Node's own stream timeout cannot tell a stalled answer: it restarts whenever the session
 * sends anything, such as a PING acknowledgement.
 */
export function boundHttp2(server: http2.Http2Server | http2.Http2SecureServer, limits: ConnectionLimits) {
  server.on("session", (session: http2.ServerHttp2Session) => {
    session.setTimeout(limits.h2IdleTimeoutMs, () => session.close());
  });
  server.on("stream", (stream: WatchedStream) => {
    // Module-level callbacks: a stream costs one timer and no closure.
    stream[kWatch] = {
      timer: setTimeout(checkStream, limits.bodyTimeoutMs, stream).unref(),
      waiting: Number.POSITIVE_INFINITY,
    };
    stream.once("close", clearWatch);
  });
}

const kWatch = Symbol("fieldseal.streamWatch");
interface StreamWatch {
  readonly timer: NodeJS.Timeout;
  /** Answer bytes waiting at the previous check. */
  waiting: number;
}
type WatchedStream = http2.ServerHttp2Stream & { [kWatch]?: StreamWatch };

/**
 * Every `bodyTimeoutMs` of a stream's life: its request must have ended, and its answer must have moved
 * since the previous check. A write completes only once nghttp2 has sent it, so `writableLength` counts
 * what flow control holds back, and it shrinks only as the client takes the answer.
 */
function checkStream(stream: WatchedStream): void {
  const watch = stream[kWatch];
  if (stream.closed || watch === undefined) return;
  const waiting = stream.writableLength;
  if (stream.state.remoteClose !== 1 || (waiting > 0 && waiting >= watch.waiting)) {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    return;
  }
  watch.waiting = waiting === 0 ? Number.POSITIVE_INFINITY : waiting;
  watch.timer.refresh();
}

function clearWatch(this: WatchedStream): void {
  clearTimeout(this[kWatch]?.timer);
}

/**
 * Requests one HTTP/1.1 connection may have in flight (pipelined ahead of their answers). Node hands
 * every request of a read to the handler at once, and keeps each answer in memory until the ones before
 * it are sent: a client that pipelines thousands of `GET /metrics` and never reads would have the server
 * hold thousands of answers. No common client pipelines (browsers, curl, Node's agent do not).
 */
export const MAX_PIPELINED_REQUESTS = 16;

/** What an HTTP/1.1 connection is waiting for, and so which deadline applies. */
enum Phase {
  /** A request head: due `headTimeoutMs` after the connection started or went idle (plus keep-alive). */
  Head,
  /** The body of `request`: due `bodyTimeoutMs` after its head. */
  Body,
  /** The server's answer: no deadline for computing it; taking its bytes must not stall (see #sweep). */
  Answer,
}

interface Http1Connection {
  phase: Phase;
  /** Date.now() by which the phase must end. */
  due: number;
  request: http.IncomingMessage | undefined;
  /** Requests being answered, and requests answered (for closeIdle). */
  active: number;
  answered: number;
  /** Bytes the client has taken (written to the kernel), and when that last grew or nothing waited. */
  taken: number;
  movedAt: number;
}

/**
 * The HTTP/1.1 connections of one server, with their deadlines:
 *
 * - the request head must be complete `headTimeoutMs` after the connection was handed over, or after the
 *   previous response plus the keep-alive time (Node closes an idle keep-alive connection itself, but
 *   stops counting at the next request's first byte, so a head trickled after that is bounded here);
 * - the request body must end `bodyTimeoutMs` after its head;
 * - answer bytes waiting to be sent must not wait `bodyTimeoutMs` without the client taking any;
 * - at most MAX_PIPELINED_REQUESTS requests may be in flight.
 *
 * A head that misses its deadline is answered 408 and the connection closed; otherwise the connection is
 * destroyed (a response may already be under way).
 *
 * Node's own `headersTimeout` and `requestTimeout` are checked by a timer that only a listening
 * `http.Server` starts (setupConnectionsTracking on 'listening', lib/_http_server.js); the cleartext
 * HTTP/1.1 server here is handed sockets and never listens. As in Node, one sweep checks every connection
 * (here every quarter of the shortest deadline, at most once a second), so a request costs no timer of its
 * own, only two numbers written.
 */
export class Http1Connections {
  readonly #limits: ConnectionLimits;
  readonly #conns = new Map<net.Socket, Http1Connection>();
  readonly #sweepMs: number;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
    this.#sweepMs = Math.max(
      10,
      Math.min(1000, Math.floor(Math.min(limits.headTimeoutMs, limits.bodyTimeoutMs) / 4)),
    );
  }

  /**
   * Called for each request before it is served: tracks it, and returns false (having destroyed the
   * connection) when it is one pipelined request too many, so that it is not served.
   */
  request(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): boolean {
    // HTTP/2 streams share a session, which GOAWAY drains and boundHttp2 bounds.
    if (req.httpVersionMajor !== 1) return true;
    const conn = this.#conns.get(req.socket as net.Socket);
    if (conn === undefined) return true;
    if (conn.active >= MAX_PIPELINED_REQUESTS) {
      req.socket.destroy();
      return false;
    }
    conn.active++;
    conn.phase = Phase.Body;
    conn.due = Date.now() + this.#limits.bodyTimeoutMs;
    conn.request = req as http.IncomingMessage;
    res.once("close", () => {
      conn.active--;
      conn.answered++;
      if (conn.active > 0) return;
      // Answered before its body ended (Node then reads the rest off the wire to reuse the connection):
      // the body deadline still holds, and #sweep moves on to the next head once the body has ended.
      if (conn.request?.complete === false) return;
      this.#awaitHead(conn, Date.now());
    });
    return true;
  }

  /** A connection handed to the HTTP/1.1 parser: its first request head is due within `headTimeoutMs`. */
  connection(socket: net.Socket): void {
    const conn: Http1Connection = {
      phase: Phase.Head,
      due: Date.now() + this.#limits.headTimeoutMs,
      request: undefined,
      active: 0,
      answered: 0,
      taken: 0,
      movedAt: Date.now(),
    };
    this.#conns.set(socket, conn);
    socket.once("close", () => {
      this.#conns.delete(socket);
      if (this.#conns.size === 0) this.#stopSweeping();
    });
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), this.#sweepMs);
      this.#sweeper.unref();
    }
  }

  /**
   * Ends the connections with nothing in flight. A connection not answered yet has sent bytes (its first
   * request is on its way to the parser), so it is not idle.
   */
  endIdle(): void {
    for (const [socket, c] of this.#conns) if (c.active === 0 && c.answered > 0) socket.end();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [socket, c] of this.#conns) {
      if (stalled(socket, c, now, this.#limits.bodyTimeoutMs)) {
        socket.destroy();
        continue;
      }
      if (c.phase === Phase.Answer || now < c.due) continue;
      if (c.phase === Phase.Head) requestTimeout(socket);
      else if (!c.request?.complete) socket.destroy();
      else if (c.active === 0) {
        this.#awaitHead(c, now);
        continue;
      }
      c.phase = Phase.Answer;
    }
  }

  /** Nothing in flight: the next request head is due after the keep-alive time (plus Node's 1 s) and the head time. */
  #awaitHead(c: Http1Connection, now: number): void {
    c.request = undefined;
    c.phase = Phase.Head;
    c.due = now + this.#limits.keepAliveTimeoutMs + 1000 + this.#limits.headTimeoutMs;
  }

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

/**
 * Whether answer bytes have waited `stallMs` for a client that takes none of them. `bytesWritten` counts
 * bytes queued as well as sent and `writableLength` those not yet handed to the kernel, so their
 * difference grows only when the client reads (its TCP window lets the kernel take more).
 */
function stalled(socket: net.Socket, c: Http1Connection, now: number, stallMs: number): boolean {
  const taken = socket.bytesWritten - socket.writableLength;
  if (socket.writableLength === 0 || taken !== c.taken) {
    c.taken = taken;
    c.movedAt = now;
    return false;
  }
  return now - c.movedAt >= stallMs;
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
