/**
 * A loopback TCP proxy for cleartext HTTP/2 that cuts every DATA frame the client sends into frames of at
 * most `pieceBytes` bytes (1 by default) before they reach the server: how a hostile client makes the
 * server handle a body one tiny frame at a time (Node's own client coalesces small writes). Everything
 * else, and all the server sends, passes through unchanged.
 */
import { createConnection, createServer, type Socket } from "node:net";

const PREFACE_BYTES = 24;
const FRAME_HEADER = 9;
const DATA = 0x0;
const END_STREAM = 0x1;
const PADDED = 0x8;

export interface SplittingProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** DATA frames sent to the server so far. */
  dataFrames(): number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (any free port) in front of 127.0.0.1:`targetPort`. */
export async function startSplittingProxy(targetPort: number, pieceBytes = 1): Promise<SplittingProxy> {
  const open = new Set<Socket>();
  let frames = 0;
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    let pending: Buffer = Buffer.alloc(0);
    let prefaceLeft = PREFACE_BYTES;
    client.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, pending.length);
        out.push(pending.subarray(0, n));
        pending = pending.subarray(n);
        prefaceLeft -= n;
      }
      while (prefaceLeft === 0 && pending.length >= FRAME_HEADER) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < FRAME_HEADER + length) break;
        const frame = pending.subarray(0, FRAME_HEADER + length);
        pending = pending.subarray(FRAME_HEADER + length);
        const type = frame[3] as number;
        const flags = frame[4] as number;
        if (type !== DATA || (flags & PADDED) !== 0 || length <= pieceBytes) {
          if (type === DATA) frames++;
          out.push(frame);
          continue;
        }
        const streamId = frame.readUInt32BE(5);
        for (let at = 0; at < length; at += pieceBytes) {
          const piece = frame.subarray(FRAME_HEADER + at, FRAME_HEADER + Math.min(length, at + pieceBytes));
          const header = Buffer.alloc(FRAME_HEADER);
          header.writeUIntBE(piece.length, 0, 3);
          header[3] = DATA;
          header[4] = at + pieceBytes >= length ? flags & END_STREAM : 0;
          header.writeUInt32BE(streamId, 5);
          out.push(header, piece);
          frames++;
        }
      }
      if (out.length > 0) upstream.write(Buffer.concat(out));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("proxy has no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    dataFrames: () => frames,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
