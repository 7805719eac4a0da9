import { randomUUID } from "node:crypto";
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import type { AuditSink } from "../audit.js";
import type { AccessControl } from "../auth/access.js";
import type { PeerCertificate, Principal } from "../auth/principals.js";
import type { InternalPrincipalAuth } from "../cognigy/internal-auth.js";
import { FieldsealError, isFieldsealError } from "../errors.js";
import type { Logger } from "../log.js";
import { arrivedWhileDrainingKey, peerCertificateKey, principalKey, requestIdKey } from "./context.js";
import { REASON_HEADER, toConnectError } from "./error-map.js";

/** Called once per finished RPC with its outcome ("ok", or the error's Fieldseal or Connect code). */
export type CallObserver = (rpc: string, code: string, ms: number) => void;

export interface InterceptorDeps {
  /** Principals and their grants; read once per call, so a reload swaps them between calls. */
  readonly access: AccessControl;
  /** Credentials of in-process calls made on behalf of a signed webhook's principal. */
  readonly internal: InternalPrincipalAuth;
  readonly log: Logger;
  readonly observe?: CallObserver;
  /** Records refused authentications (the handlers record everything after that). */
  readonly audit?: AuditSink;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The one interceptor every RPC passes: request id, refusal while draining, authentication of
 * FieldsealService calls, error translation (FieldsealError -> Connect code; anything unexpected ->
 * a bare INTERNAL, logged by name only) and a log line per call.
 */
export function fieldsealInterceptor(deps: InterceptorDeps): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const requestId = requestIdOf(req.header);
    req.contextValues.set(requestIdKey, requestId);
    let principalName: string | undefined;
    try {
      // Calls that arrived after shutdown began are refused with UNAVAILABLE before any work starts.
      if (req.contextValues.get(arrivedWhileDrainingKey))
        throw new ConnectError("server is shutting down; retry on another replica", Code.Unavailable);
      if (req.service.typeName === FieldsealService.typeName) {
        // The credentials gate already authenticated a call that came over the network (before its body was
        // read) and left the principal here; in-process calls (the webhook's) are authenticated now.
        let principal: Principal;
        try {
          principal =
            req.contextValues.get(principalKey) ??
            authenticate(deps, req.header, req.contextValues.get(peerCertificateKey));
        } catch (err) {
          auditRefusal(deps, err, rpc, requestId);
          throw err;
        }
        principalName = principal.name;
        req.contextValues.set(principalKey, principal);
      }
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      deps.log.debug("rpc", { rpc, code: "ok", principal: principalName, requestId, ms: elapsed(started) });
      deps.observe?.(rpc, "ok", elapsed(started));
      return res;
    } catch (err) {
      if (!isFieldsealError(err) && !(err instanceof ConnectError)) {
        // Only the error's class goes to the log: its message could quote request data.
        deps.log.error("rpc failed unexpectedly", {
          rpc,
          requestId,
          error: (err as Error)?.name ?? "unknown",
        });
      }
      const connectError = toConnectError(err);
      connectError.metadata.set("x-request-id", requestId);
      const code = isFieldsealError(err) ? err.code : Code[connectError.code];
      const level = connectError.code === Code.Internal ? "error" : "info";
      deps.log[level]("rpc", { rpc, code, principal: principalName, requestId, ms: elapsed(started) });
      deps.observe?.(rpc, connectError.metadata.get(REASON_HEADER) ?? String(code), elapsed(started));
      throw connectError;
    }
  };
}

/** Judges a call's credentials from its headers alone; returns the refusal, or undefined to go on. */
export type CredentialsGate = (call: {
  readonly service: string;
  readonly method: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;
}) => ConnectError | undefined;

/**
 * The interceptor's authentication, run on a call's headers before its body is read (see
 * `SharedRpcOptions.credentialsGate`): a FieldsealService call without valid credentials is refused there,
 * recorded, logged and counted as the interceptor would, so a client without credentials never has a
 * request body buffered. A call that passes carries its principal in its context values, which the
 * interceptor takes instead of authenticating again (one token hash per call), and then authorizes.
 */
export function credentialsGate(deps: InterceptorDeps): CredentialsGate {
  return ({ service, method, header, contextValues }) => {
    if (service !== FieldsealService.typeName) return undefined;
    // Draining is the interceptor's answer (UNAVAILABLE), whatever the credentials.
    if (contextValues.get(arrivedWhileDrainingKey)) return undefined;
    try {
      contextValues.set(principalKey, authenticate(deps, header, contextValues.get(peerCertificateKey)));
      return undefined;
    } catch (err) {
      const rpc = `${service}/${method}`;
      const requestId = requestIdOf(header);
      const code = auditRefusal(deps, err, rpc, requestId);
      const connectError = toConnectError(err);
      connectError.metadata.set("x-request-id", requestId);
      deps.log.info("rpc", { rpc, code, requestId, ms: 0 });
      deps.observe?.(rpc, connectError.metadata.get(REASON_HEADER) ?? code, 0);
      return connectError;
    }
  };
}

/** The caller's `x-request-id` when it is a sane one, else a fresh id. */
function requestIdOf(header: Headers): string {
  const given = header.get("x-request-id");
  return given !== null && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Audits a refused authentication; returns the Fieldseal code it recorded. */
function auditRefusal(deps: InterceptorDeps, err: unknown, rpc: string, requestId: string): string {
  const code = isFieldsealError(err) ? err.code : "unauthenticated";
  deps.audit?.record({ action: "authenticate", principal: "", outcome: "denied", code, rpc, requestId });
  return code;
}

function authenticate(
  deps: InterceptorDeps,
  header: Headers,
  peer: { verified: boolean; certificate: PeerCertificate } | undefined,
): Principal {
  const principals = deps.access.current;
  // Internal headers come only from this process's webhook adapter; a forged pair fails verify(). When they
  // are present nothing else is considered, so they can never weaken bearer authentication.
  const internalName = deps.internal.verify(header);
  if (internalName !== undefined) {
    const principal = principals.byName(internalName);
    if (principal === undefined)
      throw new FieldsealError("unauthenticated", `unknown principal "${internalName}"`);
    return principal;
  }
  // A bearer token, when sent, decides alone; a client certificate is the alternative, never a fallback
  // for a wrong token.
  const authorization = header.get("authorization");
  if ((authorization === null || authorization === "") && peer !== undefined) {
    // An unverified certificate's names are whatever the client chose: it never identifies anyone.
    if (!peer.verified) throw new FieldsealError("unauthenticated", "client certificate is not trusted");
    const principal = principals.byCertificate(peer.certificate);
    if (principal === undefined)
      throw new FieldsealError("unauthenticated", "client certificate maps to no principal");
    return principal;
  }
  const principal = principals.authenticate(bearerToken(authorization));
  if (principal === undefined) throw new FieldsealError("unauthenticated", "bearer token is not recognised");
  return principal;
}

function bearerToken(header: string | null): string {
  if (header === null || header === "") {
    throw new FieldsealError("unauthenticated", "no credentials: send 'authorization: Bearer <token>'");
  }
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/i.exec(header.trim());
  if (match?.[1] === undefined) {
    throw new FieldsealError("unauthenticated", "authorization header must be 'Bearer <token>'");
  }
  return match[1];
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
