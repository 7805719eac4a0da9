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
import {
  boolSetting,
  intSetting,
  oneOfSetting,
  refusal,
  type Setting,
  stringSetting,
  structuredSetting,
} from "./setting.js";

/** Fieldseal's configuration, parsed and validated once at start-up. Nothing else reads the environment. */
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
  /**
   * OpenTelemetry traces, from the standard OTEL_* variables only; off unless an exporter or endpoint is
   * set. The OTLP exporter reads the rest of its standard variables (headers, timeout, certificates) itself.
   */
  readonly tracing: {
    readonly enabled: boolean;
    readonly protocol: "http/protobuf" | "http/json";
    readonly serviceName: string;
  };
  /** Erasable keyrings and the database of their scope keys (docs/erasable-scopes.md). */
  readonly scopes: ScopesConfig;
}

/** Erasable keyrings: which ones, where their scope keys live, and how long a replica trusts a cached one. */
export interface ScopesConfig {
  /** Erasable keyring name → whether a forgotten scope may seal again under a new data key. */
  readonly erasable: Readonly<Record<string, { readonly reuseAfterForget: boolean }>>;
  readonly store:
    | { readonly kind: "sqlite"; readonly file: string }
    | {
        readonly kind: "dynamodb";
        readonly table: string;
        readonly region: string | undefined;
        readonly endpoint: string | undefined;
      };
  /** The bound after a forget: a scope key read from the database is used for at most this long. */
  readonly cacheTtlMs: number;
  readonly cacheEntries: number;
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

/** Certificate files for TLS, and the CA that client certificates must chain to for mTLS. */
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
  /** Refuse the handshake without a client certificate from clientCaFile (else bearer tokens still work). */
  readonly requireClientCert: boolean;
}

/** One setting as `--help` and the README show it: "-" where it has no environment variable or file key. */
export interface SettingDoc {
  readonly env: string;
  readonly file: string;
  readonly description: string;
  readonly default: string;
  readonly secret: boolean;
}

/**
 * Every setting but the connection limits, each declared once. parseConfig reads them through `read`,
 * `--help` and the README's table through SETTINGS. A new setting goes here (or in LIMIT_SETTINGS) and is
 * read in parseConfig; test/unit/settings-declared.test.ts checks that each one parses from both places.
 */
