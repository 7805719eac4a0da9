import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import { describeFsError } from "../config.js";
import { FieldsealError } from "../errors.js";
import {
  boundHttp2,
  type ConnectionLimits,
  firstBytesDeadline,
  Http1Connections,
  http2Settings,
  peerAdmission,
} from "./connection-limits.js";
import { poolPortClosed } from "./pool-port.js";

/** How long a connection may have sent nothing before a drain counts it idle and closes it. */
const SILENT_IDLE_MS = 1000;
/** The HTTP/2 connection preface every h2c client sends first (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A listener that serves HTTP/2 and HTTP/1.1 on one port: cleartext (h2c by preface) or TLS (by ALPN). */
export interface DualListener {
  readonly port: number;
  readonly host: string;
  /**
   * Begins draining: HTTP/2 clients get GOAWAY (streams already received finish). The port stays open
   * until closeIdle(), so connections still in the kernel's accept queue are taken in and answered
   * (refused while draining) instead of being reset when the listening socket closes.
   */
  stopAccepting(): void;
  /**
   * Closes the port and the connections with no request on them: idle HTTP/1.1 keep-alives and
   * connections that have sent nothing yet. Call it only once no request is in flight, so that the event
   * loop has had the chance to accept queued connections and read requests already waiting on a socket
   * (closing a socket with unread data resets it).
   */
  closeIdle(): void;
  /** Open connections, of either protocol or not yet sniffed. */
  connections(): number;
  /**
   * Whether the port is still open (closeIdle() closes it just after an accept pass); in a cluster worker,
   * until no worker of the pool listens any more.
   */
  listening(): boolean;
  /** Resolves once the port is closed, so no new connection can be queued on it. */
  readonly portClosed: Promise<void>;
  /** Ends every connection at once. */
  destroyAll(): void;
}

/**
 * Serves both protocols on one port the way Go's h2c handler does: it reads the first bytes of each
 * connection and hands the socket to Node's HTTP/2 server when they are the HTTP/2 preface, to the HTTP/1.1
 * server otherwise. (Node's cleartext HTTP/2 server cannot answer HTTP/1.1 by itself.)
 */
