import type { Tracer } from "@opentelemetry/api";
import { inSpan, SpanKind } from "../tracing.js";
import type { PushTransport } from "./http-transport.js";

/**
 * The push transport with a client span around each attempt (`cognigy.push`), a child of the PushSession
 * RPC. Attributes: method, Cognigy's host and port, the answer's status. Never the URL's path (it holds the
 * session id), headers (credentials) or body (sealed values).
 */
export function tracedTransport(transport: PushTransport, tracer: Tracer): PushTransport {
  return (url, init) => {
    const target = new URL(url);
    return inSpan(
      tracer,
      "cognigy.push",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "http.request.method": init.method,
          "server.address": target.hostname,
          "server.port": Number(target.port || (target.protocol === "https:" ? 443 : 80)),
        },
      },
      async (span) => {
        const res = await transport(url, init);
        span.setAttribute("http.response.status_code", res.status);
        return res;
      },
    );
  };
}