const S = {
  configFile: stringSetting({
    env: "FIELDSEAL_CONFIG",
    file: undefined,
    description: "Config file (JSON)",
    default: undefined,
    shownDefault: "<data dir>/config.json",
    example: "other-config.json",
  }),
  dataDir: stringSetting({
    env: "FIELDSEAL_DATA_DIR",
    file: "dataDir",
    description: "Directory for local keyrings and the generated config",
    default: ".fieldseal",
    example: "other-data",
  }),
  host: stringSetting({
    env: "FIELDSEAL_HOST",
    file: "host",
    description: "Address to listen on",
    default: "127.0.0.1",
    example: "::1",
  }),
  port: intSetting({
    env: "FIELDSEAL_PORT",
    file: "port",
    description: "Port for gRPC, gRPC-Web, Connect, webhooks and health (0: any free port)",
    default: 7070,
    min: 0,
    max: 65535,
  }),
  workers: structuredSetting({
    env: "FIELDSEAL_WORKERS",
    file: "workers",
    description:
      "Server processes sharing the port on this host (node:cluster); auto: one per available core. Connection limits and /metrics are per worker",
    shownDefault: "1",
    example: 2,
    parse: parseWorkers,
  }),
  keyStoreKind: oneOfSetting({
    env: "FIELDSEAL_KEY_STORE",
    file: "keyStore.kind",
    description: "Where keyrings live: local or aws",
    values: ["local", "aws"] as const,
    default: "local",
  }),
  awsRegion: stringSetting({
    env: "FIELDSEAL_AWS_REGION",
    file: "keyStore.region",
    description: "AWS region for Secrets Manager and DynamoDB (else the SDK's default chain)",
    default: undefined,
    example: "eu-central-1",
  }),
  awsEndpoint: stringSetting({
    env: "FIELDSEAL_AWS_ENDPOINT",
    file: "keyStore.endpoint",
    description: "Secrets Manager and DynamoDB endpoint override (for emulators)",
    default: undefined,
    example: "http://127.0.0.1:5000",
  }),
  secretPrefix: stringSetting({
    env: "FIELDSEAL_AWS_SECRET_PREFIX",
    file: "keyStore.secretPrefix",
    description: "Secret name prefix; a keyring's secret is prefix + name",
    default: "fieldseal/",
    example: "prod/fieldseal/",
  }),
  legacySecretIds: structuredSetting({
    env: undefined,
    file: "keyStore.legacySecretIds",
    description: "Keyring name to an existing secret name or ARN (e.g. the tutorial's secret) to adopt",
    shownDefault: "{}",
    example: { cognigy: "cognigy-session-key" },
    parse: parseLegacySecretIds,
  }),
  defaultKeyring: stringSetting({
    env: "FIELDSEAL_DEFAULT_KEYRING",
    file: "defaultKeyring",
    description: "Keyring used when a request names none",
    default: "default",
    example: "cards",
    check: keyringNameProblem,
  }),
  keyrings: structuredSetting({
    env: "FIELDSEAL_KEYRINGS",
    file: "keyrings",
    description: "More keyrings to create at start-up when missing (comma-separated)",
    shownDefault: "-",
    example: "cards,ids",
    parse: nameList,
  }),
  fieldFormats: structuredSetting({
    env: "FIELDSEAL_FIELD_FORMATS",
    file: "fields",
    description:
      'Field name to mask format (JSON), e.g. {"credit_card": {"format": "card"}}: checked when sealed, mask returned (docs/masks.md)',
    shownDefault: "{}",
    example: '{"credit_card": {"format": "card"}}',
    parse: (raw) => parseFieldFormats(raw, 'FIELDSEAL_FIELD_FORMATS (file key "fields")'),
  }),
  keyringFields: structuredSetting({
    env: undefined,
    file: "keyringFields",
    description: "Keyring name to its own field formats, merged over fields (docs/masks.md)",
    shownDefault: "{}",
    example: { cards: { pan: { format: "card" } } },
    // Checked here; merged over `fields` in parseConfig.
    parse: (raw): unknown => {
      parseKeyringFieldFormats(raw, new Map(), "keyringFields");
      return raw;
    },
  }),
  legacyKeyring: stringSetting({
    env: "FIELDSEAL_LEGACY_KEYRING",
    file: "legacyKeyring",
    description: "Keyring that opens legacy tutorial blobs",
    default: undefined,
    shownDefault: "<default keyring>",
    example: "tutorial",
    check: keyringNameProblem,
  }),
  legacyEnabled: boolSetting({
    env: "FIELDSEAL_LEGACY_ENABLED",
    file: "legacyEnabled",
    description: "Open and rewrap legacy tutorial blobs at all (false after migration: legacy_disabled)",
    default: true,
  }),
  rotateMaxAgeDays: intSetting({
    env: "FIELDSEAL_ROTATE_MAX_AGE_DAYS",
    file: "rotation.maxAgeDays",
    description: "Rotate the primary key when older (0: never by age)",
    default: 90,
    min: 0,
    max: 3650,
  }),
  sealBudget: intSetting({
    env: "FIELDSEAL_SEAL_BUDGET",
    file: "rotation.sealBudget",
    description: "Rotate the primary key after this many seals (NIST SP 800-38D allows 2^32)",
    default: 2 ** 28,
    shownDefault: "268435456 (2^28)",
    min: 1,
    max: 2 ** 32,
    check: sealBudgetProblem,
  }),
  storeWritesPerDay: intSetting({
    env: "FIELDSEAL_STORE_WRITES_PER_DAY",
    file: "rotation.storeWritesPerDay",
    description:
      "Key store writes per keyring per day that seal reservations are sized for (Secrets Manager sustains about 144)",
    default: 48,
    min: 1,
    max: 86_400,
  }),
  primaryRefreshMs: intSetting({
    env: "FIELDSEAL_PRIMARY_REFRESH_MS",
    file: "primaryRefreshMs",
    description: "How often cached key state is refreshed from the store",
    default: 30_000,
    min: 100,
    max: 86_400_000,
  }),
  maxRequestBytes: intSetting({
    env: "FIELDSEAL_MAX_REQUEST_BYTES",
    file: "maxRequestBytes",
    description: "Largest request body accepted",
    default: 1024 * 1024,
    min: 1024,
    max: 64 * 1024 * 1024,
  }),
  grpcFastPath: oneOfSetting({
    env: "FIELDSEAL_GRPC_FAST_PATH",
    file: "grpcFastPath",
    description: "on: plain unary gRPC calls take the fast path; off: connect-node serves every call",
    values: ["on", "off"] as const,
    default: "on",
  }),
  shutdownGraceMs: intSetting({
    env: "FIELDSEAL_SHUTDOWN_GRACE_MS",
    file: "shutdownGraceMs",
    description: "How long in-flight calls may finish after SIGTERM",
    default: 10_000,
    min: 0,
    max: 600_000,
  }),
  logLevel: oneOfSetting({
    env: "FIELDSEAL_LOG_LEVEL",
    file: "logLevel",
    description: "debug, info, warn, error or silent",
    values: ["debug", "info", "warn", "error", "silent"] as const,
    default: "info",
  }),
  principals: structuredSetting({
    env: undefined,
    file: "principals",
    description:
      "Callers: name, tokenSha256 and/or certificate, scopes or allow (see Principals below; SIGHUP reloads them)",
    shownDefault: "[] (first start writes an admin)",
    example: [{ name: "svc", tokenSha256: "0".repeat(64), scopes: ["admin"] }],
    parse: parsePrincipals,
  }),
  auditFile: stringSetting({
    env: "FIELDSEAL_AUDIT_FILE",
    file: "audit.file",
    description: "Append audit events (JSON lines) to this file, created 0600",
    default: undefined,
    shownDefault: "- (stdout)",
    example: "audit.jsonl",
  }),
  tlsCertFile: stringSetting({
    env: "FIELDSEAL_TLS_CERT_FILE",
    file: "tls.certFile",
    description:
      "Server certificate chain (PEM); with the key file, serve TLS only (h2 and http/1.1 by ALPN)",
    default: undefined,
    shownDefault: "- (cleartext)",
    example: "server.pem",
  }),
  tlsKeyFile: stringSetting({
    env: "FIELDSEAL_TLS_KEY_FILE",
    file: "tls.keyFile",
    description: "Server private key (PEM)",
    default: undefined,
    example: "server-key.pem",
  }),
  tlsClientCaFile: stringSetting({
    env: "FIELDSEAL_TLS_CLIENT_CA_FILE",
    file: "tls.clientCaFile",
    description: "CA bundle (PEM) that client certificates must chain to; enables mTLS principals",
    default: undefined,
    shownDefault: "- (no client certificates)",
    example: "clients-ca.pem",
  }),
  tlsRequireClientCert: boolSetting({
    env: "FIELDSEAL_TLS_REQUIRE_CLIENT_CERT",
    file: "tls.requireClientCert",
    description: "Refuse TLS handshakes without a trusted client certificate",
    default: false,
  }),
  webhookMaxBodyBytes: intSetting({
    env: "FIELDSEAL_WEBHOOK_MAX_BODY_BYTES",
    file: "webhook.maxBodyBytes",
    description: "Largest webhook body accepted",
    default: 64 * 1024,
    min: 1024,
    max: 16 * 1024 * 1024,
  }),
  webhookToleranceSec: intSetting({
    env: "FIELDSEAL_WEBHOOK_TOLERANCE_SEC",
    file: "webhook.hmacToleranceSec",
    description: "Accepted clock skew of signed webhooks; replays inside it are refused",
    default: 300,
    min: 1,
    max: 3600,
  }),
  webhookReplayCapacity: intSetting({
    env: "FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER",
    file: "webhook.hmacReplayCapacityPerSigner",
    description: "Signed webhooks remembered per signer key id; when full, that signer's window shrinks",
    default: 100_000,
    min: 1,
    max: 10_000_000,
  }),
  webhookAcceptV1: boolSetting({
    env: "FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES",
    file: "webhook.hmacAcceptV1",
    description: "Also accept v1 (body-only) webhook signatures; for a migration to v2 only",
    default: false,
  }),
  webhookHmacSecrets: structuredSetting({
    env: undefined,
    file: "webhook.hmacSecrets",
    description:
      "Principal name to HMAC-SHA256 secret (>= 32 chars) for signed webhooks (the file must then be 0600 or 0400)",
    shownDefault: "{}",
    secret: true,
    example: { bot: "an-example-secret-of-at-least-32-characters" },
    parse: parseHmacSecrets,
  }),
  cognigyBaseUrl: stringSetting({
    env: "FIELDSEAL_COGNIGY_BASE_URL",
    file: "cognigy.baseUrl",
    description: "Cognigy.AI REST API base, e.g. https://api-trial.cognigy.ai",
    default: undefined,
    shownDefault: "- (push disabled)",
    example: "https://api-trial.cognigy.ai",
    check: httpUrlProblem,
  }),
  cognigyApiKey: stringSetting({
    env: "FIELDSEAL_COGNIGY_API_KEY",
    file: "cognigy.apiKey",
    description: "Cognigy.AI API key (X-API-Key)",
    default: undefined,
    secret: true,
    example: "example-api-key",
  }),
  cognigyBearerToken: stringSetting({
    env: "FIELDSEAL_COGNIGY_BEARER_TOKEN",
    file: "cognigy.bearerToken",
    description: "Bearer token for the tutorial's variables PUT mode",
    default: undefined,
    secret: true,
    example: "example-bearer-token",
  }),
  cognigyMode: oneOfSetting({
    env: "FIELDSEAL_COGNIGY_MODE",
    file: "cognigy.mode",
    description: "context_inject (documented API) or variables_put (tutorial)",
    values: ["context_inject", "variables_put"] as const,
    default: "context_inject",
  }),
  cognigyPush: boolSetting({
    env: "FIELDSEAL_COGNIGY_PUSH",
    file: "cognigy.pushEnabled",
    description: "Also push sealed values from webhooks into the session (needs a base URL)",
    default: false,
    shownDefault: "false (flows store answers)",
  }),
  cognigyDeadlineMs: intSetting({
    env: "FIELDSEAL_COGNIGY_DEADLINE_MS",
    file: "cognigy.deadlineMs",
    description: "Overall deadline of one push, retries included",
    default: 6000,
    min: 100,
    max: 60_000,
  }),
  cognigyMaxAttempts: intSetting({
    env: "FIELDSEAL_COGNIGY_MAX_ATTEMPTS",
    file: "cognigy.maxAttempts",
    description: "Most attempts of one push (the first one included)",
    default: 5,
    min: 1,
    max: 20,
  }),
  cognigyBackoffBaseMs: intSetting({
    env: "FIELDSEAL_COGNIGY_BACKOFF_BASE_MS",
    file: "cognigy.baseBackoffMs",
    description: "Backoff window of the first retry; it doubles per retry (full jitter)",
    default: 100,
    min: 0,
    max: 60_000,
  }),
  cognigyBackoffCapMs: intSetting({
    env: "FIELDSEAL_COGNIGY_BACKOFF_CAP_MS",
    file: "cognigy.backoffCapMs",
    description: "Largest backoff window between two attempts",
    default: 2000,
    min: 0,
    max: 60_000,
  }),
  cognigyRetryAfterCapMs: intSetting({
    env: "FIELDSEAL_COGNIGY_RETRY_AFTER_CAP_MS",
    file: "cognigy.retryAfterCapMs",
    description: "Longest wait taken from a 429's Retry-After",
    default: 5000,
    min: 0,
    max: 60_000,
  }),
  cognigyRateLimit: intSetting({
    env: "FIELDSEAL_COGNIGY_RATE_LIMIT",
    file: "cognigy.rateLimit",
    description:
      "Cognigy REST requests per window from this server, pushes and retries together, split over its workers (SaaS: 1,000 per 5 min per IP)",
    default: 1000,
    min: 1,
    max: 100_000,
  }),
  cognigyRateWindowSec: intSetting({
    env: "FIELDSEAL_COGNIGY_RATE_WINDOW_SEC",
    file: "cognigy.rateWindowSec",
    description: "Window of FIELDSEAL_COGNIGY_RATE_LIMIT, in seconds",
    default: 300,
    min: 1,
    max: 86_400,
  }),
  otelSdkDisabled: boolSetting({
    env: "OTEL_SDK_DISABLED",
    file: undefined,
    description: "OpenTelemetry: true turns tracing off whatever else is set",
    default: false,
  }),
  otelTracesExporter: oneOfSetting({
    env: "OTEL_TRACES_EXPORTER",
    file: undefined,
    description:
      "OpenTelemetry: otlp exports traces, none does not; unset, traces go out when an OTLP endpoint is set",
    values: ["otlp", "none"] as const,
    default: undefined,
    shownDefault: "- (otlp when an endpoint is set)",
  }),
  otelEndpoint: stringSetting({
    env: "OTEL_EXPORTER_OTLP_ENDPOINT",
    file: undefined,
    description:
      "OpenTelemetry: OTLP/HTTP base URL (traces go to <url>/v1/traces); setting it turns tracing on",
    default: undefined,
    shownDefault: "- (tracing off)",
    example: "http://127.0.0.1:4318",
    check: httpUrlProblem,
  }),
  otelTracesEndpoint: stringSetting({
    env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    file: undefined,
    description:
      "OpenTelemetry: full OTLP/HTTP URL for traces (wins over the base URL); setting it turns tracing on",
    default: undefined,
    shownDefault: "- (tracing off)",
    example: "http://127.0.0.1:4318/v1/traces",
    check: httpUrlProblem,
  }),
  otelProtocol: oneOfSetting({
    env: "OTEL_EXPORTER_OTLP_PROTOCOL",
    file: undefined,
    description: "OpenTelemetry: OTLP encoding over HTTP (grpc is not supported)",
    values: ["http/protobuf", "http/json"] as const,
    default: "http/protobuf",
  }),
  otelTracesProtocol: oneOfSetting({
    env: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    file: undefined,
    description: "OpenTelemetry: OTLP encoding for traces (wins over OTEL_EXPORTER_OTLP_PROTOCOL)",
    values: ["http/protobuf", "http/json"] as const,
    default: undefined,
    shownDefault: "- (OTEL_EXPORTER_OTLP_PROTOCOL)",
  }),
  otelServiceName: stringSetting({
    env: "OTEL_SERVICE_NAME",
    file: undefined,
    description: "OpenTelemetry: the service.name of every span",
    default: "fieldseal",
    example: "fieldseal-eu",
  }),
  erasableKeyrings: structuredSetting({
    env: "FIELDSEAL_ERASABLE_KEYRINGS",
    file: "scopes.erasableKeyrings",
    description:
      "Erasable keyrings: each scope's values sealed under its own data key, ForgetScope erases (comma-separated)",
    shownDefault: "-",
    example: "cards,ids",
    parse: nameList,
  }),
  reuseAfterForget: structuredSetting({
    env: "FIELDSEAL_REUSE_AFTER_FORGET",
    file: "scopes.reuseAfterForget",
    description:
      "Erasable keyrings where a forgotten scope may seal again under a new data key (else scope_forgotten)",
    shownDefault: "-",
    example: "cards",
    parse: nameList,
  }),
  scopeStore: oneOfSetting({
    env: "FIELDSEAL_SCOPE_STORE",
    file: "scopes.store",
    description:
      "Scope key database: sqlite (<data dir>/scopes.db) or dynamodb (region and endpoint as Secrets Manager's)",
    values: ["dynamodb", "sqlite"] as const,
    default: undefined,
    shownDefault: "sqlite (local key store), dynamodb (aws)",
  }),
  scopeTable: stringSetting({
    env: "FIELDSEAL_SCOPE_TABLE",
    file: "scopes.table",
    description: "DynamoDB table of scope keys (partition key keyring, sort key scope, both strings)",
    default: "fieldseal-scope-keys",
    example: "other-scope-keys",
  }),
  scopeKeyTtlMs: intSetting({
    env: "FIELDSEAL_SCOPE_KEY_TTL_MS",
    file: "scopes.cacheTtlMs",
    description:
      "A replica uses a scope key read from the database for at most this long; ForgetScope answers after it (every replica must use the same value or less)",
    default: 1_000,
    min: 0,
    max: 60_000,
  }),
  scopeKeyCacheEntries: intSetting({
    env: "FIELDSEAL_SCOPE_KEY_CACHE_ENTRIES",
    file: "scopes.cacheEntries",
    description: "Most scope keys a replica holds in memory (least recently used go first)",
    default: 10_000,
    min: 1,
    max: 1_000_000,
  }),
  metricsEnabled: boolSetting({
    env: "FIELDSEAL_METRICS_ENABLED",
    file: "metrics.enabled",
    description: "Serve Prometheus metrics at GET /metrics on the same port",
    default: true,
  }),
};