export async function listenDual(
  handler: RequestHandler,
  opts: { host: string; port: number; maxHeaderBytes?: number; limits: ConnectionLimits },
): Promise<DualListener> {
  const { limits } = opts;
  const maxHeaderBytes = opts.maxHeaderBytes ?? 16 * 1024;
  const h1Conns = new Http1Connections(limits);
  const h1 = http.createServer({ maxHeaderSize: maxHeaderBytes }, (req, res) => {
    if (h1Conns.request(req, res)) handler(req, res);
  });
  const h2 = http2.createServer(
    { maxSessionMemory: 64, settings: http2Settings(limits, maxHeaderBytes) },
    handler,
  );
  h1.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node checks these only on a server that listens itself (h1 never does): Http1Connections keeps them.
  h1.headersTimeout = limits.headTimeoutMs;
  h1.requestTimeout = 0;
  boundHttp2(h2, limits);
  const admit = peerAdmission(limits);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let accepting = true;
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A connection accepted before shutdown but read only after it: let the session take in the streams
    // already sent, then GOAWAY, so they are answered (refused while draining) rather than reset.
    if (!accepting) setImmediate(() => session.close());
  });
  /** Connections whose first bytes have not been seen yet, so neither server owns them, and when each came. */
  const undecided = new Map<net.Socket, number>();
  // Node's own idle tracking (closeIdleConnections) only works for a server that listens itself, which h1
  // never does here: Http1Connections keeps it.

  // noDelay: without it Nagle's algorithm holds small responses back until the peer's delayed ACK (up to
  // 40 ms), which Node's own HTTP servers avoid by default.
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    socket.on("error", () => socket.destroy());
    if (!admit(socket)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    undecided.set(socket, Date.now());
    socket.once("close", () => undecided.delete(socket));
    // Until the preface decides, neither server's own timeouts cover the connection.
    const decided = firstBytesDeadline(socket, limits);
    socket.once("close", decided);
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // Decide once we have the whole preface, or as soon as the bytes cannot be one.
      if (isH2 && head.length < H2_PREFACE.length) return;
      decided();
      socket.removeListener("data", sniff);
      undecided.delete(socket);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // Node's HTTP/2 session reads the bytes already buffered on the socket (the preface) itself.
        h2.emit("connection", socket);
      } else {
        h1Conns.connection(socket);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", sniff);
  });
  // Node closes connections past this before creating a socket for them.
  tcp.maxConnections = limits.maxConnections;

  const address = await listenOn(tcp, opts.port, opts.host);
  const port = portCloser(tcp);

  return {
    port: address.port,
    host: opts.host,
    stopAccepting() {
      if (!accepting) return;
      accepting = false;
      // GOAWAY: streams already open finish; the client opens new ones elsewhere. HTTP/1.1 connections are
      // left to closeIdle(): closing one now could reset a request the busy event loop has not read yet.
      for (const session of sessions) session.close();
    },
    closeIdle() {
      port.close();
      // A connection that has not been answered yet sent bytes (that is how it was sniffed): its first
      // request is on its way to the parser, so it is not idle.
      h1Conns.endIdle();
      // One that has sent nothing is idle only once it has been silent a while: its request may already
      // wait in the kernel, unread because the event loop was busy, and closing a socket with unread data
      // resets it (RST) under the request. Go's http.Server.Shutdown waits the same way for connections
      // in StateNew (net/http/server.go, closeIdleConns, golang/go#22682).
      const now = Date.now();
      for (const [socket, at] of undecided)
        if (socket.bytesRead === 0 && now - at >= SILENT_IDLE_MS) socket.destroy();
    },
    connections: () => sockets.size,
    listening: () => !port.isClosed(),
    portClosed: port.closed,
    destroyAll() {
      if (tcp.listening) tcp.close();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** A port closes once it has taken no new connection for this long (a worker's come over IPC, one at a time). */
const QUIET_ACCEPT_MS = 50;
/** How long a drain waits for that quiet before it closes the port anyway. */
const QUIET_ACCEPT_WAIT_MS = 1000;

/**
 * Closes `server`'s port, when asked, as gently as the kernel allows. Closing a listening socket resets
 * every connection still in its accept queue, though the client's connect succeeded and its request may be
 * sent: those are the resets a client opening a connection per call would see. (In a cluster worker the
 * queue is the primary's: node:cluster's round-robin handle accepts every connection and closes those it
 * still holds when the last worker closes, lib/internal/cluster/round_robin_handle.js.) So the port
 * closes only
 * - in a later turn of the event loop than the call (which may come from a SIGTERM handled in the poll
 *   phase after that phase's accept pass), so connections queued before it are taken in and answered;
 * - once no connection has come for QUIET_ACCEPT_MS (the server holds the refusals of calls arriving
 *   while draining until the port is closed, so its clients are not reconnecting), or after
 *   QUIET_ACCEPT_WAIT_MS if new clients keep coming;
 * - in the check phase (setImmediate), right after a poll phase's accept pass: libuv accepts until EAGAIN
 *   (uv__server_io, deps/uv/src/unix/stream.c), so the kernel's queue was empty a moment before.
 * In a cluster worker, closing only gives up the worker's share of the primary's port: the port counts as
 * closed once the primary says no worker listens any more (pool-port.ts).
 */
function portCloser(server: net.Server): {
  close: () => void;
  closed: Promise<void>;
  isClosed: () => boolean;
} {
  let isClosed = false;
  let closed: () => void = () => {};
  const whenClosed = new Promise<void>((resolve) => {
    closed = () => {
      isClosed = true;
      resolve();
    };
  });
  // However the port closes (destroyAll too).
  server.once("close", () => closed());
  let lastAccept = 0;
  server.prependListener("connection", () => {
    lastAccept = Date.now();
  });
  let closing = false;
  const close = (): void => {
    if (closing) return;
    closing = true;
    const giveUpAt = Date.now() + QUIET_ACCEPT_WAIT_MS;
    const attempt = (): void => {
      setImmediate(() => {
        const now = Date.now();
        if (server.listening && now - lastAccept < QUIET_ACCEPT_MS && now < giveUpAt) {
          setTimeout(attempt, QUIET_ACCEPT_MS / 5);
          return;
        }
        if (server.listening) server.close();
        void poolPortClosed().then(() => closed());
      });
    };
    setTimeout(attempt, 0);
  };
  return { close, closed: whenClosed, isClosed: () => isClosed };
}

/** Certificate files for `listenTls`. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle client certificates must chain to; without it no client certificate is asked for. */
  readonly clientCaFile: string | undefined;
  /** Refuse the handshake unless the client presents a certificate that chains to clientCaFile. */
  readonly requireClientCert: boolean;
}

/**
 * Serves TLS on one port, HTTP/2 and HTTP/1.1 chosen by ALPN. With a client CA, clients are asked for a
 * certificate; Node verifies it against that CA only and reports the result as `socket.authorized`, which
 * is what the interceptor trusts. Shutdown behaves as in `listenDual`.
 */
export async function listenTls(
  handler: RequestHandler,
  opts: { host: string; port: number; tls: TlsFiles; maxHeaderBytes?: number; limits: ConnectionLimits },
): Promise<DualListener> {
  const { limits } = opts;
  const maxHeaderBytes = opts.maxHeaderBytes ?? 16 * 1024;
  const ca =
    opts.tls.clientCaFile === undefined ? undefined : readTlsFile(opts.tls.clientCaFile, "client CA file");
  const cert = readTlsFile(opts.tls.certFile, "certificate file");
  const key = readTlsFile(opts.tls.keyFile, "private key file");
  const h1Conns = new Http1Connections(limits);
  const server = usableTls(opts.tls, () =>
    http2.createSecureServer(
      {
        cert,
        key,
        minVersion: "TLSv1.2",
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
        maxSessionMemory: 64,
        settings: http2Settings(limits, maxHeaderBytes),
        // The first bytes of a TLS connection are its handshake.
        handshakeTimeout: limits.firstBytesTimeoutMs,
        // HTTP/1.1 over TLS (allowHTTP1): Node reads these as for http.createServer (storeHTTPOptions in
        // internal/http2/core.js), though @types/node does not declare them here. Http1Connections applies too.
        ...({
          maxHeaderSize: maxHeaderBytes,
          keepAliveTimeout: limits.keepAliveTimeoutMs,
          headersTimeout: limits.headTimeoutMs,
          requestTimeout: 0,
        } as object),
        // `ca` here is only the trust anchor for client certificates; it does not change the server's chain.
        ...(ca === undefined
          ? {}
          : { ca, requestCert: true, rejectUnauthorized: opts.tls.requireClientCert }),
      },
      (req, res) => {
        if (h1Conns.request(req, res)) handler(req, res);
      },
    ),
  );
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  boundHttp2(server, limits);
  const admit = peerAdmission(limits);
  server.maxConnections = limits.maxConnections;
  /** Admitted TCP connections, handshake done or not (`sockets` holds those whose handshake ended). */
  const tcpSockets = new Set<net.Socket>();
  // 'connection' is the TCP connection, before the handshake: refuse it before spending a handshake on it.
  server.on("connection", (socket: net.Socket) => {
    if (!admit(socket)) return;
    tcpSockets.add(socket);
    socket.once("close", () => tcpSockets.delete(socket));
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    if (socket.alpnProtocol !== "h2") h1Conns.connection(socket);
  });
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const address = await listenOn(server, opts.port, opts.host);
  const port = portCloser(server);
  let accepting = true;
  return {
    port: address.port,
    host: opts.host,
    stopAccepting() {
      if (!accepting) return;
      accepting = false;
      // GOAWAY for HTTP/2; HTTP/1.1 connections are left to closeIdle(), as in listenDual.
      for (const session of sessions) session.close();
    },
    closeIdle() {
      port.close();
      h1Conns.endIdle();
    },
    connections: () => sockets.size,
    listening: () => !port.isClosed(),
    portClosed: port.closed,
    destroyAll() {
      if (server.listening) server.close();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      // Connections still in their handshake, which would otherwise linger until the handshake timeout.
      for (const socket of tcpSockets) socket.destroy();
    },
  };
}

/** Reads one of the TLS files, or says which one cannot be read and why. */
function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FieldsealError(
      "failed_precondition",
      `cannot read the TLS ${what} ${path}: ${describeFsError((err as NodeJS.ErrnoException).code)}`,
    );
  }
}

/**
 * Builds the TLS server, turning OpenSSL's refusal of the files (not PEM, key not matching the
 * certificate) into one line naming them. OpenSSL's reason names no key material.
 */
function usableTls<T>(files: TlsFiles, build: () => T): T {
  try {
    return build();
  } catch (err) {
    const reason = (err as { reason?: unknown }).reason;
    const why = typeof reason === "string" ? reason : (err as Error).message.split("\n")[0];
    const ca = files.clientCaFile === undefined ? "" : `, client CA ${files.clientCaFile}`;
    throw new FieldsealError(
      "failed_precondition",
      `the TLS files cannot be used (certificate ${files.certFile}, key ${files.keyFile}${ca}): ${why}`,
    );
  }
}

/** Starts listening and resolves with the bound address; rejects if the port cannot be bound. */
function listenOn(server: net.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.removeListener("error", reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
