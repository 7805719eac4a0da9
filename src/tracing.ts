import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { Config } from "./config.js";

/**
 * OpenTelemetry traces: one server span per RPC, a child span per key store call and per Cognigy push
 * attempt. Off unless the standard OTEL_* variables turn it on (src/config.ts); when off nothing here is
 * loaded or wrapped, so the RPC path is unchanged.
 *
 * Spans carry names, codes, sizes and counts only: never a field value, a sealed value, key material, a
 * token, a session or user id, or a URL path (a push URL holds the session id). docs/security.md says why.
 */
export interface Tracing {
  readonly tracer: Tracer;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK: a NodeTracerProvider (AsyncLocalStorage context, W3C trace-context propagation) with a
 * batching OTLP/HTTP exporter. The exporter reads its endpoint, headers, timeout and certificates from the
 * standard OTEL_EXPORTER_OTLP_* variables itself; src/config.ts has validated the ones that turn it on.
 */
export async function startTracing(config: Config["tracing"]): Promise<Tracing> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { resourceFromAttributes }, exporterModule] =
    await Promise.all([
      import("@opentelemetry/sdk-trace-node"),
      import("@opentelemetry/resources"),
      config.protocol === "http/json"
        ? import("@opentelemetry/exporter-trace-otlp-http")
        : import("@opentelemetry/exporter-trace-otlp-proto"),
    ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": config.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new exporterModule.OTLPTraceExporter())],
  });
  provider.register();
  return { tracer: provider.getTracer("fieldseal"), shutdown: () => provider.shutdown() };
}

/** Header lookup for W3C trace context in Fetch-style headers. */
const headerGetter = {
  keys: (carrier: Headers) => [...carrier.keys()],
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
};

/** The caller's trace context from `traceparent` / `tracestate` (gRPC metadata and HTTP headers alike). */
export function callerContext(headers: Headers): Context {
  return propagation.extract(ROOT_CONTEXT, headers, headerGetter);
}

/** Runs `work` in a new span (made current, so spans started inside are its children) and ends it. */
export async function inSpan<T>(
  tracer: Tracer,
  name: string,
  options: { kind: SpanKind; attributes?: Record<string, string | number | boolean>; parent?: Context },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer.startSpan(
    name,
    { kind: options.kind, ...(options.attributes ? { attributes: options.attributes } : {}) },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (err) {
    // The error's name and code only: a message could describe request data.
    span.setStatus({ code: SpanStatusCode.ERROR });
    const code = (err as { code?: unknown })?.code;
    span.setAttribute(
      "error.type",
      typeof code === "string" || typeof code === "number"
        ? String(code)
        : ((err as Error)?.name ?? "unknown"),
    );
    throw err;
  } finally {
    span.end();
  }
}

export { SpanKind };
