import type { AccessControl } from "../auth/access.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";

/**
 * Re-reads the configuration and swaps in its principals and grants (what SIGHUP does). A config that does
 * not load or validate changes nothing: the old rules stay in force and the error is logged. Returns
 * whether the new rules were taken.
 */
export function reloadAccess(
  access: AccessControl,
  load: () => Config,
  log: Logger,
  running?: Config,
): boolean {
  try {
    const config = load();
    access.replace(config.principals);
    log.info("access rules reloaded", { count: config.principals.length });
    // Only principals and grants are reloaded. Say which other settings changed, so that an operator who
    // turned the legacy path off (legacyEnabled) and sent SIGHUP does not believe it is off.
    const changed = running === undefined ? [] : settingsChanged(running, config);
    if (changed.length > 0) {
      log.warn("settings changed in the config take effect only on restart", { settings: changed });
    }
    return true;
  } catch (err) {
    // Config errors name key paths and lines, never secrets (token hashes and HMAC secrets are not quoted).
    log.error("access reload failed; keeping the previous rules", {
      error: err instanceof Error ? err.message : "unknown",
    });
    return false;
  }
}

/** The top-level settings, other than principals, that differ between two configs (names only, no values). */
function settingsChanged(running: Config, next: Config): string[] {
  return (Object.keys(next) as Array<keyof Config>).filter(
    (key) => key !== "principals" && comparable(running[key]) !== comparable(next[key]),
  );
}

/** JSON of a setting, with Maps (field formats) as their entries: JSON.stringify writes every Map as {}. */
function comparable(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Map ? [...v] : v));
}
