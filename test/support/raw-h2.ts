/**
 * A bare HTTP/2 client that writes frames itself, to behave as an attacker would: it ignores the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS (Node's own client queues streams past it) and can open streams whose
 * request never ends. It answers SETTINGS and PING, and counts what the server resets.
 */
import * as net from "node:net";
import * as tls from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK string literal (RFC 7541 §5.2), not Huffman-coded, its length a 7-bit-prefix integer (§5.1). */
function str(s: string): Buffer {
  const length: number[] = [];
  if (s.length < 127) length.push(s.length);
  else {
    length.push(127);
    let rest = s.length - 127;
    while (rest >= 128) {
      length.push((rest % 128) + 128);
      rest = Math.floor(rest / 128);
    }
    length.push(rest);
  }
  return Buffer.concat([Buffer.from(length), Buffer.from(s, "latin1")]);
}

/** HPACK block of a gRPC request: static-table indices and literals without indexing, no Huffman. */
function grpcRequestBlock(path: string, authority: string, scheme: "http" | "https", pad: number): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, scheme === "http" ? 0x86 : 0x87]), // :method POST, :scheme
    Buffer.from([0x04]), // :path, literal value
    str(path),
    Buffer.from([0x01]), // :authority
    str(authority),
    Buffer.from([0x0f, 0x10]), // content-type (static index 31)
    str("application/grpc"),
    Buffer.from([0x00]), // te: trailers (new name)
    str("te"),
    str("trailers"),
    // Regular headers only after the pseudo-headers (RFC 9113 §8.3).
    ...(pad === 0 ? [] : [Buffer.from([0x00]), str("x-pad"), str("p".repeat(pad))]),
  ]);
}

export interface RawH2Connection {
  readonly socket: net.Socket;
  /** RST_STREAM frames received, by error code (7 = REFUSED_STREAM, 8 = CANCEL). */
  readonly resets: Map<number, number>;
  /** Stream ids the server reset. */
  readonly resetIds: Set<number>;
  goaways: number;
  /** HEADERS frames received (responses or trailers). */
  responses: number;
  readonly closed: Promise<void>;
  /**
   * Sends request HEADERS for `count` new streams; with `end` false their request bodies never end. With
   * `padded`, each header list carries an `x-pad` header of `padBytes`.
   */
  openStreams(count: number, end?: boolean, padded?: boolean): void;
  /** Stream ids opened so far. */
  opened(): number;
}

/**
 * The default target: the health check, which answers without credentials, so a header-only stream to it
 * is held until the body deadline (a FieldsealService call without credentials is refused on its headers
 * at once: test/server/credentials-before-body.test.ts). The worst an unauthenticated client can do.
 */
export const OPEN_PATH = "/grpc.health.v1.Health/Check";

/** Connects, sends the preface and an empty SETTINGS frame. */
export async function rawH2(opts: {
  port: number;
  host?: string;
  localAddress?: string;
  path?: string;
  tls?: { ca: Buffer };
  padBytes?: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE to announce: 0 lets the server send no DATA at all (a client that never reads). */
  initialWindowSize?: number;
}): Promise<RawH2Connection> {
  const host = opts.host ?? "127.0.0.1";
  const tcp = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port: opts.port, host, localAddress: opts.localAddress }, () => resolve(s));
    s.once("error", reject);
  });
  const { tls: secure } = opts;
  const socket =
    secure === undefined
      ? tcp
      : await new Promise<net.Socket>((resolve, reject) => {
          const s = tls.connect(
            { socket: tcp, servername: "localhost", ca: secure.ca, ALPNProtocols: ["h2"] },
            () => resolve(s),
          );
          s.once("error", reject);
        });
  socket.on("error", () => {});
  const block = grpcRequestBlock(
    opts.path ?? OPEN_PATH,
    `${host}:${opts.port}`,
    opts.tls === undefined ? "http" : "https",
    0,
  );
  const padded =
    opts.padBytes === undefined
      ? block
      : grpcRequestBlock(
          opts.path ?? OPEN_PATH,
          `${host}:${opts.port}`,
          opts.tls === undefined ? "http" : "https",
          opts.padBytes,
        );
  let nextId = 1;
  let pending: Buffer = Buffer.alloc(0);
  const conn: RawH2Connection = {
    socket,
    resets: new Map(),
    resetIds: new Set(),
    goaways: 0,
    responses: 0,
    closed: new Promise((resolve) => socket.once("close", () => resolve())),
    openStreams(count, end = false, pad = false) {
      const frames: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        frames.push(frame(HEADERS, END_HEADERS | (end ? END_STREAM : 0), nextId, pad ? padded : block));
        nextId += 2;
      }
      if (!socket.destroyed) socket.write(Buffer.concat(frames));
    },
    opened: () => (nextId - 1) / 2,
  };
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3];
      const flags = pending[4] ?? 0;
      const streamId = pending.readUInt32BE(5) & 0x7fffffff;
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      if (type === SETTINGS && (flags & ACK) === 0) socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
      else if (type === PING && (flags & ACK) === 0) socket.write(frame(PING, ACK, 0, Buffer.from(payload)));
      else if (type === RST_STREAM) {
        const code = payload.readUInt32BE(0);
        conn.resets.set(code, (conn.resets.get(code) ?? 0) + 1);
        conn.resetIds.add(streamId);
      } else if (type === GOAWAY) conn.goaways++;
      else if (type === HEADERS) conn.responses++;
    }
  });
  const settings = Buffer.alloc(opts.initialWindowSize === undefined ? 0 : 6);
  if (opts.initialWindowSize !== undefined) {
    settings.writeUInt16BE(0x4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(opts.initialWindowSize, 2);
  }
  socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings)]));
  return conn;
}
