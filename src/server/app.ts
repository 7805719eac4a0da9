import type * as http from "node:http";
import type * as http2 from "node:http2";
import { type ConnectRouter, createClient } from "@connectrpc/connect";
import { FieldsealService, file_fieldseal_v1_fieldseal } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { file_grpc_health_v1_health, Health } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type AuditSink, fileAudit, jsonLinesAudit } from "../audit.js";
import { AccessControl } from "../auth/access.js";
import { CognigyClient } from "../cognigy/client.js";
import { keepAliveTransport } from "../cognigy/http-transport.js";
import { createInternalPrincipalAuth } from "../cognigy/internal-auth.js";
import { tracedTransport } from "../cognigy/traced-transport.js";
import { createWebhookHandler } from "../cognigy/webhook.js";
import type { Config } from "../config.js";
import { isFieldsealError } from "../errors.js";
import { Keyrings } from "../keys/keyrings.js";
import { tracedKeyStore } from "../keys/traced-store.js";
import { adoptingTutorialKeys } from "../keys/tutorial-adoption.js";
import type { KeyStore } from "../keys/types.js";
import { createLogger, type Logger } from "../log.js";
import { Metrics } from "../metrics.js";
import { scopeKeysFromConfig } from "../scopes/store-from-config.js";
import { Sealer } from "../sealer.js";
import { arrivedWhileDrainingKey } from "../service/context.js";
import { createFieldsealService, type SessionPusher } from "../service/fieldseal-service.js";
import { createHealthService, HealthStatus, ServingStatus } from "../service/health.js";
import { credentialsGate, fieldsealInterceptor } from "../service/interceptor.js";
import { createReflectionV1, createReflectionV1alpha, DescriptorIndex } from "../service/reflection.js";
import { tracingInterceptor } from "../service/tracing-interceptor.js";
import { inProcessTransport, type ServiceRegistration, UnaryInvoker } from "../service/unary-invoker.js";
import { startTracing, type Tracing } from "../tracing.js";
import { guardedConnectAdapter } from "./connect-adapter.js";
import { grpcUnaryFastPath, type SharedRpcOptions } from "./grpc-unary.js";
import { type DualListener, listenDual, listenTls, type RequestHandler } from "./listener.js";
import { peerContextValues } from "./peer-certificate.js";

/** Parts the caller may supply instead of the ones built from the config (tests, embedding). */
export interface AppOverrides {
  readonly log?: Logger;
  readonly audit?: AuditSink;
  readonly pusher?: SessionPusher;
}

/** A running Fieldseal server. */
export interface RunningServer {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  readonly health: HealthStatus;
  readonly keyrings: Keyrings;
  /** Principals and grants in force; `reloadAccess` swaps them. */
  readonly access: AccessControl;
  /** Reopens the audit file at its configured path (SIGHUP, after log rotation moved it). */
  reopenAudit(): void;
  readonly metrics: Metrics;
  /** How many HTTP requests (RPCs, webhooks, probes) are being served right now. */
  inFlight(): number;
  /**
   * Graceful shutdown: stop accepting, refuse new calls with UNAVAILABLE, let in-flight calls finish for
   * up to `graceMs`, then cut what is left and release the key store.
   */
  shutdown(graceMs?: number): Promise<void>;
}

const SERVICES = [
  FieldsealService.typeName,
  Health.typeName,
  reflectionV1.ServerReflection.typeName,
  reflectionV1alpha.ServerReflection.typeName,
];

/** How long shutdown waits for buffered spans to be exported. */
const TRACE_FLUSH_MS = 2000;

