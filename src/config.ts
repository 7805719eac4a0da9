import { readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseGrants } from "./auth/policy.js";
import type { CertificateMatch, PrincipalConfig } from "./auth/principals.js";
import { assertKeyringName, KEYRING_NAME } from "./engine/names.js";
import { FieldsealError, isFieldsealError } from "./errors.js";
import { lineOfJsonPath } from "./json-lines-of.js";
import type { LogLevel } from "./log.js";
import { type FieldFormats, parseFieldFormats, parseKeyringFieldFormats } from "./masks/index.js";

/** Fieldseal's configuration, parsed and validated once at start-up. Nothing else reads process.env. */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** `fieldseal serve` processes sharing the port on this host (node:cluster); 1: no cluster. */
  readonly workers: number;
  /** Directory for the embedded defaults: the local keyring files and the generated config file. */
  readonly dataDir: string;
  /** The config file read at start-up (it may not exist yet on first start). */
  readonly configFile: string;
  readonly keyStore:
    | { readonly kind: "local"; readonly dir: string }
    | {
        readonly kind: "aws";
        readonly region: string | undefined;
        readonly endpoint: string | undefined;
        readonly secretPrefix: string;
        /** Keyring name → existing secret name or ARN (the tutorial's secret), instead of prefix + name. */
        readonly legacySecretIds: Readonly<Record<string, string>>;
      };
  readonly defaultKeyring: string;
  /**
   * Keyrings created at start-up when missing, besides the default keyring. Sealing never creates a
   * keyring: these, `fieldseal keys create` and RotateKey with `create` do.
   */
  readonly keyrings: readonly string[];
  /** Field name → mask format: such a field is checked when sealed and its mask returned (docs/masks.md). */
  readonly fields: FieldFormats;
  /** Keyring → its field formats (its own `keyringFields` entry merged over `fields`); others use `fields`. */
  readonly keyringFields: ReadonlyMap<string, FieldFormats>;
  /** Keyring whose versions open legacy tutorial blobs (matched by the tutorial secret's version label). */
  readonly legacyKeyring: string;
  /**
   * Whether legacy tutorial blobs open and rewrap at all (each call still needs the legacy permission). Turn
   * it off once every blob is migrated: legacy blobs then fail with `legacy_disabled`.
   */
  readonly legacyEnabled: boolean;
  readonly rotation: {
    readonly maxAgeMs: number | undefined;
    readonly sealBudget: number;
    /** Store writes per keyring per day that seal reservations are sized to stay under. */
    readonly storeWritesPerDay: number;
  };
  readonly primaryRefreshMs: number;
  readonly maxRequestBytes: number;
  /** Whether plain unary gRPC calls take the fast path (src/server/grpc-unary.ts) or go through connect-node. */
  readonly grpcFastPath: boolean;
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
  readonly principals: readonly PrincipalConfig[];
  /** The audit trail's own stream: a file (append-only, 0600) or, when undefined, stdout. */
  readonly audit: { readonly file: string | undefined };
  /** When set, the one port serves TLS only (HTTP/2 and HTTP/1.1 by ALPN); mTLS when a client CA is given. */
  readonly tls: TlsConfig | undefined;
  readonly webhook: {
    /** Principal name → shared secret for HMAC-signed webhooks (config file only: secrets stay out of env). */
    readonly hmacSecrets: Readonly<Record<string, string>>;
    readonly maxBodyBytes: number;
    readonly hmacToleranceSec: number;
    /** Signatures each signer key id may have remembered in the window (its own replay cache). */
    readonly hmacReplayCapacityPerSigner: number;
    /** Accept body-only v1 signatures (migration only: they leave X-Sensitive-Metadata unsigned). */
    readonly hmacAcceptV1: boolean;
  };
  readonly cognigy: {
    readonly baseUrl: string | undefined;
    readonly apiKey: string | undefined;
    readonly bearerToken: string | undefined;
    readonly mode: "context_inject" | "variables_put";
    readonly pushEnabled: boolean;
    readonly deadlineMs: number;
    readonly maxAttempts: number;
    readonly baseBackoffMs: number;
    readonly backoffCapMs: number;
    readonly retryAfterCapMs: number;
    /** Cognigy's REST rate limit this process keeps to: requests per window, all pushes together. */
    readonly rateLimit: number;
    readonly rateWindowSec: number;
  };
  /** Prometheus text at GET /metrics on the service port. */
  readonly metrics: { readonly enabled: boolean };
  /** What one connection, and one peer address, may hold before its request is complete. */
  readonly limits: ConnectionLimits;
}

/**
 * Bounds on every listener, cleartext and TLS, so that an unauthenticated client holds little for long.
 * docs/security.md ("Connection limits") gives the worst-case memory they allow.
 */
export interface ConnectionLimits {
  /** From accept until the first bytes decide the protocol (cleartext) or the TLS handshake ends. */
  readonly firstBytesTimeoutMs: number;
  /** From accept (or the end of the previous response plus the keep-alive time) until a complete HTTP/1.1 request head. */
  readonly headTimeoutMs: number;
  /**
   * From a complete request head until the request body has ended (HTTP/1.1 request or HTTP/2 stream);
   * also how long answer bytes may wait on a client that takes none of them.
   */
  readonly bodyTimeoutMs: number;
  /** An HTTP/1.1 connection with no request is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  /** An HTTP/2 session with no traffic at all is closed (GOAWAY) after this long. */
  readonly h2IdleTimeoutMs: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused. */
  readonly h2MaxConcurrentStreams: number;
  /** Open connections in all; further ones are closed as they arrive. */
  readonly maxConnections: number;
  /** Open connections from one peer address; further ones from it are closed as they arrive. */
  readonly maxConnectionsPerPeer: number;
}

/** A whole-number setting declared once: parsing, bounds, default and help all come from here. */
interface IntSetting {
  readonly env: string;
  readonly description: string;
  readonly default: number;
  readonly min: number;
  readonly max: number;
}

/** The connection limits; their config-file keys are `limits.<name>`. */
const LIMIT_SETTINGS: { readonly [K in keyof ConnectionLimits]: IntSetting } = {
  firstBytesTimeoutMs: {
    env: "FIELDSEAL_FIRST_BYTES_TIMEOUT_MS",
    description: "A new connection must send its first bytes (or finish the TLS handshake) within this",
    default: 10_000,
    min: 50,
    max: 600_000,
  },
  headTimeoutMs: {
    env: "FIELDSEAL_HEAD_TIMEOUT_MS",
    description: "An HTTP/1.1 request head must be complete within this of the connection's start",
    default: 20_000,
    min: 50,
    max: 600_000,
  },
  bodyTimeoutMs: {
    env: "FIELDSEAL_BODY_TIMEOUT_MS",
    description:
      "A request body must end within this of its head, and a client must take some of a waiting answer within this (else the request or stream is reset)",
    default: 30_000,
    min: 50,
    max: 3_600_000,
  },
  keepAliveTimeoutMs: {
    env: "FIELDSEAL_KEEP_ALIVE_TIMEOUT_MS",
    description: "An idle HTTP/1.1 keep-alive connection is closed after this",
    default: 65_000,
    min: 50,
    max: 3_600_000,
  },
  h2IdleTimeoutMs: {
    env: "FIELDSEAL_H2_IDLE_TIMEOUT_MS",
    description: "An HTTP/2 connection with no traffic is closed (GOAWAY) after this",
    default: 120_000,
    min: 50,
    max: 3_600_000,
  },
  h2MaxConcurrentStreams: {
    env: "FIELDSEAL_H2_MAX_STREAMS",
    description: "Concurrent HTTP/2 streams per connection; further ones are refused",
    default: 100,
    min: 1,
    max: 10_000,
  },
  maxConnections: {
    env: "FIELDSEAL_MAX_CONNECTIONS",
    description:
      "Open connections in all, per process: N workers admit N times this (keep it below the process's file descriptor limit)",
    default: 1000,
    min: 1,
    max: 1_000_000,
  },
  maxConnectionsPerPeer: {
    env: "FIELDSEAL_MAX_CONNECTIONS_PER_PEER",
    description:
      "Open connections from one client address, per process: N workers admit N times this (raise it behind a proxy or NAT)",
    default: 128,
    min: 1,
    max: 1_000_000,
  },
};

function intSettingDocs(prefix: string, settings: Readonly<Record<string, IntSetting>>): SettingDoc[] {
  return Object.entries(settings).map(([name, s]) => ({
    env: s.env,
    file: `${prefix}.${name}`,
    description: s.description,
    default: String(s.default),
  }));
}

/** Certificate files for TLS, and the CA that client certificates must chain to for mTLS. */
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
  /** Refuse the handshake without a client certificate from clientCaFile (else bearer tokens still work). */
  readonly requireClientCert: boolean;
}

/** The most `fieldseal serve` processes one host runs (FIELDSEAL_WORKERS). */
export const MAX_WORKERS = 256;

/** One setting: its environment variable, its config-file key, what it means and its default. */
export interface SettingDoc {
  readonly env: string;
  readonly file: string;
  readonly description: string;
  readonly default: string;
}

/** Every setting, for `--help` and the README's table. */
export const SETTINGS: readonly SettingDoc[] = [
  {
    env: "FIELDSEAL_CONFIG",
    file: "-",
    description: "Config file (JSON)",
    default: "<data dir>/config.json",
  },
  {
    env: "FIELDSEAL_DATA_DIR",
    file: "dataDir",
    description: "Directory for local keyrings and the generated config",
    default: ".fieldseal",
  },
  { env: "FIELDSEAL_HOST", file: "host", description: "Address to listen on", default: "127.0.0.1" },
  {
    env: "FIELDSEAL_PORT",
    file: "port",
    description: "Port for gRPC, gRPC-Web, Connect, webhooks and health (0: any free port)",
    default: "7070",
  },
  {
    env: "FIELDSEAL_WORKERS",
    file: "workers",
    description:
      "Server processes sharing the port on this host (node:cluster); auto: one per available core. Connection limits and /metrics are per worker",
    default: "1",
  },
  {
    env: "FIELDSEAL_KEY_STORE",
    file: "keyStore.kind",
    description: "Where keyrings live: local or aws",
    default: "local",
  },
  {
    env: "FIELDSEAL_AWS_REGION",
    file: "keyStore.region",
    description: "AWS region for Secrets Manager (else the SDK's default chain)",
    default: "-",
  },
  {
    env: "FIELDSEAL_AWS_ENDPOINT",
    file: "keyStore.endpoint",
    description: "Secrets Manager endpoint override (for emulators)",
    default: "-",
  },
  {
    env: "FIELDSEAL_AWS_SECRET_PREFIX",
    file: "keyStore.secretPrefix",
    description: "Secret name prefix; a keyring's secret is prefix + name",
    default: "fieldseal/",
  },
  {
    env: "-",
    file: "keyStore.legacySecretIds",
    description: "Keyring name to an existing secret name or ARN (e.g. the tutorial's secret) to adopt",
    default: "{}",
  },
  {
    env: "FIELDSEAL_DEFAULT_KEYRING",
    file: "defaultKeyring",
    description: "Keyring used when a request names none",
    default: "default",
  },
  {
    env: "FIELDSEAL_KEYRINGS",
    file: "keyrings",
    description: "More keyrings to create at start-up when missing (comma-separated)",
    default: "-",
  },
  {
    env: "FIELDSEAL_FIELD_FORMATS",
    file: "fields",
    description:
      'Field name to mask format (JSON), e.g. {"credit_card": {"format": "card"}}: checked when sealed, mask returned (docs/masks.md)',
    default: "{}",
  },
  {
    env: "-",
    file: "keyringFields",
    description: "Keyring name to its own field formats, merged over fields (docs/masks.md)",
    default: "{}",
  },
  {
    env: "FIELDSEAL_LEGACY_KEYRING",
    file: "legacyKeyring",
    description: "Keyring that opens legacy tutorial blobs",
    default: "<default keyring>",
  },
  {
    env: "FIELDSEAL_LEGACY_ENABLED",
    file: "legacyEnabled",
    description: "Open and rewrap legacy tutorial blobs at all (false after migration: legacy_disabled)",
    default: "true",
  },
  {
    env: "FIELDSEAL_ROTATE_MAX_AGE_DAYS",
    file: "rotation.maxAgeDays",
    description: "Rotate the primary key when older (0: never by age)",
    default: "90",
  },
  {
    env: "FIELDSEAL_SEAL_BUDGET",
    file: "rotation.sealBudget",
    description: "Rotate the primary key after this many seals (NIST SP 800-38D allows 2^32)",
    default: "268435456 (2^28)",
  },
  {
    env: "FIELDSEAL_STORE_WRITES_PER_DAY",
    file: "rotation.storeWritesPerDay",
    description:
      "Key store writes per keyring per day that seal reservations are sized for (Secrets Manager sustains about 144)",
    default: "48",
  },
  {
    env: "FIELDSEAL_PRIMARY_REFRESH_MS",
    file: "primaryRefreshMs",
    description: "How often cached key state is refreshed from the store",
    default: "30000",
  },
  {
    env: "FIELDSEAL_MAX_REQUEST_BYTES",
    file: "maxRequestBytes",
    description: "Largest request body accepted",
    default: "1048576",
  },
  {
    env: "FIELDSEAL_GRPC_FAST_PATH",
    file: "grpcFastPath",
    description: "on: plain unary gRPC calls take the fast path; off: connect-node serves every call",
    default: "on",
  },
  {
    env: "FIELDSEAL_SHUTDOWN_GRACE_MS",
    file: "shutdownGraceMs",
    description: "How long in-flight calls may finish after SIGTERM",
    default: "10000",
  },
  {
    env: "FIELDSEAL_LOG_LEVEL",
    file: "logLevel",
    description: "debug, info, warn, error or silent",
    default: "info",
  },
  {
    env: "FIELDSEAL_AUDIT_FILE",
    file: "audit.file",
    description: "Append audit events (JSON lines) to this file, created 0600",
    default: "- (stdout)",
  },
  {
    env: "FIELDSEAL_TLS_CERT_FILE",
    file: "tls.certFile",
    description:
      "Server certificate chain (PEM); with the key file, serve TLS only (h2 and http/1.1 by ALPN)",
    default: "- (cleartext)",
  },
  {
    env: "FIELDSEAL_TLS_KEY_FILE",
    file: "tls.keyFile",
    description: "Server private key (PEM)",
    default: "-",
  },
  {
    env: "FIELDSEAL_TLS_CLIENT_CA_FILE",
    file: "tls.clientCaFile",
    description: "CA bundle (PEM) that client certificates must chain to; enables mTLS principals",
    default: "- (no client certificates)",
  },
  {
    env: "FIELDSEAL_TLS_REQUIRE_CLIENT_CERT",
    file: "tls.requireClientCert",
    description: "Refuse TLS handshakes without a trusted client certificate",
    default: "false",
  },
  {
    env: "FIELDSEAL_WEBHOOK_MAX_BODY_BYTES",
    file: "webhook.maxBodyBytes",
    description: "Largest webhook body accepted",
    default: "65536",
  },
  {
    env: "FIELDSEAL_WEBHOOK_TOLERANCE_SEC",
    file: "webhook.hmacToleranceSec",
    description: "Accepted clock skew of signed webhooks; replays inside it are refused",
    default: "300",
  },
  {
    env: "FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER",
    file: "webhook.hmacReplayCapacityPerSigner",
    description: "Signed webhooks remembered per signer key id; when full, that signer's window shrinks",
    default: "100000",
  },
  {
    env: "FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES",
    file: "webhook.hmacAcceptV1",
    description: "Also accept v1 (body-only) webhook signatures; for a migration to v2 only",
    default: "false",
  },
  {
    env: "-",
    file: "webhook.hmacSecrets",
    description:
      "Principal name to HMAC-SHA256 secret (>= 32 chars) for signed webhooks (the file must then be 0600 or 0400)",
    default: "{}",
  },
  {
    env: "FIELDSEAL_COGNIGY_BASE_URL",
    file: "cognigy.baseUrl",
    description: "Cognigy.AI REST API base, e.g. https://api-trial.cognigy.ai",
    default: "- (push disabled)",
  },
  {
    env: "FIELDSEAL_COGNIGY_API_KEY",
    file: "cognigy.apiKey",
    description: "Cognigy.AI API key (X-API-Key)",
    default: "-",
  },
  {
    env: "FIELDSEAL_COGNIGY_BEARER_TOKEN",
    file: "cognigy.bearerToken",
    description: "Bearer token for the tutorial's variables PUT mode",
    default: "-",
  },
  {
    env: "FIELDSEAL_COGNIGY_MODE",
    file: "cognigy.mode",
    description: "context_inject (documented API) or variables_put (tutorial)",
    default: "context_inject",
  },
  {
    env: "FIELDSEAL_COGNIGY_PUSH",
    file: "cognigy.pushEnabled",
    description: "Also push sealed values from webhooks into the session (needs a base URL)",
    default: "false (flows store answers)",
  },
  {
    env: "FIELDSEAL_COGNIGY_DEADLINE_MS",
    file: "cognigy.deadlineMs",
    description: "Overall deadline of one push, retries included",
    default: "6000",
  },
  {
    env: "FIELDSEAL_COGNIGY_MAX_ATTEMPTS",
    file: "cognigy.maxAttempts",
    description: "Most attempts of one push (the first one included)",
    default: "5",
  },
  {
    env: "FIELDSEAL_COGNIGY_BACKOFF_BASE_MS",
    file: "cognigy.baseBackoffMs",
    description: "Backoff window of the first retry; it doubles per retry (full jitter)",
    default: "100",
  },
  {
    env: "FIELDSEAL_COGNIGY_BACKOFF_CAP_MS",
    file: "cognigy.backoffCapMs",
    description: "Largest backoff window between two attempts",
    default: "2000",
  },
  {
    env: "FIELDSEAL_COGNIGY_RETRY_AFTER_CAP_MS",
    file: "cognigy.retryAfterCapMs",
    description: "Longest wait taken from a 429's Retry-After",
    default: "5000",
  },
  {
    env: "FIELDSEAL_COGNIGY_RATE_LIMIT",
    file: "cognigy.rateLimit",
    description:
      "Cognigy REST requests per window from this server, pushes and retries together, split over its workers (SaaS: 1,000 per 5 min per IP)",
    default: "1000",
  },
  {
    env: "FIELDSEAL_COGNIGY_RATE_WINDOW_SEC",
    file: "cognigy.rateWindowSec",
    description: "Window of FIELDSEAL_COGNIGY_RATE_LIMIT, in seconds",
    default: "300",
  },
  {
    env: "FIELDSEAL_METRICS_ENABLED",
    file: "metrics.enabled",
    description: "Serve Prometheus metrics at GET /metrics on the same port",
    default: "true",
  },
  ...intSettingDocs("limits", LIMIT_SETTINGS),
];

type Env = Readonly<Record<string, string | undefined>>;
type FileConfig = Record<string, unknown>;

/** Reads the config file (if any) and the environment into a validated Config. */
export function loadConfig(env: Env, cwd: string): Config {
  const dataDir = resolve(cwd, env.FIELDSEAL_DATA_DIR ?? ".fieldseal");
  const configFile = resolve(cwd, env.FIELDSEAL_CONFIG ?? `${dataDir}/config.json`);
  let file: FileConfig = {};
  let text = "";
  let found = false;
  try {
    text = readFileSync(configFile, "utf8");
    found = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" || env.FIELDSEAL_CONFIG !== undefined) {
      throw new FieldsealError(
        "failed_precondition",
        `cannot read config file ${configFile}: ${describeFsError(code)} (set FIELDSEAL_CONFIG to another file, or fix this one)`,
      );
    }
  }
  if (found) file = parseFile(text, configFile);
  let config: Config;
  try {
    config = parseConfig(file, env, { dataDir: String(file.dataDir ?? dataDir), configFile, cwd });
  } catch (err) {
    throw withLine(err, text, configFile);
  }
  if (found) assertPrivateIfSecret(file, configFile);
  return config;
}

/** Words for the errors reading a file can raise; the code is kept for searching. */
export function describeFsError(code: string | undefined): string {
  const words: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "it is a directory",
    ENOTDIR: "a part of the path is not a directory",
    ELOOP: "too many symbolic links",
  };
  return `${(code !== undefined && words[code]) || "cannot be read"}${code === undefined ? "" : ` (${code})`}`;
}

/**
 * Refuses a config file that holds secrets (webhook HMAC secrets, Cognigy credentials) while group or
 * others may read it. Token hashes alone are not secrets, so the generated default config passes either way.
 */
function assertPrivateIfSecret(file: FileConfig, configFile: string): void {
  if (process.platform === "win32") return;
  const webhook = file.webhook as Record<string, unknown> | undefined;
  const cognigy = file.cognigy as Record<string, unknown> | undefined;
  const secrets = [
    typeof webhook === "object" && webhook !== null && webhook.hmacSecrets !== undefined
      ? "webhook.hmacSecrets"
      : undefined,
    typeof cognigy === "object" && cognigy !== null && cognigy.apiKey !== undefined
      ? "cognigy.apiKey"
      : undefined,
    typeof cognigy === "object" && cognigy !== null && cognigy.bearerToken !== undefined
      ? "cognigy.bearerToken"
      : undefined,
  ].filter((s) => s !== undefined);
  if (secrets.length === 0) return;
  const mode = statSync(configFile).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  throw new FieldsealError(
    "failed_precondition",
    `config file ${configFile} holds ${secrets.join(", ")} but its mode ${mode.toString(8).padStart(4, "0")} lets group or others access it: chmod 600 it (in Kubernetes, mount it with defaultMode 0400)`,
  );
}

/** Adds the config file's name and line to an error that names a key path (`config: principals[1].x: ...`). */
function withLine(err: unknown, text: string, configFile: string): unknown {
  if (!isFieldsealError(err)) return err;
  const path = /^config: ([A-Za-z0-9_.[\]]+): /.exec(err.message)?.[1];
  const line = path === undefined ? undefined : lineOfJsonPath(text, path);
  if (line === undefined) return err;
  return new FieldsealError(err.code, `${err.message} (${configFile} line ${line})`, { cause: err });
}

function parseFile(text: string, path: string): FileConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // JSON.parse's message quotes the text around the error, which may be part of a secret: only the
    // position is kept.
    throw new FieldsealError(
      "invalid_argument",
      `config file ${path} is not valid JSON${jsonErrorWhere(text, (err as Error).message)}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new FieldsealError("invalid_argument", `config file ${path} must hold a JSON object`);
  }
  return parsed as FileConfig;
}

/** " at line L column C" for a JSON.parse error message that gives a position, else "". */
function jsonErrorWhere(text: string, message: string): string {
  const m = /at position (\d+)/.exec(message);
  const position =
    m?.[1] !== undefined ? Number(m[1]) : /end of JSON input/.test(message) ? text.length : undefined;
  if (position === undefined) return "";
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = position - before.lastIndexOf("\n");
  return ` at line ${line} column ${column}`;
}

/** Builds a Config from a parsed config file and the environment; exported for tests. */
export function parseConfig(
  file: FileConfig,
  env: Env,
  where: { dataDir: string; configFile: string; cwd: string },
): Config {
  const pick = (envName: string, path: string): unknown => {
    const fromEnv = env[envName];
    if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
    let node: unknown = file;
    for (const part of path.split(".")) {
      node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[part] : undefined;
    }
    return node;
  };
  const str = (envName: string, path: string): string | undefined => {
    const v = pick(envName, path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw bad(envName, path, "must be a string");
    return v;
  };
  const int = (envName: string, path: string, fallback: number, min: number, max: number): number => {
    const v = pick(envName, path);
    if (v === undefined || v === null) return fallback;
    const n = typeof v === "number" ? v : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw bad(envName, path, `must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
  const bool = (envName: string, path: string, fallback: boolean): boolean => {
    const v = pick(envName, path);
    if (v === undefined || v === null) return fallback;
    if (v === true || v === "true" || v === "1") return true;
    if (v === false || v === "false" || v === "0") return false;
    throw bad(envName, path, "must be true or false");
  };
  const oneOf = <T extends string>(envName: string, path: string, allowed: readonly T[], fallback: T): T => {
    const v = str(envName, path) ?? fallback;
    if (!(allowed as readonly string[]).includes(v))
      throw bad(envName, path, `must be one of ${allowed.join(", ")}`);
    return v as T;
  };

  const workers = alsoAccepting(
    () =>
      pick("FIELDSEAL_WORKERS", "workers") === "auto"
        ? Math.min(availableParallelism(), MAX_WORKERS)
        : int("FIELDSEAL_WORKERS", "workers", 1, 1, MAX_WORKERS),
    "or auto",
  );
  const storeKind = oneOf("FIELDSEAL_KEY_STORE", "keyStore.kind", ["local", "aws"] as const, "local");
  const defaultKeyring = str("FIELDSEAL_DEFAULT_KEYRING", "defaultKeyring") ?? "default";
  const legacyKeyring = str("FIELDSEAL_LEGACY_KEYRING", "legacyKeyring") ?? defaultKeyring;
  for (const [envName, path, name] of [
    ["FIELDSEAL_DEFAULT_KEYRING", "defaultKeyring", defaultKeyring],
    ["FIELDSEAL_LEGACY_KEYRING", "legacyKeyring", legacyKeyring],
  ] as const) {
    try {
      assertKeyringName(name);
    } catch (err) {
      throw bad(envName, path, (err as Error).message);
    }
  }
  const keyrings = nameList(pick("FIELDSEAL_KEYRINGS", "keyrings"), (why) =>
    bad("FIELDSEAL_KEYRINGS", "keyrings", why),
  );
  const certFile = str("FIELDSEAL_TLS_CERT_FILE", "tls.certFile");
  const keyFile = str("FIELDSEAL_TLS_KEY_FILE", "tls.keyFile");
  const clientCaFile = str("FIELDSEAL_TLS_CLIENT_CA_FILE", "tls.clientCaFile");
  const requireClientCert = bool("FIELDSEAL_TLS_REQUIRE_CLIENT_CERT", "tls.requireClientCert", false);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw bad("FIELDSEAL_TLS_CERT_FILE", "tls.certFile", "and tls.keyFile must be given together");
  }
  if (certFile === undefined && (clientCaFile !== undefined || requireClientCert)) {
    throw bad("FIELDSEAL_TLS_CLIENT_CA_FILE", "tls.clientCaFile", "needs tls.certFile and tls.keyFile");
  }
  if (requireClientCert && clientCaFile === undefined) {
    throw bad("FIELDSEAL_TLS_REQUIRE_CLIENT_CERT", "tls.requireClientCert", "needs tls.clientCaFile");
  }
  const auditFile = str("FIELDSEAL_AUDIT_FILE", "audit.file");
  const fields = parseFieldFormats(
    pick("FIELDSEAL_FIELD_FORMATS", "fields"),
    env.FIELDSEAL_FIELD_FORMATS ? "FIELDSEAL_FIELD_FORMATS" : "fields",
  );
  const secretPrefix = str("FIELDSEAL_AWS_SECRET_PREFIX", "keyStore.secretPrefix") ?? "fieldseal/";
  const maxAgeDays = int("FIELDSEAL_ROTATE_MAX_AGE_DAYS", "rotation.maxAgeDays", 90, 0, 3650);
  const baseUrl = str("FIELDSEAL_COGNIGY_BASE_URL", "cognigy.baseUrl");
  if (baseUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(baseUrl)) {
    throw bad("FIELDSEAL_COGNIGY_BASE_URL", "cognigy.baseUrl", "must be an http(s) URL");
  }

  return {
    host: str("FIELDSEAL_HOST", "host") ?? "127.0.0.1",
    port: int("FIELDSEAL_PORT", "port", 7070, 0, 65535),
    workers,
    dataDir: where.dataDir,
    configFile: where.configFile,
    keyStore:
      storeKind === "local"
        ? { kind: "local", dir: resolve(where.dataDir, "keys") }
        : {
            kind: "aws",
            region: str("FIELDSEAL_AWS_REGION", "keyStore.region"),
            endpoint: str("FIELDSEAL_AWS_ENDPOINT", "keyStore.endpoint"),
            secretPrefix,
            legacySecretIds: parseLegacySecretIds(file.keyStore, secretPrefix),
          },
    defaultKeyring,
    keyrings,
    fields,
    keyringFields: parseKeyringFieldFormats(file.keyringFields, fields, "keyringFields"),
    legacyKeyring,
    legacyEnabled: bool("FIELDSEAL_LEGACY_ENABLED", "legacyEnabled", true),
    rotation: {
      maxAgeMs: maxAgeDays === 0 ? undefined : maxAgeDays * 86_400_000,
      sealBudget: sealBudget(int("FIELDSEAL_SEAL_BUDGET", "rotation.sealBudget", 2 ** 28, 1, 2 ** 32)),
      storeWritesPerDay: int("FIELDSEAL_STORE_WRITES_PER_DAY", "rotation.storeWritesPerDay", 48, 1, 86_400),
    },
    primaryRefreshMs: int("FIELDSEAL_PRIMARY_REFRESH_MS", "primaryRefreshMs", 30_000, 100, 86_400_000),
    maxRequestBytes: int(
      "FIELDSEAL_MAX_REQUEST_BYTES",
      "maxRequestBytes",
      1024 * 1024,
      1024,
      64 * 1024 * 1024,
    ),
    grpcFastPath: oneOf("FIELDSEAL_GRPC_FAST_PATH", "grpcFastPath", ["on", "off"] as const, "on") === "on",
    shutdownGraceMs: int("FIELDSEAL_SHUTDOWN_GRACE_MS", "shutdownGraceMs", 10_000, 0, 600_000),
    logLevel: oneOf(
      "FIELDSEAL_LOG_LEVEL",
      "logLevel",
      ["debug", "info", "warn", "error", "silent"] as const,
      "info",
    ),
    principals: parsePrincipals(file.principals),
    audit: { file: auditFile === undefined ? undefined : resolve(where.cwd, auditFile) },
    tls:
      certFile === undefined || keyFile === undefined
        ? undefined
        : {
            certFile: resolve(where.cwd, certFile),
            keyFile: resolve(where.cwd, keyFile),
            clientCaFile: clientCaFile === undefined ? undefined : resolve(where.cwd, clientCaFile),
            requireClientCert,
          },
    webhook: {
      hmacSecrets: parseHmacSecrets(file.webhook),
      maxBodyBytes: int(
        "FIELDSEAL_WEBHOOK_MAX_BODY_BYTES",
        "webhook.maxBodyBytes",
        64 * 1024,
        1024,
        16 * 1024 * 1024,
      ),
      hmacToleranceSec: int("FIELDSEAL_WEBHOOK_TOLERANCE_SEC", "webhook.hmacToleranceSec", 300, 1, 3600),
      hmacReplayCapacityPerSigner: int(
        "FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER",
        "webhook.hmacReplayCapacityPerSigner",
        100_000,
        1,
        10_000_000,
      ),
      hmacAcceptV1: bool("FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES", "webhook.hmacAcceptV1", false),
    },
    cognigy: {
      baseUrl,
      apiKey: str("FIELDSEAL_COGNIGY_API_KEY", "cognigy.apiKey"),
      bearerToken: str("FIELDSEAL_COGNIGY_BEARER_TOKEN", "cognigy.bearerToken"),
      mode: oneOf(
        "FIELDSEAL_COGNIGY_MODE",
        "cognigy.mode",
        ["context_inject", "variables_put"] as const,
        "context_inject",
      ),
      // Off by default: the flow stores the webhook's answer itself (src/cognigy/webhook.ts says why).
      pushEnabled: bool("FIELDSEAL_COGNIGY_PUSH", "cognigy.pushEnabled", false),
      deadlineMs: int("FIELDSEAL_COGNIGY_DEADLINE_MS", "cognigy.deadlineMs", 6000, 100, 60_000),
      maxAttempts: int("FIELDSEAL_COGNIGY_MAX_ATTEMPTS", "cognigy.maxAttempts", 5, 1, 20),
      baseBackoffMs: int("FIELDSEAL_COGNIGY_BACKOFF_BASE_MS", "cognigy.baseBackoffMs", 100, 0, 60_000),
      backoffCapMs: int("FIELDSEAL_COGNIGY_BACKOFF_CAP_MS", "cognigy.backoffCapMs", 2000, 0, 60_000),
      retryAfterCapMs: int(
        "FIELDSEAL_COGNIGY_RETRY_AFTER_CAP_MS",
        "cognigy.retryAfterCapMs",
        5000,
        0,
        60_000,
      ),
      rateLimit: int("FIELDSEAL_COGNIGY_RATE_LIMIT", "cognigy.rateLimit", 1000, 1, 100_000),
      rateWindowSec: int("FIELDSEAL_COGNIGY_RATE_WINDOW_SEC", "cognigy.rateWindowSec", 300, 1, 86_400),
    },
    metrics: { enabled: bool("FIELDSEAL_METRICS_ENABLED", "metrics.enabled", true) },
    limits: Object.fromEntries(
      Object.entries(LIMIT_SETTINGS).map(([name, d]) => [
        name,
        int(d.env, `limits.${name}`, d.default, d.min, d.max),
      ]),
    ) as unknown as ConnectionLimits,
  };
}

function parsePrincipals(raw: unknown): PrincipalConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw invalidAt("principals", "must be an array");
  const seen = new Set<string>();
  return raw.map((entry, i) => {
    const at = `principals[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry))
      throw invalidAt(at, "must be an object");
    const { name, tokenSha256, certificate, scopes, allow, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) {
      throw invalidAt(
        `${at}.${extra}`,
        "unknown key (expected name, tokenSha256, certificate, scopes, allow)",
      );
    }
    if (typeof name !== "string" || !/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
      throw invalidAt(`${at}.name`, "must be 1-64 characters of A-Z, a-z, 0-9, _ . @ -");
    }
    if (seen.has(name)) throw invalidAt(`${at}.name`, `"${name}" is used twice`);
    seen.add(name);
    if (
      tokenSha256 !== undefined &&
      (typeof tokenSha256 !== "string" || !/^[0-9a-f]{64}$/.test(tokenSha256))
    ) {
      throw invalidAt(`${at}.tokenSha256`, "must be 64 lowercase hex characters");
    }
    const grants = prefixed(() => parseGrants(scopes, allow, at));
    return {
      name,
      ...(tokenSha256 === undefined ? {} : { tokenSha256 }),
      ...(certificate === undefined
        ? {}
        : { certificate: parseCertificateMatch(certificate, `${at}.certificate`) }),
      grants,
    };
  });
}

/** Runs `parse`, marking its key-path errors as configuration errors. */
function prefixed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (!isFieldsealError(err)) throw err;
    throw new FieldsealError(err.code, `config: ${err.message}`);
  }
}

function parseCertificateMatch(raw: unknown, at: string): CertificateMatch {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw invalidAt(at, "must be an object with subject and/or san");
  }
  const { subject, san, ...rest } = raw as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw invalidAt(`${at}.${extra}`, "unknown key (expected subject, san)");
  if (subject !== undefined && (typeof subject !== "string" || !/^CN=[^,+=\0]{1,64}$/.test(subject))) {
    throw invalidAt(`${at}.subject`, 'must be "CN=<common name>"');
  }
  if (san !== undefined && (typeof san !== "string" || !/^[^\s,]{1,512}$/.test(san))) {
    throw invalidAt(`${at}.san`, "must be one DNS name, URI or IP address");
  }
  if (subject === undefined && san === undefined) throw invalidAt(at, "must give subject or san");
  return { ...(subject === undefined ? {} : { subject }), ...(san === undefined ? {} : { san }) };
}

function invalidAt(path: string, why: string): FieldsealError {
  return new FieldsealError("invalid_argument", `config: ${path}: ${why}`);
}

function parseHmacSecrets(webhook: unknown): Record<string, string> {
  const raw =
    typeof webhook === "object" && webhook !== null
      ? (webhook as Record<string, unknown>).hmacSecrets
      : undefined;
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldsealError(
      "invalid_argument",
      "config: webhook.hmacSecrets must be an object of principal name to secret",
    );
  }
  const out: Record<string, string> = {};
  for (const [name, secret] of Object.entries(raw)) {
    // The secret itself is never quoted: only its principal's name and what is wrong with it.
    if (typeof secret !== "string" || secret.length < 32) {
      throw new FieldsealError(
        "invalid_argument",
        `config: webhook.hmacSecrets["${name}"] must be a string of at least 32 characters`,
      );
    }
    out[name] = secret;
  }
  return out;
}

/**
 * `keyStore.legacySecretIds`. Each keyring is one secret, and adoption writes the keyring into it: of two
 * keyrings naming one secret (or a secret that is another keyring's own, `<prefix><name>`), the first read
 * takes the secret and the other then finds a keyring of another name there and fails for good, so that is
 * refused here. (A name and an ARN of the same secret cannot be told apart here.)
 */
function parseLegacySecretIds(keyStore: unknown, secretPrefix: string): Record<string, string> {
  const raw =
    typeof keyStore === "object" && keyStore !== null
      ? (keyStore as Record<string, unknown>).legacySecretIds
      : undefined;
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldsealError(
      "invalid_argument",
      "config: keyStore.legacySecretIds must be an object of keyring name to secret name or ARN",
    );
  }
  const out: Record<string, string> = {};
  for (const [name, secretId] of Object.entries(raw)) {
    try {
      assertKeyringName(name);
    } catch (err) {
      throw new FieldsealError(
        "invalid_argument",
        `config: keyStore.legacySecretIds: ${(err as Error).message}`,
      );
    }
    if (typeof secretId !== "string" || secretId.length === 0 || secretId.length > 2048) {
      throw new FieldsealError(
        "invalid_argument",
        `config: keyStore.legacySecretIds["${name}"] must be a secret name or ARN`,
      );
    }
    out[name] = secretId;
  }
  const firstNaming = new Map<string, string>();
  for (const [name, secretId] of Object.entries(out)) {
    const first = firstNaming.get(secretId);
    if (first !== undefined) {
      throw new FieldsealError(
        "invalid_argument",
        `config: keyStore.legacySecretIds: keyrings "${first}" and "${name}" name the same secret; each keyring needs its own`,
      );
    }
    firstNaming.set(secretId, name);
    const other = secretId.startsWith(secretPrefix) ? secretId.slice(secretPrefix.length) : undefined;
    if (other !== undefined && other !== name && KEYRING_NAME.test(other)) {
      throw new FieldsealError(
        "invalid_argument",
        `config: keyStore.legacySecretIds["${name}"] names keyring "${other}"'s own secret; each keyring needs its own`,
      );
    }
  }
  return out;
}

/** Keyring names from a comma-separated string or an array of strings; each checked, duplicates dropped. */
function nameList(raw: unknown, bad: (why: string) => FieldsealError): string[] {
  if (raw === undefined || raw === null) return [];
  const items =
    typeof raw === "string" ? raw.split(",").map((s) => s.trim()) : Array.isArray(raw) ? raw : undefined;
  if (items === undefined) throw bad("must be a comma-separated string or an array of keyring names");
  const names = new Set<string>();
  for (const item of items) {
    if (item === "") continue;
    if (typeof item !== "string") throw bad("must hold keyring names (strings)");
    try {
      assertKeyringName(item);
    } catch (err) {
      throw bad((err as Error).message);
    }
    names.add(item);
  }
  return [...names];
}

/**
 * A server reserves seals in blocks of SEAL_BLOCK (src/keys/keyrings.ts), and a block never spans two key
 * versions, so a smaller budget would let the server validate its config and then refuse to start.
 */
const SEAL_BLOCK = 65_536;

function sealBudget(n: number): number {
  if (n < SEAL_BLOCK) {
    throw bad(
      "FIELDSEAL_SEAL_BUDGET",
      "rotation.sealBudget",
      `must be at least ${SEAL_BLOCK} (the seals a server reserves at a time), got ${n}`,
    );
  }
  return n;
}

/** Runs `parse`, adding `also` to the message of a setting it refuses (the accepted words besides numbers). */
function alsoAccepting<T>(parse: () => T, also: string): T {
  try {
    return parse();
  } catch (err) {
    if (isFieldsealError(err)) throw new FieldsealError(err.code, `${err.message} ${also}`);
    throw err;
  }
}

function bad(envName: string, path: string, why: string): FieldsealError {
  return new FieldsealError("invalid_argument", `config: ${envName} (file key "${path}") ${why}`);
}
