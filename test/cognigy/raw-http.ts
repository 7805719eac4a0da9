import { type Agent, request } from "node:http";

/** An answer read off the socket: status, headers, text, and the JSON of the text when it is JSON. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: asserted field by field
  json: any;
}

/**
 * POSTs raw bytes over HTTP/1.1 with node:http, which writes each char of a header value as one byte, so
 * tests can send header bytes that are not UTF-8. An array value sends the header once per element.
 */
export function postRaw(
  baseUrl: string,
  body: Uint8Array,
  headers: Record<string, string | string[]>,
  options: { path?: string; agent?: Agent } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${baseUrl}${options.path ?? "/webhooks/cognigy"}`,
      { method: "POST", headers, ...(options.agent === undefined ? {} : { agent: options.agent }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
    req.end(body);
  });
}
