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
  /** Stops accepting connections; asks HTTP/2 clients to go away and HTTP/1.1 keep-alives to close. */
  stopAccepting(): void;
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
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  let accepting = true;

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // Decide once we have the whole preface, or as soon as the bytes cannot be one.
      if (isH2 && head.length < H2_PREFACE.length) return;
      socket.removeListener("data", sniff);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // Node's HTTP/2 session reads the bytes already buffered on the socket (the preface) itself.
        h2.emit("connection", socket);
      } else {
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
      tcp.close();
      // GOAWAY: streams already open finish; the client opens new ones elsewhere.
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
    },
    destroyAll() {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      h1.closeAllConnections();
    },
  };
}
