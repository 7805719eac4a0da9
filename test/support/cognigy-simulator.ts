/**
 * A Cognigy.AI REST API simulator: a real node:http server on loopback that implements the two endpoints
 * Fieldseal pushes to, with Cognigy's auth, body limit, rate limit and RFC 7807 errors, plus fault injection
 * (5xx, delays, dropped connections before or after applying, 429s) and per-idempotency-key application
 * counts so tests can assert "applied exactly once". docs/cognigy-sources.md says which of its behaviours
 * Cognigy documents and which are this simulator's choice where Cognigy is silent.
 *
 * Endpoints:
 *   POST /new/v2.0/sessions/:id/context/inject  and  POST /v2.0/sessions/:id/context/inject
 *        body {"userId": string, "context": object}, both required (the REST client's
 *        IInjectContextRestDataBody_2_0); auth `X-API-Key` header or `?api_key=` (a bearer token is accepted
 *        too); answers 200 with the injected context.
 *   PUT  /api/v1/sessions/:id/variables  (the tutorial's endpoint; Cognigy documents no such path)
 *        body {"variables": object}; auth `Authorization: Bearer`; answers 200 with the variables set.
 * Both merge the given keys shallowly into the session's stored context. Any other path is 404.
 *
 * Rate limit: Cognigy's shared SaaS allows 1,000 requests per 5 minutes from one IP address
 * (docs/ai/administer/limitations.md). The simulator counts every request from a client address, whatever
 * it asks and however it authenticates, over a sliding window: the strictest reading of "per 5 minutes", so
 * a client that stays under it here stays under a fixed window too. Over the limit it answers 429 with a
 * `Retry-After` in seconds; a request so refused is not counted itself (Cognigy does not say whether it
 * is; Fieldseal's own budget counts it either way). Cognigy documents no header on its 429; Retry-After is what its own REST client
 * reads (`retryAfterDelay` in @cognigy/rest-api-client 0.19.0), so that is what is sent.
 *
 * Errors are problem documents shaped as the REST client's `IErrorResponse` (RFC 7807 plus Cognigy's
 * numeric `code`, `traceId` and `details`): `{type, title, status, detail, instance, code, traceId, details}`.
 *
 * Runnable by hand (scripts/cognigy-simulator.ts), so it uses only erasable TypeScript syntax and imports
 * nothing but node: modules.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What the simulator does to one request instead of (or before) answering it normally. */
export interface SimulatorFault {
  /** Answer with this status as a problem document, without applying. */
  status?: number;
  /** With `status` 429: the raw `Retry-After` header (e.g. an HTTP-date); default "1". */
  retryAfter?: string;
  /** Shorthand for `{ status: 429, retryAfter: String(seconds) }`. */
  rateLimit?: number;
  /** Wait this long before handling the request (after reading the body). */
  delayMs?: number;
  /** Destroy the socket before applying, or after applying but before answering. */
  drop?: "before" | "after";
}

/** What a fault decider sees of a request; never the body. */
export interface SimulatorRequestInfo {
  method: string;
  path: string;
  sessionId: string;
  idempotencyKey?: string;
  /** 1-based count of requests the simulator has seen so far, this one included. */
  seq: number;
}

export type FaultDecider = (req: SimulatorRequestInfo) => SimulatorFault | undefined;

export interface SimulatorRequestRecord {
  method: string;
  path: string;
  idempotencyKey?: string;
  /** The status answered, or 0 when the connection was dropped. */
  status: number;
  /** When the request arrived, by the simulator's clock (ms). */
  at: number;
}

export interface CognigySimulatorOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default "sim-api-key". */
  apiKey?: string;
  /** Default "sim-bearer-token". */
  bearerToken?: string;
  /** When set, only these sessions exist (others get 404); otherwise sessions are created on first use. */
  knownSessions?: string[];
  /** Replay the first answer for a repeated `Idempotency-Key` instead of applying again. Default true. */
  honourIdempotencyKey?: boolean;
  /** Requests per sliding window per client IP address. Default 1000 per 300 s, as on shared SaaS. */
  rateLimit?: { limit: number; windowSec: number };
  /** Default 60_000 bytes, Cognigy's JSON body cap. */
  maxBodyBytes?: number;
  faults?: FaultDecider | SimulatorFault[];
  now?: () => number;
}

export interface CognigySimulator {
  url: string;
  port: number;
  apiKey: string;
  bearerToken: string;
  /** Session id → stored context. */
  contexts: Map<string, Record<string, unknown>>;
  requests: SimulatorRequestRecord[];
  /** Idempotency key → how many times a request under it was applied. */
  applications: Map<string, number>;
  /** Total applications, with or without an idempotency key. */
  appliedCount(): number;
  /** A decider, or a queue consumed one entry per request (then no faults). */
  setFaults(faults: FaultDecider | SimulatorFault[] | undefined): void;
  /** The most requests that arrived from one client address within any one rate-limit window so far. */
  peakWindowCount(): number;
  /** Forgets sessions, requests, applications, idempotency records, rate-limit windows and faults. */
  reset(): void;
  close(): Promise<void>;
}

