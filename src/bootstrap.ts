import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { hashToken } from "./auth/principals.js";
import type { Config } from "./config.js";

/** A freshly generated bearer token: `fsk_` and 32 random bytes, base64url. */
export function generateToken(): string {
  return `fsk_${randomBytes(32).toString("base64url")}`;
}

/**
 * The embedded default's first start: when no principal is configured and the config file does not exist,
 * generate an admin token, write the config file (0600) holding only the token's SHA-256, and return the
 * token so the caller can print it once. Returns undefined when there is nothing to do.
 */
export function bootstrapAdmin(config: Config): { token: string; configFile: string } | undefined {
  if (config.principals.length > 0 || existsSync(config.configFile)) return undefined;
  const token = generateToken();
  const file = {
    principals: [{ name: "admin", tokenSha256: hashToken(token), scopes: ["admin"] }],
  };
  mkdirSync(dirname(config.configFile), { recursive: true, mode: 0o700 });
  const temp = `${config.configFile}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  const fd = openSync(temp, "r");
  fsyncSync(fd);
  closeSync(fd);
  try {
    // link, unlike rename, never replaces: if another process created the config meanwhile, it wins.
    linkSync(temp, config.configFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw err;
  } finally {
    unlinkSync(temp);
  }
  return { token, configFile: config.configFile };
}
