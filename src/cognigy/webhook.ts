/**
 * `POST /webhooks/cognigy`: the HTTP adapter a Cognigy.AI flow calls with its HTTP Request node.
 *
 * It owns HTTP concerns only (method, content type, body limit, header parsing, webhook authentication) and
 * then calls the same FieldsealService RPCs every other client calls, so authorization, validation and
 * audit happen in one place.
 *
 * Request: `application/json` `{"sessionId", "userId"?, "variables": {...}, "sensitive"?: [...], "user"?}`
 * (`context` is accepted in place of `variables`), or `application/x-www-form-urlencoded` (the node's
 * default payload type) with `sessionId`, `userId`, and either `variables=<JSON object text>` or
 * `variables[<field>]=<value>` pairs; form values are strings, so a flow that needs typed values sends
 * `variables` as JSON text. `sensitive` in a form is a comma-separated list or repeated.
 * Fields to seal: `X-Sensitive-Metadata: field:a,field:b` and/or `sensitive`; every flagged field must be
 * present in the variables.
 *
 * Bodies, percent-decoded form names and values, and X-Sensitive-Metadata are decoded as strict UTF-8 (a
 * `charset` other than UTF-8 is 415), and JSON is scanned before parsing for nesting past the limit, numbers a
 * double cannot hold exactly and names repeated in an object (webhook-body.ts): such refusals are 400 with a
 * `reason`.
 *
 * Authentication: a signed request (v2 signs method, target, timestamp, X-Sensitive-Metadata and body; see
 * webhook-signature.ts) acts as the signing principal through
 * `principalHeaders`; otherwise the caller's token (`Authorization: Bearer <token>`, or as Cognigy's HTTP
 * Request node sends a stored API key, `Authorization: ApiKey <token>` or `X-API-Key: <token>`) is forwarded
 * as a bearer token and the service checks it.
 *
 * Answer 200: `{"sessionId", "keyring", "keyVersion", "variables": {"__enc_<f>": sealed, "<f>": null},
 * "pushed": {attempts, httpStatus, deduplicated} | null}`. When the seal succeeded but the push failed the
 * status is 502 (504 for a deadline; 401/403 when the caller may not push) and the problem document still
 * carries `variables` and `keyVersion`: the sealed values are safe to keep, and the flow can store them
 * itself rather than seal again. Authentication of a bearer token happens in the service, so a malformed
 * body with a bad token is answered 400 before the token is ever checked.
 * Errors are RFC 7807 `application/problem+json` and never echo request values.
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import {
  type Http2ServerRequest,
  constants as h2constants,
  type IncomingHttpHeaders as IncomingHttp2Headers,
} from "node:http2";
import { fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type FieldsealService, PushMode } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { FieldsealError, isFieldsealError } from "../errors.js";
import { connectCodeName, httpStatusForConnectError } from "../service/error-map.js";
import { parseSensitiveMetadata } from "./sensitive-fields.js";
import { withTraceContext } from "./trace-headers.js";
import {
  decodeHeaderUtf8,
  decodeUtf8,
  MAX_VALUE_DEPTH,
  MalformedWebhookError,
  parseFormBody,
  parseJsonText,
} from "./webhook-body.js";
import {
  keyIdHeader,
  SignerOverCapacityError,
  signatureHeader,
  timestampHeader,
  WebhookSignatureVerifier,
} from "./webhook-signature.js";

export interface WebhookDeps {
  /** A client over an in-process transport to the server's own FieldsealService handlers. */
  client: Client<typeof FieldsealService>;
  /** Push the sealed values into the session with PushSession. */
  pushEnabled: boolean;
  /** Endpoint for PushSession; default: the server's configured one. */
  pushMode?: PushMode;
  /** Keyring for EncryptFields; default: the server's default keyring. */
  defaultKeyring?: string;
  /** Default 64 KiB. */
  maxBodyBytes?: number;
  /** Principal → shared secret, enabling signed requests. */
  hmacSecrets?: Record<string, string>;
  /** Default 300. */
  hmacToleranceSec?: number;
  /** Signatures remembered per signer key id; default 100,000 (see signer-replay-cache.ts). */
  hmacReplayCapacityPerSigner?: number;
  /** Accept body-only v1 signatures during a migration; default false. */
  hmacAcceptV1?: boolean;
  /**
   * Headers that make an RPC act as `principal` (see internal-auth.ts). Required with `hmacSecrets`.
   */
  principalHeaders?: (principal: string) => Headers | Record<string, string>;
  now?: () => number;
  /** Told about failures for logging: a status and a value-free message. */
  onError?: (event: { status: number; code: string; message: string }) => void;
}

