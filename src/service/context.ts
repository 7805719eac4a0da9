import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../auth/principals.js";

/** The authenticated caller of the current RPC; set by the auth interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The request id of the current RPC (from `x-request-id` or generated). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/**
 * True when the HTTP request carrying this RPC arrived after shutdown began. Decided on arrival, not when
 * the interceptor runs: a call whose request was already received before SIGTERM is served even if its
 * body is still being read when draining starts.
 */
export const arrivedWhileDrainingKey = createContextKey<boolean>(false, {
  description: "arrived while draining",
});
