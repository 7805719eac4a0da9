/**
 * Structured JSON logs, one object per line. Redaction is by construction: callers pass only fields from an
 * allow-list of names that cannot carry secrets, and any other field is replaced by "[redacted]".
 *
 * Why not pino: its `redact` is a deny-list of paths, so a header or field nobody thought to list
 * (authorization, x-api-key, cookie, x-fieldseal-*, a new secret-bearing option) is logged in clear. Here
 * a name must be added to SAFE_FIELDS on purpose, values are flat (no objects in which a header map or a
 * request body could ride along), and the rest of what pino offers (JSON lines, levels, a time field) is
 * a few lines. Throughput is not a concern: the service logs one line per call at debug, errors at info.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Field names whose values are safe to log: identifiers, counts, codes and timings, never values or keys. */
const SAFE_FIELDS = new Set([
  "rpc",
  "code",
  "reason",
  "principal",
  "keyring",
  "version",
  "versions",
  "fromVersion",
  "toVersion",
  "field",
  "fields",
  "scopeKind",
  "sessionId",
  "userId",
  "requestId",
  "ms",
  "count",
  "attempts",
  "status",
  "httpStatus",
  "url",
  "port",
  "host",
  "store",
  "dir",
  "mode",
  "protocol",
  "path",
  "method",
  "inFlight",
  "deadlineMs",
  "signal",
  "error",
  "op",
  "ok",
  "traceId",
  "delayMs",
  "outcome",
  // Names of configuration settings (never their values).
  "settings",
]);

export type LogFields = Record<string, string | number | boolean | null | undefined | string[] | number[]>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** Creates a logger writing JSON lines to `write` (stderr by default). */
export function createLogger(level: LogLevel, write: (line: string) => void = defaultWrite): Logger {
  const emit = (at: Exclude<LogLevel, "silent">, msg: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level: at, msg };
    if (fields !== undefined) {
      for (const [name, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        entry[name] = SAFE_FIELDS.has(name) ? value : "[redacted]";
      }
    }
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

function defaultWrite(line: string): void {
  process.stderr.write(line);
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger("silent");