/** The connection limits as settings: config-file key `limits.<name>`. */
const LIMITS = Object.fromEntries(
  Object.entries(LIMIT_SETTINGS).map(([name, d]) => [name, intSetting({ ...d, file: `limits.${name}` })]),
) as { readonly [K in keyof ConnectionLimits]: Setting<number> };

/** Every declared setting, in the order `--help` and the README list them. */
export const DECLARED_SETTINGS: readonly Setting<unknown>[] = [...Object.values(S), ...Object.values(LIMITS)];

/** Every setting, for `--help` and the README's table. */
export const SETTINGS: readonly SettingDoc[] = DECLARED_SETTINGS.map((s) => ({
  env: s.env ?? "-",
  file: s.file ?? "-",
  description: s.description,
  default: s.shownDefault,
  secret: s.secret,
}));
type Env = Readonly<Record<string, string | undefined>>;
type FileConfig = Record<string, unknown>;

/**
 * Reads the config file (if any) and the environment into a validated Config. The environment names the
 * file (FIELDSEAL_CONFIG, else FIELDSEAL_DATA_DIR's config.json); the data directory may then also come
 * from the file, the environment first as for every setting.
 */
export function loadConfig(env: Env, cwd: string): Config {
  const named = read(S.configFile, {}, env);
  const configFile = resolve(cwd, named ?? `${resolve(cwd, read(S.dataDir, {}, env))}/config.json`);
  let file: FileConfig = {};
  let text = "";
  let found = false;
  try {
    text = readFileSync(configFile, "utf8");
    found = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" || named !== undefined) {
      throw new FieldsealError(
        "failed_precondition",
        `cannot read config file ${configFile}: ${describeFsError(code)} (set FIELDSEAL_CONFIG to another file, or fix this one)`,
      );
    }
  }
  if (found) file = parseFile(text, configFile);
  let config: Config;
  try {
    const dataDir = resolve(cwd, read(S.dataDir, file, env));
    config = parseConfig(file, env, { dataDir, configFile, cwd });
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
  const secrets = DECLARED_SETTINGS.filter((d) => d.secret && d.file !== undefined)
    .map((d) => d.file as string)
    .filter((path) => atPath(file, path) !== undefined);
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
  const get = <T>(setting: Setting<T>): T => read(setting, file, env);

  const storeKind = get(S.keyStoreKind);
  const defaultKeyring = get(S.defaultKeyring);
  const legacyKeyring = get(S.legacyKeyring) ?? defaultKeyring;
  const certFile = get(S.tlsCertFile);
  const keyFile = get(S.tlsKeyFile);
  const clientCaFile = get(S.tlsClientCaFile);
  const requireClientCert = get(S.tlsRequireClientCert);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw bad(S.tlsCertFile, "and tls.keyFile must be given together");
  }
  if (certFile === undefined && (clientCaFile !== undefined || requireClientCert)) {
    throw bad(S.tlsClientCaFile, "needs tls.certFile and tls.keyFile");
  }
  if (requireClientCert && clientCaFile === undefined) {
    throw bad(S.tlsRequireClientCert, "needs tls.clientCaFile");
  }
  const auditFile = get(S.auditFile);
  const secretPrefix = get(S.secretPrefix);
  const maxAgeDays = get(S.rotateMaxAgeDays);
  const baseUrl = get(S.cognigyBaseUrl);
  const fields = get(S.fieldFormats);

  return {
    host: get(S.host),
    port: get(S.port),
    workers: get(S.workers),
    dataDir: where.dataDir,
    configFile: where.configFile,
    keyStore:
      storeKind === "local"
        ? { kind: "local", dir: resolve(where.dataDir, "keys") }
        : {
            kind: "aws",
            region: get(S.awsRegion),
            endpoint: get(S.awsEndpoint),
            secretPrefix,
            legacySecretIds: ownSecrets(get(S.legacySecretIds), secretPrefix),
          },
    defaultKeyring,
    keyrings: get(S.keyrings),
    fields,
    keyringFields: parseKeyringFieldFormats(get(S.keyringFields), fields, "keyringFields"),
    legacyKeyring,
    legacyEnabled: get(S.legacyEnabled),
    rotation: {
      maxAgeMs: maxAgeDays === 0 ? undefined : maxAgeDays * 86_400_000,
      sealBudget: get(S.sealBudget),
      storeWritesPerDay: get(S.storeWritesPerDay),
    },
    primaryRefreshMs: get(S.primaryRefreshMs),
    maxRequestBytes: get(S.maxRequestBytes),
    grpcFastPath: get(S.grpcFastPath) === "on",
    shutdownGraceMs: get(S.shutdownGraceMs),
    logLevel: get(S.logLevel),
    principals: get(S.principals),
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
      hmacSecrets: get(S.webhookHmacSecrets),
      maxBodyBytes: get(S.webhookMaxBodyBytes),
      hmacToleranceSec: get(S.webhookToleranceSec),
      hmacReplayCapacityPerSigner: get(S.webhookReplayCapacity),
      hmacAcceptV1: get(S.webhookAcceptV1),
    },
    cognigy: {
      baseUrl,
      apiKey: get(S.cognigyApiKey),
      bearerToken: get(S.cognigyBearerToken),
      mode: get(S.cognigyMode),
      // Off by default: the flow stores the webhook's answer itself (src/cognigy/webhook.ts says why).
      pushEnabled: get(S.cognigyPush),
      deadlineMs: get(S.cognigyDeadlineMs),
      maxAttempts: get(S.cognigyMaxAttempts),
      baseBackoffMs: get(S.cognigyBackoffBaseMs),
      backoffCapMs: get(S.cognigyBackoffCapMs),
      retryAfterCapMs: get(S.cognigyRetryAfterCapMs),
      rateLimit: get(S.cognigyRateLimit),
      rateWindowSec: get(S.cognigyRateWindowSec),
    },
    metrics: { enabled: get(S.metricsEnabled) },
    tracing: tracingFrom(get),
    scopes: scopesFrom(get, storeKind, where.dataDir),
    limits: Object.fromEntries(
      Object.entries(LIMITS).map(([name, setting]) => [name, get(setting)]),
    ) as unknown as ConnectionLimits,
  };
}

