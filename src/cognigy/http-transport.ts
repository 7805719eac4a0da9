import * as http from "node:http";
import * as https from "node:https";

/** What the Cognigy client reads from an answer: the status, a header, the body as text. */
export interface PushResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** One HTTP exchange; the global `fetch` has this shape too. */
export type PushTransport = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<PushResponse>;

/**
 * An HTTP(S) transport over Node's keep-alive agents. It does only what a push needs (one request with a
 * string body, one bounded text answer), at a fraction of `fetch`'s per-request cost: no WHATWG streams,
 * Request/Response objects or header guards between the webhook and the socket. Failures carry Node's
 * system error codes (ECONNREFUSED, ECONNRESET...), and an aborted exchange rejects with the signal's reason,
 * as fetch does. Unlike fetch it follows no redirects: Cognigy's API does not redirect, and a push is not
 * re-sent anywhere its configured URL did not name; the 3xx status comes back as the answer.
 */
export function keepAliveTransport(
  options: { maxResponseBytes?: number; maxSockets?: number } = {},
): PushTransport {
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  const agentOptions = {
    keepAlive: true,
    maxSockets: options.maxSockets ?? 64,
    scheduling: "lifo" as const,
    // Idle pooled connections are closed after 4 s (undici's default too): a NAT or load balancer that
    // silently drops idle connections must not leave a push writing into a dead socket.
    timeout: 4_000,
  };
  const agents = { "http:": new http.Agent(agentOptions), "https:": new https.Agent(agentOptions) };
  return (url, init) =>
    new Promise((resolve, reject) => {
      const { signal } = init;
      if (signal.aborted) return reject(signal.reason);
      const target = new URL(url);
      const secure = target.protocol === "https:";
      if (!secure && target.protocol !== "http:")
        return reject(new TypeError("only http and https are supported"));
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        outcome();
      };
      const failWith = (err: unknown) => settle(() => reject(signal.aborted ? signal.reason : err));
      const onAbort = () => req.destroy(signal.reason);
      const req = (secure ? https : http).request(
        target,
        {
          method: init.method,
          headers: { ...init.headers, "content-length": String(Buffer.byteLength(init.body)) },
          agent: agents[secure ? "https:" : "http:"],
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            // Cognigy answers with a few hundred bytes; a flood is cut rather than buffered.
            if (size > maxResponseBytes) {
              const tooLarge = Object.assign(new Error("answer too large"), { code: "ERESPONSETOOLARGE" });
              failWith(tooLarge);
              req.destroy(tooLarge);
            } else chunks.push(chunk);
          });
          res.once("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            settle(() =>
              resolve({
                status: res.statusCode ?? 0,
                headers: {
                  get(name) {
                    const value = res.headers[name.toLowerCase()];
                    if (value === undefined) return null;
                    return Array.isArray(value) ? value.join(", ") : value;
                  },
                },
                text: () => Promise.resolve(text),
              }),
            );
          });
          // A connection lost halfway through the answer: the push may or may not have been applied.
          res.once("error", failWith);
          res.once("close", () =>
            failWith(Object.assign(new Error("answer cut short"), { code: "ECONNRESET" })),
          );
        },
      );
      req.once("error", failWith);
      signal.addEventListener("abort", onAbort, { once: true });
      req.end(init.body);
    });
}
