/**
 * A Cognigy.AI REST API simulator: a real node:http server on loopback that implements the two endpoints
 * Fieldseal pushes to, with Cognigy's auth, body limit, rate limit and RFC 7807 errors, plus fault injection
 * (5xx, delays, dropped connections before or after applying, 429s) and per-idempotency-key application
 * counts so tests can assert "applied exactly once".
 *
 * Endpoints:
 *   POST /new/v2.0/sessions/:id/context/inject  and  POST /v2.0/sessions/:id/context/inject
 *        body {"userId": string, "context": object}; auth `X-API-Key` header or `?api_key=`
 *        (a bearer token is accepted too); answers 200 with the injected context.
 *   PUT  /api/v1/sessions/:id/variables
 *        body {"variables": object}; auth `Authorization: Bearer`; answers 200 with the variables set.
 * Both merge the given keys shallowly into the session's stored context.
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
  /** Requests per window per credential (or client IP). Default 1000 per 300 s, like shared SaaS. */
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
  /** Forgets sessions, requests, applications, idempotency records, rate-limit windows and faults. */
  reset(): void;
  close(): Promise<void>;
}

interface StoredAnswer {
  status: number;
  body: string;
}

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
  const windows = new Map<string, { start: number; count: number }>();
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
    const url = new URL(req.url ?? "/", "http://simulator.invalid");
    const path = url.pathname;
    const idempotencyKey = header(req, "idempotency-key");
    const record: SimulatorRequestRecord = { method: req.method ?? "", path, status: 0 };
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
    const problem = (status: number, title: string, detail: string, code: string, extra = {}): void => {
      const traceId = `trace-${randomBytes(8).toString("hex")}`;
      answer(
        status,
        { type: `https://cognigy-simulator.invalid/problems/${code}`, title, status, detail, code, traceId },
        { "x-trace-id": traceId, ...extra },
      );
    };
    const drop = (): void => {
      record.status = 0;
      req.socket.destroy();
    };

    const inject = INJECT.exec(path);
    const put = VARIABLES.exec(path);
    const match = inject ?? put;
    if (match === null || match[1] === undefined) {
      return problem(404, "Not Found", `no route for ${path}`, "route_not_found");
    }
    const expectedMethod = inject !== null ? "POST" : "PUT";
    if (req.method !== expectedMethod) {
      return problem(405, "Method Not Allowed", `use ${expectedMethod}`, "method_not_allowed", {
        allow: expectedMethod,
      });
    }
    let sessionId: string;
    try {
      sessionId = decodeURIComponent(match[1]);
    } catch {
      return problem(400, "Bad Request", "session id is not valid percent-encoding", "bad_session_id");
    }

    // Auth: API key (header or query) for the REST API v2.0; bearer token for both.
    const bearer = header(req, "authorization");
    const presentedKey = header(req, "x-api-key") ?? url.searchParams.get("api_key") ?? undefined;
    const bearerOk = bearer === `Bearer ${bearerToken}`;
    const keyOk = presentedKey === apiKey;
    const authOk = inject !== null ? keyOk || bearerOk : bearerOk;
    if (!authOk) {
      return problem(401, "Unauthorized", "missing or invalid credentials", "unauthorized");
    }

    // Fixed-window rate limit per credential.
    const client = keyOk ? `key:${presentedKey}` : bearerOk ? "bearer" : `ip:${req.socket.remoteAddress}`;
    const t = now();
    let window = windows.get(client);
    if (window === undefined || t - window.start >= limit.windowSec * 1000) {
      window = { start: t, count: 0 };
      windows.set(client, window);
    }
    window.count += 1;
    if (window.count > limit.limit) {
      const retry = Math.max(1, Math.ceil((window.start + limit.windowSec * 1000 - t) / 1000));
      return problem(429, "Too Many Requests", "rate limit exceeded", "rate_limited", {
        "retry-after": String(retry),
      });
    }

    // Body, with the size cap enforced while reading.
    const body = await readBody(req, maxBody);
    if (body === "too_large") {
      return problem(413, "Payload Too Large", `request body exceeds ${maxBody} bytes`, "payload_too_large", {
        connection: "close",
      });
    }
    const info: SimulatorRequestInfo = { method: expectedMethod, path, sessionId, seq };
    if (idempotencyKey !== undefined) info.idempotencyKey = idempotencyKey;
    const fault = nextFault(info);
    if (fault?.delayMs !== undefined) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.rateLimit !== undefined) {
      return problem(429, "Too Many Requests", "rate limit exceeded", "rate_limited", {
        "retry-after": String(fault.rateLimit),
      });
    }
    if (fault?.status !== undefined) {
      const extra: Record<string, string> =
        fault.status === 429 ? { "retry-after": fault.retryAfter ?? "1" } : {};
      return problem(fault.status, "Injected Fault", "fault injected by the test", "injected_fault", extra);
    }
    if (fault?.drop === "before") return drop();

    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "Bad Request", "body is not valid JSON", "invalid_json");
    }
    const values = inject !== null ? field(parsed, "context") : field(parsed, "variables");
    if (values === undefined) {
      const name = inject !== null ? "context" : "variables";
      return problem(400, "Bad Request", `"${name}" must be a JSON object`, "invalid_body");
    }
    if (inject !== null && typeof field(parsed, "userId", "string") !== "string") {
      return problem(400, "Bad Request", '"userId" must be a string', "invalid_body");
    }
    if (known !== undefined && !known.has(sessionId)) {
      return problem(404, "Not Found", "session not found", "session_not_found");
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
    setFaults: (next) => {
      faults = Array.isArray(next) ? [...next] : next;
    },
    reset: () => {
      contexts.clear();
      requests.length = 0;
      applications.clear();
      answered.clear();
      windows.clear();
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
