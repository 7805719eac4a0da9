/**
 * `POST /webhooks/cognigy`: the HTTP adapter a Cognigy.AI flow calls with its HTTP Request node.
 *
 * It owns HTTP concerns only (method, content type, body limit, header parsing, webhook authentication) and
 * then calls the same FieldsealService RPCs every other client calls, so authorization, validation and
 * audit happen in one place. docs/cognigy.md describes it for flow authors.
 *
 * Request: `application/json` `{"sessionId", "userId"?, "variables": {...}, "sensitive"?: [...], "user"?}`
 * (`context` is accepted in place of `variables`), `application/x-www-form-urlencoded` (the node's "Text"
 * payload) or `multipart/form-data` (its "Form-Data" payload; multipart.ts) with `sessionId`, `userId`, and
 * either `variables=<JSON object text>` or `variables[<field>]=<value>` fields; form values are strings, so
 * a flow that needs typed values sends `variables` as JSON text. `sensitive` in a form is a comma-separated
 * list or repeated. Fields to seal: `X-Sensitive-Metadata: field:a,field:b` and/or `sensitive`.
 *
 * Bodies, percent-decoded form names and values, multipart parts and X-Sensitive-Metadata are decoded as
 * strict UTF-8 (a `charset` other than UTF-8 is 415), and JSON is scanned before parsing for nesting past the
 * limit, numbers a double cannot hold exactly and names repeated in an object (webhook-body.ts).
 *
 * Authentication: a signed request (v2 signs method, target, timestamp, X-Sensitive-Metadata and body; see
 * webhook-signature.ts) acts as the signing principal through `principalHeaders`; otherwise the caller's
 * token (`Authorization: Bearer <token>`, or as Cognigy's HTTP Request node sends a stored API key,
 * `Authorization: ApiKey <token>` or `X-API-Key: <token>`) is forwarded as a bearer token and the service
 * checks it when sealing. So a malformed body with a bad token is answered 400 before the token is checked.
 *
 * Answers. Cognigy's HTTP Request node treats a status above 299 as an error: it may stop the flow, it
 * retries by itself, and one of its error-logging options writes the request payload (the plaintext) into
 * Cognigy's logs. So every outcome a flow should branch on is HTTP 200 with a `status`:
 *
 * | status | outcome | body |
 * |---|---|---|
 * | 200 `sealed` | sealed (and pushed when pushing is on) | sessionId, keyring, keyVersion, variables, pushed |
 * | 200 `sealed_not_pushed` | sealed, the push failed (Cognigy down, 429, deadline, push not allowed), or `already_pushed`: a copy of this request was pushed with values no longer remembered | as sealed, plus reason, message; pushed null |
 * | 200 `refused` reason `flagged_field_missing` | a flagged field is absent, null or "" | reason, message, fields (names only) |
 * | 200 `refused` reason from the service | EncryptFields said INVALID_ARGUMENT (`field_format_invalid`, `value_refused`: a value the engine refuses) or the values are too large (`too_large`) | reason, message |
 * | 400 | malformed request: not UTF-8, bad JSON / form / multipart, no sessionId, no flagged field, bad X-Sensitive-Metadata, a field name or sessionId the engine cannot bind (over 256 bytes, NUL), flagged names whose answer keys collide (`card` and `__enc_card`), over 1,000 flagged fields | RFC 7807, most with a `reason` |
 * | 401 / 403 | no or unknown credentials, bad signature / may not seal | RFC 7807 |
 * | 405 / 413 / 415 | not POST / body over the limit / another media type or charset | RFC 7807 |
 * | 429 | a signed request's signature used before whose first answer is not held (`replayed`), a signer over its replay capacity, the service's rate limit | RFC 7807 |
 * | 5xx | server faults: the keyring missing, the key store down (503), a deadline (504), a bug (500) | RFC 7807 |
 *
 * The line between 200 `refused` and 400: `refused` depends on what the user said in this conversation (the
 * flow re-asks, or goes on without the value), while a 400 is the same on every call until the flow's author
 * fixes the node. A flagged field that is absent, null or an empty string is missing: a JSON body built
 * with inline CognigyScript renders an unset `{{context.x}}` as "", a `$cs` expression that yields nothing
 * leaves the key out, and a field sealed already holds null. Nothing is sealed when any field is missing.
 * A refused request is still sealed once (with the missing fields as null) and the result thrown away, so
 * only a caller that may seal those fields learns which are missing: the service audits that seal.
 * No answer ever contains a submitted value (test/cognigy/webhook-answers.test.ts, the canary).
 *
 * Pushing (`pushEnabled`, off by default): the flow stores the answer itself (the node's "Store result in
 * Context"), which needs no REST call and no share of Cognigy's per-IP REST limit; Cognigy does not document
 * whether a context inject that lands while the flow's turn is running survives the end of that turn. Turn it
 * on for flows that cannot store the answer. PushSession stays available for writes outside a running turn.
 *
 * Retries. The node re-sends the same bytes when it times out or sees an error. A request's key is a digest
 * of the session, the caller (the token's hash, or the signer and the signed timestamp), the content type,
 * X-Sensitive-Metadata and the body (`webhookRequestKey`); the first answer's sealed variables are kept under
 * it for 15 minutes (webhook-answer-cache.ts, bounded), and a retry is answered with exactly those values,
 * not with the values its own seal produced (a fresh nonce each time). The push carries the key as its
 * idempotency key and sends those same values, so the session holds what every answer says and Cognigy
 * applies the push once; a retry of a pushed request answers `pushed.deduplicated: true` without sending.
 * A retry is still sealed (and so authenticated and authorized) before it is answered. A signed retry
 * carries a signature already used: it is answered from the same memory (after waiting for a first copy
 * still in flight) and refused 429 `replayed` only when no answer to it is held. The memory is per process.
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import {
  type Http2ServerRequest,
  constants as h2constants,
  type IncomingHttpHeaders as IncomingHttp2Headers,
} from "node:http2";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type FieldsealService, PushMode } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { FieldsealError, isFieldsealError } from "../errors.js";
import { connectCodeName, httpStatusForConnectCode, REASON_HEADER } from "../service/error-map.js";
import { DEFAULT_MULTIPART_LIMITS, type MultipartLimits } from "./multipart.js";
import { withTraceContext } from "./trace-headers.js";
import { type AnsweredRequest, WebhookAnswerCache } from "./webhook-answer-cache.js";
import { MalformedWebhookError } from "./webhook-body.js";
import { mediaType, type ParsedWebhook, parseWebhook } from "./webhook-payload.js";
import {
  keyIdHeader,
  SignatureReplayedError,
  SignerOverCapacityError,
  signatureHeader,
  timestampHeader,
  WebhookSignatureVerifier,
} from "./webhook-signature.js";

export interface WebhookDeps {
  /** A client over an in-process transport to the server's own FieldsealService handlers. */
  client: Client<typeof FieldsealService>;
  /** Push the sealed values into the session with PushSession (off by default in the config; see above). */
  pushEnabled: boolean;
  /** Endpoint for PushSession; default: the server's configured one. */
  pushMode?: PushMode;
  /** Keyring for EncryptFields; default: the server's default keyring. */
  defaultKeyring?: string;
  /** Default 64 KiB. */
  maxBodyBytes?: number;
  /** Bounds of a multipart body beyond its size; default 64 parts, 1 KiB of headers per part. */
  multipartLimits?: MultipartLimits;
  /** Bounds of the memory of answered requests; default 10,000 entries, 16 MiB, 15 minutes. */
  answerMemory?: { maxEntries?: number; maxBytes?: number; ttlMs?: number };
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
  /** Told about failures and refusals for logging: a status and a value-free message. */
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
const MEDIA_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"];

