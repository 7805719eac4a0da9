import type { IncomingHttpHeaders } from "node:http";
import type { IncomingHttpHeaders as IncomingHttp2Headers } from "node:http2";

/** The W3C trace-context headers (https://www.w3.org/TR/trace-context/). */
const TRACE_HEADERS = ["traceparent", "tracestate"] as const;

/**
 * The in-process call's headers plus the webhook request's W3C trace context, so that the RPC's span
 * (src/service/tracing-interceptor.ts) continues the caller's trace as a gRPC call's would. Nothing else
 * of the request is passed on.
 */
export function withTraceContext(
  callHeaders: Headers | Record<string, string>,
  request: IncomingHttpHeaders | IncomingHttp2Headers,
): Headers | Record<string, string> {
  const found = TRACE_HEADERS.filter((name) => typeof request[name] === "string");
  if (found.length === 0) return callHeaders;
  const headers = new Headers(callHeaders);
  for (const name of found) headers.set(name, request[name] as string);
  return headers;
}
