import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import { inProcessTransport, UnaryInvoker } from "../../src/service/unary-invoker.js";

const healthy = {
  check: () => ({ status: Status.SERVING }),
};

describe("UnaryInvoker", () => {
  it("runs every interceptor around the implementation, the first one outermost", async () => {
    const seen: string[] = [];
    const tag =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        seen.push(`${name}>`);
        const res = await next(req);
        seen.push(`<${name}`);
        res.header.set(`x-${name}`, "1");
        return res;
      };
    const invoker = new UnaryInvoker([{ service: Health, impl: healthy }], {
      interceptors: [tag("outer"), tag("inner")],
    });
    const client = createClient(Health, inProcessTransport(invoker));
    let header: Headers | undefined;
    const res = await client.check({}, { onHeader: (h) => (header = h) });
    expect(res.status).toBe(Status.SERVING);
    expect(seen).toEqual(["outer>", "inner>", "<inner", "<outer"]);
    expect(header?.get("x-outer")).toBe("1");
  });

  it("passes the caller's headers and context to the handler, and an interceptor's refusal to the caller", async () => {
    const gate: Interceptor = (next) => (req) => {
      if (req.header.get("authorization") !== "Bearer ok") throw new ConnectError("no", Code.Unauthenticated);
      return next(req);
    };
    const invoker = new UnaryInvoker([{ service: Health, impl: healthy }], { interceptors: [gate] });
    const client = createClient(Health, inProcessTransport(invoker));
    await expect(client.check({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(client.check({}, { headers: { authorization: "Bearer ok" } })).resolves.toMatchObject({
      status: Status.SERVING,
    });
  });

  it("aborts the handler's signal with DEADLINE_EXCEEDED when the deadline passes, as connect-node does", async () => {
    let reason: unknown;
    const slow = {
      check: async (_req: unknown, ctx: { signal: AbortSignal }) => {
        await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));
        reason = ctx.signal.reason;
        throw reason;
      },
    };
    const invoker = new UnaryInvoker([{ service: Health, impl: slow }], { interceptors: [] });
    const client = createClient(Health, inProcessTransport(invoker));
    await expect(client.check({}, { timeoutMs: 20 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(reason).toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("answers what a handler returns after its deadline, and copes with deadlines beyond a timer's range", async () => {
    const late = {
      check: () => new Promise((r) => setTimeout(() => r({ status: Status.SERVING }), 40)),
    };
    const invoker = new UnaryInvoker([{ service: Health, impl: late }], { interceptors: [] });
    const client = createClient(Health, inProcessTransport(invoker));
    await expect(client.check({}, { timeoutMs: 10 })).resolves.toMatchObject({ status: Status.SERVING });
    await expect(client.check({}, { timeoutMs: 2 ** 40 })).resolves.toMatchObject({ status: Status.SERVING });
  });

  it("starts every call with fresh context values, whatever the calling client carries", async () => {
    const planted = createContextKey<string>("none");
    let seen: string | undefined;
    const spy: Interceptor = (next) => (req) => {
      seen = req.contextValues.get(planted);
      return next(req);
    };
    const invoker = new UnaryInvoker([{ service: Health, impl: healthy }], { interceptors: [spy] });
    const client = createClient(Health, inProcessTransport(invoker));
    await client.check({}, { contextValues: createContextValues().set(planted, "from the caller") });
    expect(seen).toBe("none");
  });

  it("tells the handler its protocol and remaining time", async () => {
    let seen: { protocol: string; remaining: number | undefined } | undefined;
    const impl = {
      check: (_req: unknown, ctx: { protocolName: string; timeoutMs(): number | undefined }) => {
        seen = { protocol: ctx.protocolName, remaining: ctx.timeoutMs() };
        return { status: Status.SERVING };
      },
    };
    const invoker = new UnaryInvoker([{ service: Health, impl }], { interceptors: [] });
    await createClient(Health, inProcessTransport(invoker)).check({}, { timeoutMs: 5_000 });
    expect(seen?.protocol).toBe("in-process");
    expect(seen?.remaining).toBeGreaterThan(4_000);
    expect(seen?.remaining).toBeLessThanOrEqual(5_000);
  });

  it("refuses streaming methods and methods it does not serve", async () => {
    const invoker = new UnaryInvoker([{ service: Health, impl: healthy }], { interceptors: [] });
    expect(invoker.route("/grpc.health.v1.Health/Check")).toBeDefined();
    expect(invoker.route("/grpc.health.v1.Health/Watch")).toBeUndefined();
    const client = createClient(Health, inProcessTransport(invoker));
    const watch = client.watch({});
    await expect(watch[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: Code.Unimplemented });
    const none = createClient(Health, inProcessTransport(new UnaryInvoker([], { interceptors: [] })));
    await expect(none.check({})).rejects.toMatchObject({ code: Code.Unimplemented });
  });

  it("answers UNIMPLEMENTED for a method the implementation leaves out", async () => {
    const invoker = new UnaryInvoker([{ service: Health, impl: {} }], { interceptors: [] });
    await expect(createClient(Health, inProcessTransport(invoker)).check({})).rejects.toMatchObject({
      code: Code.Unimplemented,
    });
  });
});

describe("UnaryInvoker response headers", () => {
  it("collects what the handler and interceptors set into the caller's objects, even when the call fails", async () => {
    const impl = {
      check: (_req: unknown, ctx: { responseHeader: Headers; responseTrailer: Headers }) => {
        ctx.responseHeader.set("x-handler", "h");
        ctx.responseTrailer.set("x-handler-trailer", "t");
        throw new ConnectError("refused", Code.PermissionDenied);
      },
    };
    const invoker = new UnaryInvoker([{ service: Health, impl }], { interceptors: [] });
    const route = invoker.route("/grpc.health.v1.Health/Check");
    if (route === undefined) throw new Error("no route");
    const responseHeader = new Headers();
    const responseTrailer = new Headers();
    await expect(
      invoker.invoke(route, create(HealthCheckRequestSchema), {
        header: new Headers(),
        contextValues: createContextValues(),
        signal: new AbortController().signal,
        protocolName: "grpc",
        requestMethod: "POST",
        url: "http://x/grpc.health.v1.Health/Check",
        responseHeader,
        responseTrailer,
      }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(responseHeader.get("x-handler")).toBe("h");
    expect(responseTrailer.get("x-handler-trailer")).toBe("t");
  });

  it("gives every call fresh headers when the caller passes none", async () => {
    const seen: Headers[] = [];
    const impl = {
      check: (_req: unknown, ctx: { responseHeader: Headers }) => {
        seen.push(ctx.responseHeader);
        ctx.responseHeader.append("x-count", "1");
        return { status: Status.SERVING };
      },
    };
    const client = createClient(
      Health,
      inProcessTransport(new UnaryInvoker([{ service: Health, impl }], {})),
    );
    await client.check({});
    await client.check({});
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen[1]?.get("x-count")).toBe("1");
  });
});