/** Who is calling, as the webhook knows before the service does. */
interface Caller {
  /** Headers for the RPCs. */
  headers: Headers | Record<string, string>;
  /** Identifies the caller inside the request key: a digest of the token, or the signer and timestamp. */
  identity: string;
  /** Whose share of the answer memory the request counts against: the token's digest, or the signer. */
  owner: string;
}

/** Builds the `(req, res)` handler for `POST /webhooks/cognigy`. */
export function createWebhookHandler(deps: WebhookDeps): (req: WebhookRequest, res: WebhookResponse) => void {
  if (deps.hmacSecrets !== undefined && deps.principalHeaders === undefined) {
    throw new FieldsealError(
      "invalid_argument",
      "hmacSecrets needs principalHeaders to call RPCs as the signer",
    );
  }
  const now = deps.now ?? Date.now;
  const verifier =
    deps.hmacSecrets !== undefined
      ? new WebhookSignatureVerifier({
          secrets: deps.hmacSecrets,
          toleranceSec: deps.hmacToleranceSec ?? 300,
          ...(deps.hmacReplayCapacityPerSigner === undefined
            ? {}
            : { replayCapacityPerSigner: deps.hmacReplayCapacityPerSigner }),
          acceptV1: deps.hmacAcceptV1 ?? false,
          now,
        })
      : undefined;
  const maxBody = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const multipartLimits = deps.multipartLimits ?? DEFAULT_MULTIPART_LIMITS;
  const answers = new WebhookAnswerCache({
    maxEntries: deps.answerMemory?.maxEntries ?? 10_000,
    maxBytes: deps.answerMemory?.maxBytes ?? 16 * 1024 * 1024,
    ttlMs: deps.answerMemory?.ttlMs ?? 15 * 60_000,
    now,
  });
  /** Requests being sealed, by key: a signed copy arriving meanwhile waits for the first one's answer. */
  const sealing = new Map<string, Promise<void>>();

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
    /** 200 `refused`: the flow branches on `reason`; `message` and `fields` name no value. */
    const refuse = (sessionId: string, reason: string, message: string, extra?: Record<string, unknown>) => {
      deps.onError?.({ status: 200, code: reason, message });
      sendJson(
        res,
        200,
        { status: "refused", sessionId, reason, message, ...extra },
        { [REASON_HEADER]: reason },
      );
    };
    if (req.method !== "POST") {
      return fail(405, "method_not_allowed", "Method Not Allowed", "use POST", undefined);
    }
    const rawContentType = header(req.headers, "content-type");
    const contentType = mediaType(rawContentType);
    if (!MEDIA_TYPES.includes(contentType)) {
      return fail(
        415,
        "unsupported_media_type",
        "Unsupported Media Type",
        "send application/json, application/x-www-form-urlencoded or multipart/form-data",
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
    let caller: Caller;
    let replayed = false;
    try {
      caller = authenticate(req, body, sensitiveHeader);
    } catch (err) {
      if (err instanceof SignatureReplayedError && deps.principalHeaders !== undefined) {
        // Authentic, and a copy of a request admitted before: answered below from that request's answer.
        replayed = true;
        caller = {
          headers: deps.principalHeaders(err.principal),
          identity: signedIdentity(err.principal, header(req.headers, timestampHeader) ?? ""),
          owner: `signed:${err.principal}`,
        };
      } else if (err instanceof SignerOverCapacityError) {
        return fail(429, err.code, "Too Many Requests", err.message, undefined, {
          "retry-after": String(err.retryAfterSec),
        });
      } else {
        const message = isFieldsealError(err) ? err.message : "authentication failed";
        return fail(401, "unauthenticated", "Unauthorized", message);
      }
    }
    // The in-process calls continue the webhook caller's W3C trace, as a gRPC call's would.
    caller = { ...caller, headers: withTraceContext(caller.headers, req.headers) };

    let parsed: ParsedWebhook;
    try {
      parsed = parseWebhook(rawContentType ?? "", body, sensitiveHeader, multipartLimits);
    } catch (err) {
      if (err instanceof MalformedWebhookError) {
        return fail(400, err.code, "Bad Request", err.message, { reason: err.reason });
      }
      if (isFieldsealError(err)) return fail(400, err.code, "Bad Request", err.message);
      throw err;
    }
    const key = webhookRequestKey({
      sessionId: parsed.sessionId,
      caller: caller.identity,
      contentType: rawContentType ?? "",
      sensitiveHeader,
      body,
    });

    let answered: AnsweredRequest | undefined;
    if (replayed) {
      await sealing.get(key);
      answered = answers.get(key);
      if (answered === undefined || parsed.missing.length > 0) {
        return fail(
          429,
          "replayed",
          "Too Many Requests",
          "signature was already used and no answer to it is held: sign again with a fresh timestamp",
          { reason: "replayed" },
        );
      }
    } else {
      let done = () => {};
      const first = !sealing.has(key);
      if (first) sealing.set(key, new Promise<void>((resolve) => (done = resolve)));
      try {
        const outcome = await seal(parsed, caller);
        if (outcome.kind === "fault")
          return fail(outcome.status, outcome.code, "Seal Failed", outcome.message);
        if (outcome.kind === "refused") {
          return refuse(parsed.sessionId, outcome.reason, outcome.message, outcome.extra);
        }
        // The first answer to these bytes is the one the session and every retry keep.
        answered = answers.get(key);
        if (answered === undefined) {
          answered = outcome.answer;
          answers.set(key, answered, caller.owner);
        }
      } finally {
        if (first) {
          sealing.delete(key);
          done();
        }
      }
    }

    const answer = {
      status: "sealed",
      sessionId: parsed.sessionId,
      keyring: answered.keyring,
      keyVersion: answered.keyVersion,
      variables: answered.variables,
    };
    if (!deps.pushEnabled) return sendJson(res, 200, { ...answer, pushed: null });
    if (answered.pushed !== undefined) {
      return sendJson(res, 200, {
        ...answer,
        pushed: { ...answered.pushed, attempts: 0, deduplicated: true },
      });
    }

    const context: Record<string, Value> = {};
    for (const [k, v] of Object.entries(answered.variables)) context[k] = fromJson(ValueSchema, v);
    try {
      const pushed = await deps.client.pushSession(
        {
          sessionId: parsed.sessionId,
          userId: parsed.userId,
          context,
          mode: deps.pushMode ?? PushMode.UNSPECIFIED,
          idempotencyKey: key,
        },
        { headers: caller.headers },
      );
      answers.set(
        key,
        { ...answered, pushed: { attempts: pushed.attempts, httpStatus: pushed.httpStatus } },
        caller.owner,
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
      let reason = ce.metadata.get(REASON_HEADER) ?? connectCodeName(ce.code);
      let message = `the values were sealed but the push to Cognigy.AI failed: ${ce.rawMessage}`;
      if (reason === "conflict") {
        // The push client binds a key to the values first pushed under it. The key is this request's, so an
        // earlier copy of it was pushed (or is being pushed) with values sealed then, which this memory no
        // longer holds (evicted or expired): the session has those; these open to the same values.
        reason = "already_pushed";
        message =
          "a copy of this request was pushed (or is being pushed) with values sealed then, which are no longer remembered; these values were not pushed";
      }
      deps.onError?.({ status: 200, code: reason, message });
      return sendJson(
        res,
        200,
        { ...answer, status: "sealed_not_pushed", reason, message, pushed: null },
        { [REASON_HEADER]: reason },
      );
    }
  }

  /**
   * Seals the flagged fields. When some are missing, the present ones are sealed beside nulls for the
   * missing ones (so the service authenticates the caller and checks it may seal them all) and the result
   * is thrown away.
   */
  async function seal(
    parsed: ParsedWebhook,
    caller: Caller,
  ): Promise<
    | { kind: "sealed"; answer: AnsweredRequest }
    | { kind: "refused"; reason: string; message: string; extra?: Record<string, unknown> }
    | { kind: "fault"; status: number; code: string; message: string }
  > {
    const fields: Record<string, Value> = {};
    // Own members only: an absent field named "constructor" or "toString" must read as missing (null), not as
    // the function Object.prototype lends every object.
    for (const name of parsed.sensitive) {
      fields[name] = fromJson(
        ValueSchema,
        Object.hasOwn(parsed.variables, name) ? (parsed.variables[name] ?? null) : null,
      );
    }
    const missing =
      parsed.missing.length === 0
        ? undefined
        : {
            kind: "refused" as const,
            reason: "flagged_field_missing",
            message: `flagged fields are absent, null or empty: ${parsed.missing.map((f) => JSON.stringify(f)).join(", ")}`,
            extra: { fields: parsed.missing },
          };
    let sealed: Awaited<ReturnType<typeof deps.client.encryptFields>>;
    try {
      sealed = await deps.client.encryptFields(
        {
          keyring: deps.defaultKeyring ?? "",
          scope: { id: { case: "sessionId", value: parsed.sessionId } },
          fields,
        },
        { headers: caller.headers },
      );
    } catch (err) {
      const ce = ConnectError.from(err);
      const reason = ce.metadata.get(REASON_HEADER) ?? connectCodeName(ce.code);
      if (ce.code === Code.InvalidArgument || reason === "too_large") {
        // A missing field is what the flow can act on first; the service's view of a null is beside it.
        if (missing !== undefined) return missing;
        return {
          kind: "refused",
          reason: reason === "invalid_argument" ? "value_refused" : reason,
          message: ce.rawMessage,
        };
      }
      return { kind: "fault", status: sealFaultStatus(ce.code), code: reason, message: ce.rawMessage };
    }
    if (missing !== undefined) return missing;

    const variables: Record<string, JsonValue> = {};
    for (const name of parsed.sensitive) {
      // Own members only here too: `masked` has no "constructor" of its own but answers Object for it.
      const value = Object.hasOwn(sealed.sealed, name) ? sealed.sealed[name] : undefined;
      if (value === undefined) {
        return {
          kind: "fault",
          status: 500,
          code: "internal",
          message: `the service returned no sealed value for field "${name}"`,
        };
      }
      variables[`__enc_${name}`] = value;
      variables[name] = null;
      const mask = Object.hasOwn(sealed.masked, name) ? sealed.masked[name] : undefined;
      if (mask !== undefined) {
        variables[`__mask_${name}`] = { format: mask.format, text: mask.text, speakable: mask.speakable };
      }
    }
    return { kind: "sealed", answer: { keyring: sealed.keyring, keyVersion: sealed.keyVersion, variables } };
  }

  function authenticate(req: WebhookRequest, body: Buffer, sensitiveHeader: string | undefined): Caller {
    const signature = header(req.headers, signatureHeader);
    if (signature !== undefined) {
      if (verifier === undefined || deps.principalHeaders === undefined) {
        throw new FieldsealError("unauthenticated", "signed requests are not enabled");
      }
      const timestamp = header(req.headers, timestampHeader);
      const principal = verifier.verify(
        {
          keyId: header(req.headers, keyIdHeader),
          timestamp,
          signature,
          method: req.method ?? "",
          path: req.url ?? "",
          sensitiveMetadata: sensitiveHeader,
        },
        body,
      );
      return {
        headers: deps.principalHeaders(principal),
        identity: signedIdentity(principal, timestamp ?? ""),
        owner: `signed:${principal}`,
      };
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
    const digest = `bearer:${createHash("sha256").update(token).digest("base64url")}`;
    return { headers: { authorization: `Bearer ${token}` }, identity: digest, owner: digest };
  }
}

/** A signed caller inside a request key: the signer, and the signed timestamp that tells retries apart. */
function signedIdentity(principal: string, timestamp: string): string {
  return `signed:${principal}:${timestamp}`;
}

/**
 * Connect codes of a failed seal whose status in the Connect table (httpStatusForConnectCode) is also the
 * webhook's: the caller's credentials, a budget, an outage or a deadline.
 */
const PASSED_ON_FAULTS: ReadonlySet<Code> = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.Unavailable,
  Code.DeadlineExceeded,
]);

/**
 * HTTP status for a seal that failed for a reason other than the caller's input. Any other code (a missing
 * keyring, the server's configured one; a store conflict; a bug) is 500: the operator's to fix.
 */
function sealFaultStatus(code: Code): number {
  return PASSED_ON_FAULTS.has(code) ? httpStatusForConnectCode(code) : 500;
}

/**
 * A webhook request's key: the idempotency key of its push and the key of its remembered answer. It covers
 * the session, the caller, the content type (a multipart boundary included), X-Sensitive-Metadata and the
 * body bytes, and not the sealed values, which differ on every seal: a byte-for-byte retry of the same
 * request has the same key, so Cognigy gets one push and every answer the same values.
 */
export function webhookRequestKey(parts: {
  sessionId: string;
  caller: string;
  contentType: string;
  sensitiveHeader: string | undefined;
  body: Buffer;
}): string {
  const h = createHash("sha256");
  // Each part length-prefixed, so no two different requests spell the same input.
  for (const part of [
    "fieldseal-webhook-v2",
    parts.sessionId,
    parts.caller,
    parts.contentType,
    parts.sensitiveHeader ?? "\u0000none",
  ]) {
    const bytes = Buffer.from(part, "utf8");
    h.update(`${bytes.length}:`).update(bytes);
  }
  h.update(createHash("sha256").update(parts.body).digest());
  return `fs-wh-${h.digest("base64url")}`;
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
  extraHeaders: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...extraHeaders,
    "content-type": "application/json",
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