/** The subset of a Node HTTP/1 or HTTP/2 compat response the adapter writes to. */
export interface WebhookResponse {
  headersSent: boolean;
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body?: string): unknown;
}

export type WebhookRequest = IncomingMessage | Http2ServerRequest;

const DEFAULT_MAX_BODY = 64 * 1024;

/** Builds the `(req, res)` handler for `POST /webhooks/cognigy`. */
export function createWebhookHandler(deps: WebhookDeps): (req: WebhookRequest, res: WebhookResponse) => void {
  if (deps.hmacSecrets !== undefined && deps.principalHeaders === undefined) {
    throw new FieldsealError(
      "invalid_argument",
      "hmacSecrets needs principalHeaders to call RPCs as the signer",
    );
  }
  const verifier =
    deps.hmacSecrets !== undefined
      ? new WebhookSignatureVerifier({
          secrets: deps.hmacSecrets,
          toleranceSec: deps.hmacToleranceSec ?? 300,
          ...(deps.hmacReplayCapacityPerSigner === undefined
            ? {}
            : { replayCapacityPerSigner: deps.hmacReplayCapacityPerSigner }),
          acceptV1: deps.hmacAcceptV1 ?? false,
          now: deps.now ?? Date.now,
        })
      : undefined;
  const maxBody = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Only bugs get here; the details stay out of the answer.
      deps.onError?.({ status: 500, code: "internal", message: err instanceof Error ? err.name : "error" });
      if (!res.headersSent)
        sendProblem(res, req, 500, "internal", "Internal Server Error", "unexpected failure");
    });
  };

  async function handle(req: WebhookRequest, res: WebhookResponse): Promise<void> {
    const fail = (
      status: number,
      code: string,
      title: string,
      detail: string,
      extra?: Record<string, unknown>,
      headers?: Record<string, string>,
    ) => {
      deps.onError?.({ status, code, message: detail });
      sendProblem(res, req, status, code, title, detail, extra, headers);
    };
    if (req.method !== "POST") {
      return fail(405, "method_not_allowed", "Method Not Allowed", "use POST", undefined);
    }
    const rawContentType = header(req.headers, "content-type");
    const contentType = mediaType(rawContentType);
    if (contentType !== "application/json" && contentType !== "application/x-www-form-urlencoded") {
      return fail(
        415,
        "unsupported_media_type",
        "Unsupported Media Type",
        "send application/json or application/x-www-form-urlencoded",
      );
    }
    // Bodies are read as UTF-8 whatever the header says; a sender that declares another charset means other
    // characters than those bytes spell in UTF-8, and would have them sealed.
    if (!charsetIsUtf8(rawContentType)) {
      return fail(
        415,
        "unsupported_media_type",
        "Unsupported Media Type",
        "send the body as UTF-8: charset=utf-8 or no charset parameter",
      );
    }
    const body = await readBody(req, maxBody);
    if (body === "aborted") {
      // Nobody is left to answer; what arrived is a prefix of the body, never to be sealed. 499 as nginx logs it.
      deps.onError?.({
        status: 499,
        code: "client_closed_request",
        message: "the client reset the request before its body ended",
      });
      return;
    }
    if (body === "too_large") {
      fail(413, "too_large", "Payload Too Large", `body exceeds ${maxBody} bytes`);
      // The rest of the body is not read: HTTP/1.1 closes the connection (sendProblem); on HTTP/2 the stream
      // is reset with NO_ERROR once the answer is written (RFC 9113 §8.1), or the client could hold it open.
      if (req.httpVersionMajor === 2) (req as Http2ServerRequest).stream.close(h2constants.NGHTTP2_NO_ERROR);
      return;
    }

    // Sent twice, the header's value would depend on how the HTTP version joins repeats; signed and parsed
    // text must be one and the same.
    if (headerCount(req, "x-sensitive-metadata") > 1) {
      const err = new MalformedWebhookError("repeated_header", "send X-Sensitive-Metadata once");
      return fail(400, err.code, "Bad Request", err.message, { reason: err.reason });
    }
    const sensitiveHeader = header(req.headers, "x-sensitive-metadata");

    // Authentication comes first after the body (a signature covers the raw bytes).
    let callHeaders: Headers | Record<string, string>;
    try {
      callHeaders = withTraceContext(authenticate(req, body, sensitiveHeader), req.headers);
    } catch (err) {
      if (err instanceof SignerOverCapacityError) {
        return fail(429, err.code, "Too Many Requests", err.message, undefined, {
          "retry-after": String(err.retryAfterSec),
        });
      }
      const message = isFieldsealError(err) ? err.message : "authentication failed";
      return fail(401, "unauthenticated", "Unauthorized", message);
    }

    let parsed: ParsedWebhook;
    try {
      parsed = parseWebhook(contentType, body, sensitiveHeader);
    } catch (err) {
      if (err instanceof MalformedWebhookError) {
        return fail(400, err.code, "Bad Request", err.message, { reason: err.reason });
      }
      if (isFieldsealError(err)) return fail(400, err.code, "Bad Request", err.message);
      throw err;
    }

    // Seal. Nothing is pushed unless this succeeds.
    const fields: Record<string, Value> = {};
    for (const name of parsed.sensitive) fields[name] = fromJson(ValueSchema, parsed.variables[name] ?? null);
    let sealed: { sealed: Record<string, string>; keyring: string; keyVersion: number };
    try {
      sealed = await deps.client.encryptFields(
        {
          keyring: deps.defaultKeyring ?? "",
          scope: { id: { case: "sessionId", value: parsed.sessionId } },
          fields,
        },
        { headers: callHeaders },
      );
    } catch (err) {
      const ce = ConnectError.from(err);
      return fail(httpStatusForConnectError(ce), connectCodeName(ce.code), "Seal Failed", ce.rawMessage);
    }

    const variables: Record<string, JsonValue> = {};
    for (const name of parsed.sensitive) {
      const value = sealed.sealed[name];
      if (value === undefined) {
        return fail(
          502,
          "internal",
          "Seal Failed",
          `the service returned no sealed value for field "${name}"`,
        );
      }
      variables[`__enc_${name}`] = value;
      variables[name] = null;
    }
    const answer = {
      sessionId: parsed.sessionId,
      keyring: sealed.keyring,
      keyVersion: sealed.keyVersion,
      variables,
    };

    if (!deps.pushEnabled) return sendJson(res, 200, { ...answer, pushed: null });

    const context: Record<string, Value> = {};
    for (const [k, v] of Object.entries(variables)) context[k] = fromJson(ValueSchema, v);
    try {
      const pushed = await deps.client.pushSession(
        {
          sessionId: parsed.sessionId,
          userId: parsed.userId,
          context,
          mode: deps.pushMode ?? PushMode.UNSPECIFIED,
          idempotencyKey: pushIdempotencyKey(parsed.sessionId, body, variables),
        },
        { headers: callHeaders },
      );
      return sendJson(res, 200, {
        ...answer,
        pushed: {
          attempts: pushed.attempts,
          httpStatus: pushed.httpStatus,
          deduplicated: pushed.deduplicated,
        },
      });
    } catch (err) {
      const ce = ConnectError.from(err);
      // The caller's own credentials keep their status; anything else is Cognigy's side: 502, or 504.
      const own = ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied;
      const status = own ? httpStatusForConnectError(ce) : ce.code === Code.DeadlineExceeded ? 504 : 502;
      return fail(
        status,
        connectCodeName(ce.code),
        "Push Failed",
        `the values were sealed but the push to Cognigy.AI failed: ${ce.rawMessage}`,
        { ...answer, pushed: null },
      );
    }
  }

  function authenticate(
    req: WebhookRequest,
    body: Buffer,
    sensitiveHeader: string | undefined,
  ): Headers | Record<string, string> {
    const signature = header(req.headers, signatureHeader);
    if (signature !== undefined) {
      if (verifier === undefined || deps.principalHeaders === undefined) {
        throw new FieldsealError("unauthenticated", "signed requests are not enabled");
      }
      const principal = verifier.verify(
        {
          keyId: header(req.headers, keyIdHeader),
          timestamp: header(req.headers, timestampHeader),
          signature,
          method: req.method ?? "",
          path: req.url ?? "",
          sensitiveMetadata: sensitiveHeader,
        },
        body,
      );
      return deps.principalHeaders(principal);
    }
    // Cognigy's HTTP Request node sends a stored API key as `Authorization: ApiKey <key>` or `X-API-Key:
    // <key>`; either carries a Fieldseal token the same way `Authorization: Bearer` does.
    const authorization = header(req.headers, "authorization")?.trim();
    const scheme = authorization === undefined ? undefined : /^(Bearer|ApiKey)\s+(\S+)$/i.exec(authorization);
    const token = scheme?.[2] ?? (authorization ? undefined : header(req.headers, "x-api-key")?.trim());
    if (token === undefined || token === "") {
      throw new FieldsealError(
        "unauthenticated",
        "send Authorization: Bearer <token> (or ApiKey <token>, or X-API-Key: <token>) or a signed request",
      );
    }
    return { authorization: `Bearer ${token}` };
  }
}