interface StoredAnswer {
  status: number;
  body: string;
}

/**
 * Cognigy's numeric error codes (the REST client's `ErrorCode` enum) and titles (its error classes'
 * OpenAPI examples) for the statuses the simulator answers.
 */
const COGNIGY_ERRORS: Record<number, { code: number; type: string; title: string }> = {
  400: { code: 1005, type: "Invalid Argument", title: "Invalid Argument Error" },
  401: { code: 401, type: "Unauthorized", title: "Unauthorized Error" },
  403: { code: 403, type: "Forbidden", title: "Forbidden Error" },
  404: { code: 1002, type: "Not Found", title: "Not Found Error" },
  405: { code: 1013, type: "Method Not Allowed", title: "Method Not Allowed Error" },
  413: { code: 413, type: "Payload Too Large", title: "Payload Too Large Error" },
  429: { code: 429, type: "TooManyRequestsError", title: "Too Many Requests Error" },
  502: { code: 502, type: "Bad Gateway", title: "Bad Gateway Error" },
  503: { code: 503, type: "Service Unavailable", title: "Service Unavailable Error" },
  504: { code: 504, type: "Gateway Timeout", title: "Gateway Timeout Error" },
};
/** MISSING_ARGUMENT_ERROR in the REST client's ErrorCode: a 400 for a required field left out. */
const MISSING_ARGUMENT = 1000;

const INJECT = /^\/(?:new\/)?v2\.0\/sessions\/([^/]+)\/context\/inject$/;
const VARIABLES = /^\/api\/v1\/sessions\/([^/]+)\/variables$/;