/** Tracing is on when an exporter or an endpoint says so, and OTEL_SDK_DISABLED does not say otherwise. */
function tracingFrom(get: <T>(setting: Setting<T>) => T): Config["tracing"] {
  const exporter = get(S.otelTracesExporter);
  const endpoint = get(S.otelTracesEndpoint) ?? get(S.otelEndpoint);
  const tracesProtocol = get(S.otelTracesProtocol);
  return {
    enabled:
      !get(S.otelSdkDisabled) && (exporter === "otlp" || (exporter === undefined && endpoint !== undefined)),
    protocol: tracesProtocol ?? get(S.otelProtocol),
    serviceName: get(S.otelServiceName),
  };
}

/** Erasable keyrings and their scope-key database; the DynamoDB store shares the AWS region and endpoint. */
function scopesFrom(
  get: <T>(setting: Setting<T>) => T,
  storeKind: "local" | "aws",
  dataDir: string,
): ScopesConfig {
  const erasable = get(S.erasableKeyrings);
  const reuse = get(S.reuseAfterForget);
  const notErasable = reuse.find((name) => !erasable.includes(name));
  if (notErasable !== undefined) {
    throw bad(
      S.reuseAfterForget,
      `names keyring "${notErasable}", which is not in FIELDSEAL_ERASABLE_KEYRINGS`,
    );
  }
  const kind = get(S.scopeStore) ?? (storeKind === "aws" ? "dynamodb" : "sqlite");
  return {
    erasable: Object.fromEntries(erasable.map((name) => [name, { reuseAfterForget: reuse.includes(name) }])),
    store:
      kind === "sqlite"
        ? { kind: "sqlite", file: resolve(dataDir, "scopes.db") }
        : {
            kind: "dynamodb",
            table: get(S.scopeTable),
            region: get(S.awsRegion),
            endpoint: get(S.awsEndpoint),
          },
    cacheTtlMs: get(S.scopeKeyTtlMs),
    cacheEntries: get(S.scopeKeyCacheEntries),
  };
}

/** The most `fieldseal serve` processes one host runs (FIELDSEAL_WORKERS). */
export const MAX_WORKERS = 256;

/** FIELDSEAL_WORKERS: a whole number from 1 to MAX_WORKERS, or `auto` (one per available core). */
function parseWorkers(raw: unknown): number {
  if (raw === undefined || raw === null) return 1;
  if (raw === "auto") return Math.min(availableParallelism(), MAX_WORKERS);
  const n =
    typeof raw === "number" ? raw : typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw refusal(`must be a whole number from 1 to ${MAX_WORKERS} or auto`);
  }
  return n;
}

function httpUrlProblem(url: string): string | undefined {
  return /^https?:\/\/[^\s]+$/.test(url) ? undefined : "must be an http(s) URL";
}

/**
 * A setting's value: its environment variable when set and not empty, else its config-file key, parsed by
 * its declaration. A refusal is reported with both names.
 */
function read<T>(setting: Setting<T>, file: FileConfig, env: Env): T {
  const fromEnv = setting.env === undefined ? undefined : env[setting.env];
  const raw =
    fromEnv !== undefined && fromEnv !== ""
      ? fromEnv
      : setting.file === undefined
        ? undefined
        : atPath(file, setting.file);
  try {
    return setting.parse(raw);
  } catch (err) {
    if (!isFieldsealError(err) || err.message.startsWith("config: ")) throw err;
    throw bad(setting, err.message);
  }
}