interface ParsedWebhook {
  sessionId: string;
  userId: string;
  variables: JsonObject;
  sensitive: string[];
}

/** Validates the payload and works out the fields to seal; throws FieldsealError("invalid_argument"). */
export function parseWebhook(
  contentType: string,
  body: Buffer,
  sensitiveHeader: string | undefined,
): ParsedWebhook {
  const headerFields = parseSensitiveMetadata(
    sensitiveHeader === undefined ? undefined : decodeHeaderUtf8(sensitiveHeader, "X-Sensitive-Metadata"),
  );
  const payload = contentType === "application/json" ? parseJsonPayload(body) : parseFormPayload(body);
  const sessionId = payload.sessionId;
  if (typeof sessionId !== "string" || sessionId.trim() === "") {
    throw new FieldsealError("invalid_argument", '"sessionId" is required and must be a non-empty string');
  }
  assertWellFormed(sessionId, '"sessionId"');
  const userId = payload.userId ?? "";
  if (typeof userId !== "string") throw new FieldsealError("invalid_argument", '"userId" must be a string');
  assertWellFormed(userId, '"userId"');
  if (payload.variables !== undefined && payload.context !== undefined) {
    throw new FieldsealError("invalid_argument", 'send "variables" or "context", not both');
  }
  const variables = payload.variables ?? payload.context;
  if (!isJsonObject(variables)) {
    throw new FieldsealError("invalid_argument", '"variables" is required and must be a JSON object');
  }
  const bodyFields = payload.sensitive ?? [];
  if (!Array.isArray(bodyFields) || !bodyFields.every((f) => typeof f === "string" && f !== "")) {
    throw new FieldsealError("invalid_argument", '"sensitive" must be a list of field names');
  }
  const sensitive = [...new Set([...headerFields, ...(bodyFields as string[])])];
  if (sensitive.length === 0) {
    throw new FieldsealError(
      "invalid_argument",
      'no fields flagged: send X-Sensitive-Metadata: field:<name>,... or a "sensitive" list',
    );
  }
  for (const name of sensitive) {
    assertWellFormed(name, "a flagged field name");
    // Assigning "__proto__" on a plain object (the seal request, the answer) sets its prototype instead of a
    // field: the value would silently drop out of the request. No Cognigy variable needs that name.
    if (name === "__proto__") {
      throw new FieldsealError("invalid_argument", 'a field named "__proto__" cannot be sealed');
    }
    if (!Object.hasOwn(variables, name)) {
      throw new FieldsealError("invalid_argument", `flagged field "${name}" is not in the variables`);
    }
  }
  return { sessionId, userId, variables, sensitive };
}