/** Starts Fieldseal on `config.host:config.port` over `store`. */
export async function startServer(
  config: Config,
  store: KeyStore,
  overrides: AppOverrides = {},
): Promise<RunningServer> {
  const log = overrides.log ?? createLogger(config.logLevel);
  // Traces only when the OTEL_* variables ask for them; otherwise nothing is wrapped (src/tracing.ts).
  const tracing = config.tracing.enabled ? await startTracing(config.tracing) : undefined;
  if (tracing !== undefined) store = tracedKeyStore(store, tracing.tracer);
  const audit =
    overrides.audit ??
    (config.audit.file === undefined
      ? jsonLinesAudit((line) => process.stdout.write(line))
      : fileAudit(config.audit.file));
  // Created before Keyrings so key events are counted from the first load; the ratio gauge reads
  // Keyrings' cache lazily, on scrape.
  const metrics: Metrics = new Metrics(() => keyrings.primaryUsage());
  // A keyring whose primary is the tutorial's key gets a fresh primary as soon as it is read.
  const adopting = adoptingTutorialKeys(store, {
    onAdopted: (keyring, version) =>
      log.info("tutorial key adopted: decrypt-only, fresh primary written", { keyring, version }),
    onAdoptionFailed: (keyring, err) =>
      log.warn("tutorial key not adopted: the store refused the write; it opens values, nothing seals", {
        keyring,
        code: isFieldsealError(err) ? err.code : "internal",
        ...(isFieldsealError(err) ? { reason: err.message } : {}),
      }),
  });
  const keyrings = new Keyrings(adopting, {
    policy: {
      sealBudget: config.rotation.sealBudget,
      ...(config.rotation.maxAgeMs === undefined ? {} : { maxAgeMs: config.rotation.maxAgeMs }),
    },
    storeWritesPerDay: config.rotation.storeWritesPerDay,
    primaryRefreshMs: config.primaryRefreshMs,
    onEvent: (e) => {
      metrics.keyEvent(e);
      if (e.type === "rotated")
        log.info("key rotated", { keyring: e.keyring, version: e.version, reason: e.reason });
      if (e.type === "created") log.info("keyring created", { keyring: e.keyring });
      if (e.type === "destroyed")
        log.warn("key versions destroyed", { keyring: e.keyring, fromVersion: e.from, toVersion: e.through });
      // Versions and rules only: Keyrings never puts material into a conflict's detail.
      if (e.type === "store_conflict") {
        // Under allow-listed names (src/log.ts): as `kind` and `detail` they were logged as "[redacted]".
        log.error("key store state refused", { keyring: e.keyring, reason: e.kind, error: e.detail });
        updateReadiness();
      }
      if (e.type === "store_conflict_cleared") {
        log.info("key store state consistent again", { keyring: e.keyring });
        updateReadiness();
      }
      // Names and codes only: a store error's cause may hold request details, never logged here.
      if (e.type === "store_call" && !e.ok)
        log.warn("key store call failed", {
          op: e.op,
          keyring: e.keyring,
          code: e.code,
          ms: Math.round(e.ms),
        });
    },
  });
  const health = new HealthStatus(SERVICES);
  let serving = false;
  // Not ready while the key store holds a keyring state Keyrings refused (see Keyrings.storeConflicts).
  const updateReadiness = () => {
    if (!serving || draining) return;
    const ok = keyrings.storeConflicts().length === 0;
    health.setAll(ok ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  };
  // Only a server with erasable keyrings opens the scope-key database.
  const scopes = await scopeKeysFromConfig(config.scopes, keyrings);
  // A plain value on an erasable keyring is counted every time and logged once per keyring and process: a
  // replica sealing without the erasable setting makes values ForgetScope cannot erase.
  const warnedUnerasable = new Set<string>();
  const sealer = new Sealer(keyrings, {
    legacyKeyring: config.legacyKeyring,
    legacyEnabled: config.legacyEnabled,
    observer: {
      fieldsSealed: (count) => metrics.fieldsSealed(count),
      fieldOpened: (outcome) => metrics.fieldOpened(outcome),
      unerasableOpened: (keyring) => {
        metrics.unerasableOpened(keyring);
        if (warnedUnerasable.has(keyring)) return;
        warnedUnerasable.add(keyring);
        log.warn(
          "opened a plain fs1 value on an erasable keyring: ForgetScope cannot erase it (sealed before the keyring was made erasable, or by a replica without FIELDSEAL_ERASABLE_KEYRINGS; re-seal with RewrapFields); counted in fieldseal_unerasable_values_opened_total",
          { keyring },
        );
      },
    },
    ...(scopes === undefined ? {} : { scopes }),
  });
  let draining = false;

  const index = new DescriptorIndex(
    [
      file_fieldseal_v1_fieldseal,
      file_grpc_health_v1_health,
      reflectionV1.file_grpc_reflection_v1_reflection,
      reflectionV1alpha.file_grpc_reflection_v1alpha_reflection,
    ],
    SERVICES,
  );
  const internal = createInternalPrincipalAuth();
  const access = new AccessControl(config.principals);
  const pusher = countedPusher(overrides.pusher ?? cognigyPusher(config, log, metrics, tracing), metrics);
  const interceptorDeps = { access, audit, internal, log, observe: metrics.rpcFinished };
  const interceptors = [
    ...(tracing === undefined ? [] : [tracingInterceptor(tracing.tracer)]),
    fieldsealInterceptor(interceptorDeps),
  ];
  const services: ServiceRegistration[] = [
    {
      service: FieldsealService,
      impl: createFieldsealService({
        sealer,
        keys: keyrings,
        storeKind: store.kind,
        defaultKeyring: config.defaultKeyring,
        fieldFormats: config.fields,
        keyringFieldFormats: config.keyringFields,
        audit,
        ...(pusher === undefined ? {} : { pusher }),
        ...(scopes === undefined ? {} : { scopes }),
      }),
    },
    { service: Health, impl: createHealthService(health, updateReadiness) },
    { service: reflectionV1.ServerReflection, impl: createReflectionV1(index) },
    { service: reflectionV1alpha.ServerReflection, impl: createReflectionV1alpha(index) },
  ];
  // Called as each request arrives, so "arrived while draining" is decided then, not after its body.
  const contextValues = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    peerContextValues(req).set(arrivedWhileDrainingKey, draining);
  // One set of options for every pipeline that serves RPCs: connect-node, the unary invoker and the gRPC
  // fast path take this same object, so a limit or an interceptor cannot apply to one and not another.
  const rpcOptions: SharedRpcOptions = {
    readMaxBytes: config.maxRequestBytes,
    interceptors,
    contextValues,
    // Answers are never compressed (compressed requests are still read): sealed values are ciphertext,
    // which does not compress; compressing plaintext next to bytes a caller chose leaks it through the
    // length (CRIME/BREACH); and it keeps the fast path's answers identical to connect-node's.
    compressMinBytes: Number.POSITIVE_INFINITY,
    // A call without credentials is refused on its headers: its body is never read or buffered.
    credentialsGate: credentialsGate(interceptorDeps),
    // Health and reflection answer anyone: their requests are held to a small fixed size.
    isOpenService: (service) => service !== FieldsealService.typeName,
  };
  const rpc = guardedConnectAdapter({
    ...rpcOptions,
    routes: (router: ConnectRouter) => {
      for (const { service, impl } of services) router.service(service, impl);
    },
    onRefused: (rpc, reason, ms) => {
      log.info("rpc refused", { rpc, code: reason, ms: Math.round(ms) });
      metrics.rpcFinished(rpc, reason, ms);
    },
    // Only a bug gets here (connect-node could not write its answer); its name only, as the interceptor logs.
    onHandlerFailure: (err) => log.error("rpc answer failed", { error: (err as Error)?.name ?? "unknown" }),
  });
  // Unary calls also run through one invoker over the very same implementations and interceptors: the gRPC
  // fast path serves plain gRPC calls with it, and the webhook adapter calls it in-process, so
  // authentication, authorization, validation and audit happen in one place for every caller.
  const invoker = new UnaryInvoker(services, rpcOptions);
  // FIELDSEAL_GRPC_FAST_PATH=off: connect-node serves every call.
  const grpcUnary = config.grpcFastPath ? grpcUnaryFastPath(invoker, rpcOptions) : undefined;
  const webhook = createWebhookHandler({
    client: createClient(FieldsealService, inProcessTransport(invoker)),
    pushEnabled: config.cognigy.pushEnabled && pusher !== undefined,
    defaultKeyring: config.defaultKeyring,
    maxBodyBytes: config.webhook.maxBodyBytes,
    hmacToleranceSec: config.webhook.hmacToleranceSec,
    hmacReplayCapacityPerSigner: config.webhook.hmacReplayCapacityPerSigner,
    hmacAcceptV1: config.webhook.hmacAcceptV1,
    ...(Object.keys(config.webhook.hmacSecrets).length === 0
      ? {}
      : {
          hmacSecrets: { ...config.webhook.hmacSecrets },
          principalHeaders: (p: string) => internal.headersFor(p),
        }),
    onError: (e) => log.info("webhook refused", { status: e.status, code: e.code }),
  });

  let inFlight = 0;
  const handler: RequestHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    // A call that arrives while draining, before the port is closed, is refused only once it is: a client
    // answered at once reconnects at once, and the closing port would reset its new connection (see
    // portCloser in listener.ts). Its refusal then carries `connection: close` or GOAWAY, and the client's
    // next connection is refused cleanly. Probes are answered at once. It counts as in flight only then, so
    // the port can close (closeIdle waits for nothing in flight).
    if (draining && listener?.listening() === true && !isProbe(path)) {
      void listener.portClosed.then(() => serve(req, res, path));
      return;
    }
    serve(req, res, path);
  };
  const serve = (
    req: Parameters<RequestHandler>[0],
    res: Parameters<RequestHandler>[1],
    path: string | undefined,
  ) => {
    if (res.writableEnded || req.socket.destroyed) return;
    inFlight++;
    res.once("close", () => inFlight--);
    if (path === "/healthz") return plain(res, 200, { status: "ok" });
    if (path === "/readyz") {
      updateReadiness();
      const ready = !draining && health.get("") === ServingStatus.SERVING;
      return plain(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready" });
    }
    if (path === "/metrics" && config.metrics.enabled && req.method === "GET") {
      void metrics.scrape().then(
        ({ text, contentType }) => {
          (res as http.ServerResponse).writeHead(200, { "content-type": contentType });
          res.end(text);
        },
        () => plain(res, 500, { status: "metrics unavailable" }),
      );
      return;
    }
    if (draining) res.setHeader("connection", "close");
    if (path === "/webhooks/cognigy") {
      if (draining)
        return plain(res, 503, { title: "Service Unavailable", status: 503, detail: "shutting down" });
      return webhook(req, res as http.ServerResponse);
    }
    if (
      req.httpVersionMajor === 2 &&
      grpcUnary?.(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse) === true
    ) {
      metrics.grpcFastPathCall();
      return;
    }
    rpc(
      req as http.IncomingMessage & http2.Http2ServerRequest,
      res as http.ServerResponse & http2.Http2ServerResponse,
    );
  };

  // Fail fast on a broken store or config: the default keyring must exist (or be creatable) before we
  // report ready.
  await keyrings.ensure(config.defaultKeyring);
  for (const name of config.keyrings) await keyrings.ensure(name);
  const where = { host: config.host, port: config.port, limits: config.limits };
  let listener: DualListener | undefined;
  try {
    listener =
      config.tls === undefined
        ? await listenDual(handler, where)
        : await listenTls(handler, { ...where, tls: config.tls });
  } catch (err) {
    // A port that cannot be bound or TLS files that cannot be used: release what started, so the
    // process can exit with the error.
    await scopes?.close();
    await keyrings.close();
    await store.close();
    audit.close?.();
    await tracing?.shutdown().catch(() => undefined);
    throw err;
  }
  serving = true;
  health.setAll(ServingStatus.SERVING);
  updateReadiness();
  const url = `${config.tls === undefined ? "http" : "https"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${listener.port}`;
  log.info("fieldseal listening", { url, store: store.kind });

  let stopped: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    health,
    keyrings,
    access,
    metrics,
    inFlight: () => inFlight,
    reopenAudit: () => audit.reopen?.(),
    shutdown(graceMs = config.shutdownGraceMs) {
      stopped ??= (async () => {
        draining = true;
        health.setAll(ServingStatus.NOT_SERVING);
        listener.stopAccepting();
        const deadline = Date.now() + graceMs;
        // Wait for calls to finish, then for connections to close: responses carry `connection: close` or
        // GOAWAY, and idle ones are closed only once nothing is in flight (see closeIdle).
        while (Date.now() < deadline) {
          if (inFlight === 0) {
            listener.closeIdle();
            // The port closes just after an accept pass; connections taken in by it are answered too.
            if (!listener.listening() && listener.connections() === 0) break;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        if (inFlight > 0) log.warn("shutdown deadline reached; cutting calls", { inFlight });
        listener.destroyAll();
        await scopes?.close();
        await keyrings.close();
        await store.close();
        audit.close?.();
        // Spans still buffered go out now, for at most TRACE_FLUSH_MS: an unreachable collector must not
        // hold the process past its grace period.
        if (tracing !== undefined) {
          await Promise.race([
            tracing.shutdown().catch(() => undefined),
            new Promise((resolve) => setTimeout(resolve, TRACE_FLUSH_MS).unref()),
          ]);
        }
        log.info("fieldseal stopped", {});
      })();
      return stopped;
    },
  };
}

/** The Cognigy client the config describes, or undefined when no Cognigy endpoint is configured. */
function cognigyPusher(
  config: Config,
  log: Logger,
  metrics: Metrics,
  tracing: Tracing | undefined,
): CognigyClient | undefined {
  const c = config.cognigy;
  if (c.baseUrl === undefined) return undefined;
  return new CognigyClient({
    baseUrl: c.baseUrl,
    mode: c.mode,
    deadlineMs: c.deadlineMs,
    maxAttempts: c.maxAttempts,
    baseBackoffMs: c.baseBackoffMs,
    backoffCapMs: c.backoffCapMs,
    retryAfterCapMs: c.retryAfterCapMs,
    // One client per process, so this one budget covers every push the process makes. Cognigy counts
    // per client IP, and the workers of `serve --workers N` share the host's: each takes its Nth.
    rateLimit: { limit: pushRateLimitPerProcess(config), windowMs: c.rateWindowSec * 1000 },
    ...(c.apiKey === undefined ? {} : { apiKey: c.apiKey }),
    ...(c.bearerToken === undefined ? {} : { bearerToken: c.bearerToken }),
    ...(tracing === undefined ? {} : { transport: tracedTransport(keepAliveTransport(), tracing.tracer) }),
    onAttempt: (e) => {
      metrics.pushAttempt(e);
      log.debug("cognigy push attempt", { attempts: e.attempt, status: e.status, delayMs: e.delayMs });
    },
  });
}

/**
 * The Cognigy requests one process may send per window: FIELDSEAL_COGNIGY_RATE_LIMIT is the host's (the
 * whole `fieldseal serve`), split evenly over its workers, at least one each.
 */
export function pushRateLimitPerProcess(config: Pick<Config, "cognigy" | "workers">): number {
  return Math.max(1, Math.floor(config.cognigy.rateLimit / config.workers));
}

/** Counts each push's final outcome ("ok" or the error code) around whichever pusher is in use. */
function countedPusher(pusher: SessionPusher | undefined, metrics: Metrics): SessionPusher | undefined {
  if (pusher === undefined) return undefined;
  return {
    async push(req) {
      try {
        const r = await pusher.push(req);
        metrics.pushFinished("ok");
        return r;
      } catch (err) {
        metrics.pushFinished(isFieldsealError(err) ? err.code : "internal");
        throw err;
      }
    },
  };
}

/** Paths answered at once, draining or not: liveness, readiness and metrics. */
function isProbe(path: string | undefined): boolean {
  return path === "/healthz" || path === "/readyz" || path === "/metrics";
}

function plain(res: http.ServerResponse | http2.Http2ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  (res as http.ServerResponse).writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
