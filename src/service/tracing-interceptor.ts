import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Tracer } from "@opentelemetry/api";
import { callerContext, inSpan, SpanKind } from "../tracing.js";
import { REASON_HEADER } from "./error-map.js";

/**
 * One server span per RPC, named `<package.Service>/<Method>` and parented on the caller's `traceparent`
 * (gRPC metadata, Connect headers, or a webhook's headers forwarded in-process). Placed outermost, so the
 * span covers authentication and sees the error as the caller does: its code and `fieldseal-reason`, never
 * its message.
 */
export function tracingInterceptor(tracer: Tracer): Interceptor {
  return (next) => (req) =>
    inSpan(
      tracer,
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        parent: callerContext(req.header),
        attributes: {
          "rpc.system": "connect_rpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
        },
      },
      async (span) => {
        try {
          return await next(req);
        } catch (err) {
          const ce = ConnectError.from(err);
          span.setAttribute("rpc.connect_rpc.error_code", Code[ce.code] ?? String(ce.code));
          const reason = ce.metadata.get(REASON_HEADER);
          if (reason !== null) span.setAttribute("fieldseal.reason", reason);
          throw err;
        }
      },
    );
}