/**
 * A string the engine would bind or seal must be well-formed UTF-16: a lone surrogate (valid in a JSON
 * escape) would be encoded as U+FFFD, binding or sealing something other than what was sent.
 */
function assertWellFormed(text: string, what: string): void {
  if (!text.isWellFormed())
    throw new MalformedWebhookError("lone_surrogate", `${what} contains a lone surrogate`);
}

function parseJsonPayload(body: Buffer): Record<string, unknown> {
  // body → variables → value: a value may nest as deep as the engine allows, and no deeper.
  const parsed = parseJsonText(decodeUtf8(body, "body"), "body", MAX_VALUE_DEPTH + 2);
  if (!isJsonObject(parsed)) throw new FieldsealError("invalid_argument", "body must be a JSON object");
  return parsed;
}

function parseFormPayload(body: Buffer): Record<string, unknown> {
  // Content-Type is not in the signed text, so no body may be readable both ways: a JSON body (an object,
  // after optional whitespace) read as a form would take names and values from inside its strings, which a
  // chat user may have typed ("x&sessionId=other&variables[card]=..."). A form never starts that way.
  const first = body.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
  if (first === 0x7b || first === 0x5b) {
    throw new FieldsealError(
      "invalid_argument",
      "a form body cannot start with { or [: send it as application/json",
    );
  }
  const form = parseFormBody(body);
  const out: Record<string, unknown> = {};
  const pairs: JsonObject = {};
  let hasPairs = false;
  const sensitive: string[] = [];
  // As in JSON, a name given twice is refused: which of two values a reader takes is a guess.
  const repeated = () => new MalformedWebhookError("duplicate_name", "the form names a field twice");
  for (const [key, value] of form) {
    const pair = /^variables\[([^\]]+)\]$/.exec(key);
    if (pair?.[1] !== undefined) {
      if (Object.hasOwn(pairs, pair[1])) throw repeated();
      pairs[pair[1]] = value;
      hasPairs = true;
    } else if (key === "variables") {
      if (out.variables !== undefined) throw repeated();
      out.variables = parseJsonText(value, '"variables" form value', MAX_VALUE_DEPTH + 1);
    } else if (key === "sensitive" || key === "sensitive[]") {
      sensitive.push(...value.split(",").map((s) => s.trim()));
    } else if (key === "sessionId" || key === "userId" || key === "context") {
      if (Object.hasOwn(out, key)) throw repeated();
      out[key] = value;
    }
  }
  if (hasPairs) {
    if (out.variables !== undefined) {
      throw new FieldsealError(
        "invalid_argument",
        'send "variables" as JSON or as variables[<field>] pairs, not both',
      );
    }
    out.variables = pairs;
  }
  if (sensitive.length > 0) out.sensitive = sensitive;
  return out;
}

