import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  isMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

/** A service and its implementation, as given to a Connect router. */
export interface ServiceRegistration {
  readonly service: DescService;
  // biome-ignore lint/suspicious/noExplicitAny: implementations are typed per service by the caller.
  readonly impl: Record<string, any>;
}

/** One unary method, its implementation and the interceptor chain around it, ready to call. */
export interface UnaryRoute {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  /** The interceptors and the implementation, composed once. */
  readonly call: (req: UnaryRequest) => Promise<UnaryResponse>;
}

/** What one call brings besides its message: everything a handler or interceptor may look at. */
export interface UnaryCallInit {
  readonly header: Headers;
  readonly contextValues: ContextValues;
  /** Aborts when the caller goes away. */
  readonly signal: AbortSignal;
  /** When the call's deadline passes (epoch ms), if it has one: counted from the call's arrival. */
  readonly deadline?: number | undefined;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly url: string;
  /**
   * Where the handler's response headers and trailers are collected (fresh ones when not given). A caller
   * that answers errors itself passes its own, so that what a handler or interceptor set before the error
   * still reaches the client, as connect-node sends it.
   */
  readonly responseHeader?: Headers | undefined;
  readonly responseTrailer?: Headers | undefined;
}

/** The options a UnaryInvoker shares with the Connect router it stands beside (see src/server/app.ts). */
export interface UnaryInvokerOptions {
  /** The interceptors every call passes, the first one outermost. */
  readonly interceptors?: readonly Interceptor[] | undefined;
}

/**
 * Calls unary RPC implementations through the same interceptors the Connect router applies, without any
 * serialization or stream machinery: the webhook adapter's in-process calls and the gRPC fast path both go
 * through here, so authentication, authorization, audit and error translation stay in one place.
 */
export class UnaryInvoker {
  readonly #routes = new Map<string, UnaryRoute>();

  constructor(services: readonly ServiceRegistration[], options: UnaryInvokerOptions) {
    const interceptors = options.interceptors ?? [];
    for (const { service, impl } of services) {
      // Connect's own spec: methods bound to their implementation, missing ones answering UNIMPLEMENTED.
      for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) {
        if (spec.kind !== "unary") continue;
        const { method, impl: fn } = spec;
        const handler: Interceptor extends (next: infer N) => unknown ? N : never = async (req) => {
          const ctx = handlerContext(req as UnaryRequest);
          const out = await fn((req as UnaryRequest).message, ctx);
          return {
            stream: false as const,
            service,
            method,
            header: ctx.responseHeader,
            trailer: ctx.responseTrailer,
            message: isMessage(out, method.output) ? out : create(method.output, out),
          };
        };
        // The same order the Connect router uses: the first interceptor is the outermost.
        const chain = interceptors.reduceRight((next, interceptor) => interceptor(next), handler);
        this.#routes.set(`/${service.typeName}/${method.name}`, {
          service,
          method,
          call: chain as (req: UnaryRequest) => Promise<UnaryResponse>,
        });
      }
    }
  }

  /** The unary method served at `path` (`/package.Service/Method`), if there is one. */
  route(path: string): UnaryRoute | undefined {
    return this.#routes.get(path);
  }

  /**
   * Runs one call; errors come out as thrown ConnectErrors, exactly as the interceptors shaped them. A
   * deadline is handled as connect-node handles it: when it passes, the handler's signal aborts with
   * DEADLINE_EXCEEDED, and the answer is still what the handler (and the interceptors) make of that.
   */
  async invoke<I extends DescMessage, O extends DescMessage>(
    route: UnaryRoute,
    message: MessageShape<I>,
    init: UnaryCallInit,
  ): Promise<UnaryResponse<I, O>> {
    init.contextValues.set(callKey, {
      protocolName: init.protocolName,
      deadline: init.deadline,
      responseHeader: init.responseHeader ?? new Headers(),
      responseTrailer: init.responseTrailer ?? new Headers(),
    });
    const deadline = deadlineSignal(init.signal, init.deadline);
    try {
      return (await route.call({
        stream: false,
        service: route.service,
        method: route.method,
        message,
        header: init.header,
        contextValues: init.contextValues,
        signal: deadline.signal,
        requestMethod: init.requestMethod,
        url: init.url,
      })) as UnaryResponse<I, O>;
    } finally {
      deadline.cleanup();
    }
  }
}

/** Per-call facts the handler context needs that a UnaryRequest does not carry. */
const callKey = createContextKey<{
  protocolName: string;
  deadline: number | undefined;
  responseHeader: Headers | undefined;
  responseTrailer: Headers | undefined;
}>(
  { protocolName: "in-process", deadline: undefined, responseHeader: undefined, responseTrailer: undefined },
  { description: "unary call" },
);

// setTimeout cannot wait longer than this; a later deadline is as good as none for one call.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `signal`, also aborted with DEADLINE_EXCEEDED when `deadline` passes. */
function deadlineSignal(signal: AbortSignal, deadline: number | undefined) {
  if (deadline === undefined) return { signal, cleanup: () => {} };
  const remaining = deadline - Date.now();
  if (remaining > MAX_TIMER_MS) return { signal, cleanup: () => {} };
  const controller = new AbortController();
  const expire = () => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener("abort", forward, { once: true });
  const timer = remaining <= 0 ? undefined : setTimeout(expire, remaining);
  if (remaining <= 0) expire();
  return {
    signal: controller.signal,
    cleanup: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", forward);
    },
  };
}

function handlerContext(req: UnaryRequest): HandlerContext {
  const call = req.contextValues.get(callKey);
  return {
    service: req.service,
    method: req.method,
    signal: req.signal,
    timeoutMs: () => (call.deadline === undefined ? undefined : call.deadline - Date.now()),
    requestMethod: req.requestMethod,
    requestHeader: req.header,
    responseHeader: call.responseHeader ?? new Headers(),
    responseTrailer: call.responseTrailer ?? new Headers(),
    protocolName: call.protocolName,
    values: req.contextValues,
    url: req.url,
  };
}

/**
 * A Connect transport that calls an invoker directly: messages are handed over as they are, never encoded.
 * Used by the webhook adapter, so its calls cost what the handlers cost and still pass every interceptor.
 */
export function inProcessTransport(invoker: UnaryInvoker, baseUrl = "http://in-process"): Transport {
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      const path = `/${method.parent.typeName}/${method.name}`;
      const route = invoker.route(path);
      if (route === undefined) throw new ConnectError(`${path} is not served here`, Code.Unimplemented);
      const message = isMessage(input, method.input) ? input : create(method.input, input);
      return invoker.invoke<I, O>(route, message, {
        header: new Headers(header),
        // Server-side context values start empty, as they would over the network: whatever the calling
        // client carries in its own (a peer certificate, say) must never reach the interceptor.
        contextValues: createContextValues(),
        signal: signal ?? NEVER,
        deadline: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
        protocolName: "in-process",
        requestMethod: "POST",
        url: `${baseUrl}${path}`,
      });
    },
    stream() {
      return Promise.reject(
        new ConnectError("streaming calls are not served in-process", Code.Unimplemented),
      );
    },
  };
}

/** A signal that never aborts, for callers that give none. */
const NEVER = new AbortController().signal;
