import type * as http2 from "node:http2";

/** Response headers or trailers as Node gives them (lowercase names; repeated ones as arrays). */
export type Head = Record<string, string | string[] | number | undefined>;

/** One raw gRPC answer: its complete header and trailer sets, its body, and the first message in it. */
export interface Answer {
  readonly header: Head;
  readonly trailer: Head;
  readonly body: Buffer;
  readonly message: Uint8Array | undefined;
}

/** A gRPC length-prefixed frame around `bytes`. */
export function frame(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** POSTs `body` to `path` as a gRPC call (any header can be overridden) and collects the whole answer. */
export function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<Answer> {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
  const answer = collectAnswer(stream);
  stream.end(body);
  return answer;
}

/** Collects a client stream's whole answer: headers, trailers, body and its first message. */
export function collectAnswer(stream: http2.ClientHttp2Stream): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let header: Head = {};
    let trailer: Head = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      header = { ...h };
    });
    stream.on("trailers", (t) => {
      trailer = { ...t };
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("end", () => {
      const data = Buffer.concat(chunks);
      resolve({
        header,
        trailer,
        body: data,
        message: data.length >= 5 ? data.subarray(5, 5 + data.readUInt32BE(1)) : undefined,
      });
    });
  });
}