/**
 * One push's idempotency key. It covers the session, the request body and the sealed values: a retry of the
 * same push carries the same key, while a webhook delivered again is sealed again with fresh nonces, so it
 * is a different push and gets a different key (reusing the key for different values would be refused as a
 * conflict). Pushing twice is harmless either way: a push only sets absolute values.
 */
export function pushIdempotencyKey(
  sessionId: string,
  body: Buffer,
  variables: Record<string, JsonValue>,
): string {
  const h = createHash("sha256");
  h.update(`fieldseal-webhook-v1\n${sessionId}\n`);
  h.update(createHash("sha256").update(body).digest());
  h.update(JSON.stringify(Object.entries(variables).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  return `fs-wh-${h.digest("base64url")}`;
}

function isJsonObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function header(headers: IncomingHttpHeaders | IncomingHttp2Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

function headerCount(req: WebhookRequest, name: string): number {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]?.toLowerCase() === name) count += 1;
  }
  return count;
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/** True unless a `charset` parameter names something other than UTF-8 (RFC 9110 §8.3.1: case-insensitive). */
function charsetIsUtf8(contentType: string | undefined): boolean {
  for (const param of (contentType ?? "").split(";").slice(1)) {
    const eq = param.indexOf("=");
    if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    const value = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1")
      .toLowerCase();
    if (value !== "utf-8" && value !== "utf8") return false;
  }
  return true;
}

/**
 * Reads the body, stopping at `max` bytes: the rest is never read, and the connection is closed after.
 * "aborted" when the client reset the request before its body ended (an HTTP/2 RST_STREAM without
 * END_STREAM, an HTTP/1.1 connection closed early): Node's HTTP/2 compatibility layer then still emits 'end'
 * for the bytes so far, after 'aborted', so `req.aborted` is what tells a prefix from a whole body.
 */
function readBody(req: WebhookRequest, max: number): Promise<Buffer | "too_large" | "aborted"> {
  const declared = Number(header(req.headers, "content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > max) return Promise.resolve("too_large");
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        req.off("data", onData);
        req.pause();
        resolve("too_large");
        return;
      }
      chunks.push(chunk);
    };
    const aborted = () => {
      if (done) return;
      done = true;
      resolve("aborted");
    };
    req.on("data", onData);
    req.on("aborted", aborted);
    req.on("error", aborted);
    req.on("end", () => {
      if (req.aborted) return aborted();
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
  });
}

function sendJson(
  res: WebhookResponse,
  status: number,
  body: unknown,
  contentType = "application/json",
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
  });
  res.end(text);
}

function sendProblem(
  res: WebhookResponse,
  req: WebhookRequest,
  status: number,
  code: string,
  title: string,
  detail: string,
  extra?: Record<string, unknown>,
  extraHeaders?: Record<string, string>,
): void {
  const problem = { type: `urn:fieldseal:problem:${code}`, title, status, detail, code, ...extra };
  const text = JSON.stringify(problem);
  const headers: Record<string, string> = {
    ...extraHeaders,
    "fieldseal-reason": code,
    "content-type": "application/problem+json",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
  };
  if (status === 405) headers.allow = "POST";
  // An unread body left on an HTTP/1.1 connection would be parsed as the next request: close it.
  if (status === 413 && req.httpVersionMajor === 1) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(text);
}
