import type { Interceptor } from "@connectrpc/connect";

/** A Connect client interceptor that sends `authorization: Bearer <token>` (nothing when undefined). */
export const bearer =
  (token: string | undefined): Interceptor =>
  (next) =>
  (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
