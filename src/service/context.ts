import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../auth/principals.js";

/** The authenticated caller of the current RPC; set by the auth interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The request id of the current RPC (from `x-request-id` or generated). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });
