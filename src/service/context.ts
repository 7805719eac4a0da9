import { createContextKey } from "@connectrpc/connect";
import type { PeerCertificate, Principal } from "../auth/principals.js";

/** The authenticated caller of the current RPC; set by the auth interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The request id of the current RPC (from `x-request-id` or generated). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/**
 * The client certificate of the connection the RPC arrived on, if any, and whether the TLS layer verified
 * it against the configured client CA. Set from the Node request, never from anything the client sends.
 */
export const peerCertificateKey = createContextKey<
  { readonly verified: boolean; readonly certificate: PeerCertificate } | undefined
>(undefined, { description: "peer certificate" });

/**
 * True when the HTTP request carrying this RPC arrived after shutdown began. Decided on arrival, not when
 * the interceptor runs: a call whose request was already received before SIGTERM is served even if its
 * body is still being read when draining starts.
 */
export const arrivedWhileDrainingKey = createContextKey<boolean>(false, {
  description: "arrived while draining",
});