/** The value at a dotted key path of the config file, or undefined. */
function atPath(file: FileConfig, path: string): unknown {
  let node: unknown = file;
  for (const part of path.split(".")) {
    node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[part] : undefined;
  }
  return node;
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

function parseHmacSecrets(raw: unknown): Record<string, string> {
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
function parseLegacySecretIds(raw: unknown): Record<string, string> {
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
  return out;
}

/** Refuses two keyrings on one secret, or a keyring on another keyring's own secret (see above). */
function ownSecrets(out: Record<string, string>, secretPrefix: string): Record<string, string> {
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
function nameList(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  const items =
    typeof raw === "string" ? raw.split(",").map((s) => s.trim()) : Array.isArray(raw) ? raw : undefined;
  if (items === undefined) throw refusal("must be a comma-separated string or an array of keyring names");
  const names = new Set<string>();
  for (const item of items) {
    if (item === "") continue;
    if (typeof item !== "string") throw refusal("must hold keyring names (strings)");
    const problem = keyringNameProblem(item);
    if (problem !== undefined) throw refusal(problem);
    names.add(item);
  }
  return [...names];
}

/** What is wrong with a keyring name, or undefined. */
function keyringNameProblem(name: string): string | undefined {
  try {
    assertKeyringName(name);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * A server reserves seals in blocks of SEAL_BLOCK (src/keys/keyrings.ts), and a block never spans two key
 * versions, so a smaller budget would let the server validate its config and then refuse to start.
 */
const SEAL_BLOCK = 65_536;

function sealBudgetProblem(n: number): string | undefined {
  return n < SEAL_BLOCK
    ? `must be at least ${SEAL_BLOCK} (the seals a server reserves at a time), got ${n}`
    : undefined;
}

/** A configuration error naming the setting by its environment variable and its config-file key. */
function bad(setting: Setting<unknown>, why: string): FieldsealError {
  const names =
    setting.env === undefined
      ? `${setting.file}:`
      : setting.file === undefined
        ? setting.env
        : `${setting.env} (file key "${setting.file}")`;
  return new FieldsealError("invalid_argument", `config: ${names} ${why}`);
}