/** Starts the simulator on 127.0.0.1. */
export async function startCognigySimulator(opts: CognigySimulatorOptions = {}): Promise<CognigySimulator> {
  const apiKey = opts.apiKey ?? "sim-api-key";
  const bearerToken = opts.bearerToken ?? "sim-bearer-token";
  const honour = opts.honourIdempotencyKey ?? true;
  const limit = opts.rateLimit ?? { limit: 1000, windowSec: 300 };
  const maxBody = opts.maxBodyBytes ?? 60_000;
  const now = opts.now ?? Date.now;
  const known = opts.knownSessions !== undefined ? new Set(opts.knownSessions) : undefined;

  const contexts = new Map<string, Record<string, unknown>>();
  const requests: SimulatorRequestRecord[] = [];
  const applications = new Map<string, number>();
  const answered = new Map<string, StoredAnswer>();
  /** Client address → arrival times within the current window, oldest first. */
  const windows = new Map<string, number[]>();
  let peak = 0;
  let faults: FaultDecider | SimulatorFault[] | undefined = opts.faults;
  let applied = 0;
  let seq = 0;
  const sockets = new Set<Socket>();

  const nextFault = (info: SimulatorRequestInfo): SimulatorFault | undefined => {
    if (faults === undefined) return undefined;
    if (typeof faults === "function") return faults(info);
    return faults.shift();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    seq += 1;
    const t = now();
    const url = new URL(req.url ?? "/", "http://simulator.invalid");
    const path = url.pathname;
    const idempotencyKey = header(req, "idempotency-key");
    const record: SimulatorRequestRecord = { method: req.method ?? "", path, status: 0, at: t };
    if (idempotencyKey !== undefined) record.idempotencyKey = idempotencyKey;
    requests.push(record);
    const answer = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      record.status = status;
      const text = JSON.stringify(body);
      const isProblem = status >= 400;
      res.writeHead(status, {
        "content-type": isProblem ? "application/problem+json" : "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...extra,
      });
      res.end(text);
    };
    const problem = (
      status: number,
      detail: string,
      extra: Record<string, string> = {},
      code: number | undefined = undefined,
    ): void => {
      const traceId = `trace-${randomBytes(8).toString("hex")}`;
      const known = COGNIGY_ERRORS[status] ?? { code: 1008, type: "Error", title: "Internal Server Error" };
      answer(
        status,
        {
          type: known.type,
          title: known.title,
          status,
          detail,
          instance: path,
          code: code ?? known.code,
          traceId,
          details: {},
        },
        { "x-trace-id": traceId, ...extra },
      );
    };
    const drop = (): void => {
      record.status = 0;
      req.socket.destroy();
    };

    // Per-IP sliding window over every request, before anything else is looked at.
    const client = req.socket.remoteAddress ?? "unknown";
    const windowMs = limit.windowSec * 1000;
    const arrivals = windows.get(client) ?? [];
    windows.set(client, arrivals);
    while (arrivals.length > 0 && (arrivals[0] as number) <= t - windowMs) arrivals.shift();
    if (arrivals.length >= limit.limit) {
      const retry = Math.max(1, Math.ceil(((arrivals[0] as number) + windowMs - t) / 1000));
      return problem(429, "rate limit exceeded", { "retry-after": String(retry) });
    }
    arrivals.push(t);
    peak = Math.max(peak, arrivals.length);

    const inject = INJECT.exec(path);
    const put = VARIABLES.exec(path);
    const match = inject ?? put;
    if (match === null || match[1] === undefined) {
      return problem(404, `no route for ${path}`);
    }
    const expectedMethod = inject !== null ? "POST" : "PUT";
    if (req.method !== expectedMethod) {
      return problem(405, `use ${expectedMethod}`, { allow: expectedMethod });
    }
    let sessionId: string;
    try {
      sessionId = decodeURIComponent(match[1]);
    } catch {
      return problem(400, "session id is not valid percent-encoding");
    }

    // Auth: API key (header or query) for the REST API v2.0; bearer token for both.
    const bearer = header(req, "authorization");
    const presentedKey = header(req, "x-api-key") ?? url.searchParams.get("api_key") ?? undefined;
    const bearerOk = bearer === `Bearer ${bearerToken}`;
    const keyOk = presentedKey === apiKey;
    const authOk = inject !== null ? keyOk || bearerOk : bearerOk;
    if (!authOk) {
      return problem(401, "missing or invalid credentials");
    }

    // Body, with the size cap enforced while reading.
    const body = await readBody(req, maxBody);
    if (body === "too_large") {
      return problem(413, `request body exceeds ${maxBody} bytes`, { connection: "close" });
    }
    const info: SimulatorRequestInfo = { method: expectedMethod, path, sessionId, seq };
    if (idempotencyKey !== undefined) info.idempotencyKey = idempotencyKey;
    const fault = nextFault(info);
    if (fault?.delayMs !== undefined) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.rateLimit !== undefined) {
      return problem(429, "rate limit exceeded", { "retry-after": String(fault.rateLimit) });
    }
    if (fault?.status !== undefined) {
      const extra: Record<string, string> =
        fault.status === 429 ? { "retry-after": fault.retryAfter ?? "1" } : {};
      return problem(fault.status, "fault injected by the test", extra);
    }
    if (fault?.drop === "before") return drop();

    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "body is not valid JSON");
    }
    const name = inject !== null ? "context" : "variables";
    if (!has(parsed, name)) return problem(400, `"${name}" is required`, {}, MISSING_ARGUMENT);
    const values = field(parsed, name);
    if (values === undefined) return problem(400, `"${name}" must be a JSON object`);
    if (inject !== null) {
      if (!has(parsed, "userId")) return problem(400, '"userId" is required', {}, MISSING_ARGUMENT);
      const userId = field(parsed, "userId", "string");
      if (typeof userId !== "string" || userId === "") {
        return problem(400, '"userId" must be a non-empty string');
      }
    }
    if (known !== undefined && !known.has(sessionId)) {
      return problem(404, "session not found");
    }

    const replayKey =
      idempotencyKey !== undefined ? `${expectedMethod} ${path} ${idempotencyKey}` : undefined;
    const previous = replayKey !== undefined && honour ? answered.get(replayKey) : undefined;
    if (previous !== undefined) {
      record.status = previous.status;
      res.writeHead(previous.status, { "content-type": "application/json", "idempotent-replayed": "true" });
      res.end(previous.body);
      return;
    }

    const stored = contexts.get(sessionId) ?? {};
    Object.assign(stored, values);
    contexts.set(sessionId, stored);
    applied += 1;
    if (idempotencyKey !== undefined) {
      applications.set(idempotencyKey, (applications.get(idempotencyKey) ?? 0) + 1);
    }
    const responseBody = JSON.stringify(values);
    if (replayKey !== undefined) answered.set(replayKey, { status: 200, body: responseBody });
    if (fault?.drop === "after") return drop();
    record.status = 200;
    res.writeHead(200, {
      "content-type": "application/json",
      "x-trace-id": `trace-${randomBytes(8).toString("hex")}`,
    });
    res.end(responseBody);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    apiKey,
    bearerToken,
    contexts,
    requests,
    applications,
    appliedCount: () => applied,
    peakWindowCount: () => peak,
    setFaults: (next) => {
      faults = Array.isArray(next) ? [...next] : next;
    },
    reset: () => {
      contexts.clear();
      requests.length = 0;
      applications.clear();
      answered.clear();
      windows.clear();
      peak = 0;
      faults = undefined;
      applied = 0;
      seq = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function has(body: unknown, name: string): boolean {
  return body !== null && typeof body === "object" && !Array.isArray(body) && Object.hasOwn(body, name);
}

function field(body: unknown, name: string, type: "object" | "string" = "object"): unknown {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined;
  const value = (body as Record<string, unknown>)[name];
  if (type === "string") return typeof value === "string" ? value : undefined;
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : undefined;
}

/** Reads the body, stopping at `max` bytes (the rest is not read). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | "too_large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        req.pause();
        resolve("too_large");
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!done) resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}
