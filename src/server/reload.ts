import type { AccessControl } from "../auth/access.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";

/**
 * Re-reads the configuration and swaps in its principals and grants (what SIGHUP does). A config that does
 * not load or validate changes nothing: the old rules stay in force and the error is logged. Returns
 * whether the new rules were taken.
 */
export function reloadAccess(access: AccessControl, load: () => Config, log: Logger): boolean {
  try {
    const config = load();
    access.replace(config.principals);
    log.info("access rules reloaded", { count: config.principals.length });
    return true;
  } catch (err) {
    // Config errors name key paths and lines, never secrets (token hashes and HMAC secrets are not quoted).
    log.error("access reload failed; keeping the previous rules", {
      error: err instanceof Error ? err.message : "unknown",
    });
    return false;
  }
}
