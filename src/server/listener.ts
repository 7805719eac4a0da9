import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

/** The HTTP/2 connection preface every h2c client sends first (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A listener that serves cleartext HTTP/2 (h2c, prior knowledge) and HTTP/1.1 on one port. */
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
  opts: { host: string; port: number; maxHeaderBytes?: number },
): Promise<DualListener> {
  const h1 = http.createServer({ maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024 }, handler);
  const h2 = http2.createServer({ maxSessionMemory: 64 }, handler);
  h1.keepAliveTimeout = 65_000;
  h1.headersTimeout = 30_000;
  h1.requestTimeout = 120_000;
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
  /** Connections whose first bytes have not been seen yet, so neither server owns them. */
  const undecided = new Set<net.Socket>();
  // HTTP/1.1 connections: requests being served and requests answered. Node's own idle tracking
  // (closeIdleConnections) only works for a server that listens itself, which h1 never does here.
  const h1Conns = new Map<net.Socket, { active: number; answered: number }>();
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const conn = h1Conns.get(req.socket);
    if (conn === undefined) return;
    conn.active++;
    res.once("close", () => {
      conn.active--;
      conn.answered++;
    });
  });

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    undecided.add(socket);
    socket.once("close", () => undecided.delete(socket));
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // Decide once we have the whole preface, or as soon as the bytes cannot be one.
      if (isH2 && head.length < H2_PREFACE.length) return;
      socket.removeListener("data", sniff);
      undecided.delete(socket);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // Node's HTTP/2 session reads the bytes already buffered on the socket (the preface) itself.
        h2.emit("connection", socket);
      } else {
        h1Conns.set(socket, { active: 0, answered: 0 });
        socket.once("close", () => h1Conns.delete(socket));
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", sniff);
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port, opts.host, () => {
      tcp.removeListener("error", reject);
      resolve();
    });
  });
  const address = tcp.address() as net.AddressInfo;

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
      if (tcp.listening) tcp.close();
      // A connection that has not been answered yet sent bytes (that is how it was sniffed): its first
      // request is on its way to the parser, so it is not idle.
      for (const [socket, c] of h1Conns) if (c.active === 0 && c.answered > 0) socket.end();
      for (const socket of undecided) if (socket.bytesRead === 0) socket.destroy();
    },
    connections: () => sockets.size,
    destroyAll() {
      if (tcp.listening) tcp.close();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}
