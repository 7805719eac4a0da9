import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { assertScopes, type PrincipalConfig } from "./auth/principals.js";
import { assertKeyringName } from "./engine/names.js";
import { FieldsealError } from "./errors.js";
import type { LogLevel } from "./log.js";

/** Fieldseal's configuration, parsed and validated once at start-up. Nothing else reads process.env. */
export interface Config {
  readonly host: string;
  readonly port: number;
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
      };
  readonly defaultKeyring: string;
  /** Keyring whose versions open legacy tutorial blobs (matched by the tutorial secret's version label). */
  readonly legacyKeyring: string;
  readonly rotation: { readonly maxAgeMs: number | undefined; readonly sealBudget: number };
  readonly primaryRefreshMs: number;
  readonly maxRequestBytes: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
  readonly principals: readonly PrincipalConfig[];
  readonly webhook: {
    /** Principal name → shared secret for HMAC-signed webhooks (config file only: secrets stay out of env). */
    readonly hmacSecrets: Readonly<Record<string, string>>;
    readonly maxBodyBytes: number;
    readonly hmacToleranceSec: number;
  };
  readonly cognigy: {
    readonly baseUrl: string | undefined;
    readonly apiKey: string | undefined;
    readonly bearerToken: string | undefined;
    readonly mode: "context_inject" | "variables_put";
    readonly pushEnabled: boolean;
    readonly deadlineMs: number;
  };
  /** Prometheus text at GET /metrics on the service port. */
  readonly metrics: { readonly enabled: boolean };
}

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
    env: "FIELDSEAL_DEFAULT_KEYRING",
    file: "defaultKeyring",
    description: "Keyring used when a request names none",
    default: "default",
  },
  {
    env: "FIELDSEAL_LEGACY_KEYRING",
    file: "legacyKeyring",
    description: "Keyring that opens legacy tutorial blobs",
    default: "<default keyring>",
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
    env: "-",
    file: "webhook.hmacSecrets",
    description: "Principal name to HMAC-SHA256 secret (>= 32 chars) for signed webhooks",
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
    description: "Push sealed values from webhooks into the session",
    default: "true when a base URL is set",
  },
  {
    env: "FIELDSEAL_COGNIGY_DEADLINE_MS",
    file: "cognigy.deadlineMs",
    description: "Overall deadline of one push, retries included",
    default: "6000",
  },
  {
    env: "FIELDSEAL_METRICS_ENABLED",
    file: "metrics.enabled",
    description: "Serve Prometheus metrics at GET /metrics on the same port",
    default: "true",
  },
];

type Env = Readonly<Record<string, string | undefined>>;
type FileConfig = Record<string, unknown>;

/** Reads the config file (if any) and the environment into a validated Config. */
export function loadConfig(env: Env, cwd: string): Config {
  const dataDir = resolve(cwd, env.FIELDSEAL_DATA_DIR ?? ".fieldseal");
  const configFile = resolve(cwd, env.FIELDSEAL_CONFIG ?? `${dataDir}/config.json`);
  let file: FileConfig = {};
  try {
    file = parseFile(readFileSync(configFile, "utf8"), configFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || env.FIELDSEAL_CONFIG !== undefined) throw err;
  }
  return parseConfig(file, env, { dataDir: String(file.dataDir ?? dataDir), configFile, cwd });
}

function parseFile(text: string, path: string): FileConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FieldsealError(
      "invalid_argument",
      `config file ${path} is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new FieldsealError("invalid_argument", `config file ${path} must hold a JSON object`);
  }
  return parsed as FileConfig;
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
  const maxAgeDays = int("FIELDSEAL_ROTATE_MAX_AGE_DAYS", "rotation.maxAgeDays", 90, 0, 3650);
  const baseUrl = str("FIELDSEAL_COGNIGY_BASE_URL", "cognigy.baseUrl");
  if (baseUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(baseUrl)) {
    throw bad("FIELDSEAL_COGNIGY_BASE_URL", "cognigy.baseUrl", "must be an http(s) URL");
  }

  return {
    host: str("FIELDSEAL_HOST", "host") ?? "127.0.0.1",
    port: int("FIELDSEAL_PORT", "port", 7070, 0, 65535),
    dataDir: where.dataDir,
    configFile: where.configFile,
    keyStore:
      storeKind === "local"
        ? { kind: "local", dir: resolve(where.dataDir, "keys") }
        : {
            kind: "aws",
            region: str("FIELDSEAL_AWS_REGION", "keyStore.region"),
            endpoint: str("FIELDSEAL_AWS_ENDPOINT", "keyStore.endpoint"),
            secretPrefix: str("FIELDSEAL_AWS_SECRET_PREFIX", "keyStore.secretPrefix") ?? "fieldseal/",
          },
    defaultKeyring,
    legacyKeyring,
    rotation: {
      maxAgeMs: maxAgeDays === 0 ? undefined : maxAgeDays * 86_400_000,
      sealBudget: int("FIELDSEAL_SEAL_BUDGET", "rotation.sealBudget", 2 ** 28, 1, 2 ** 32),
    },
    primaryRefreshMs: int("FIELDSEAL_PRIMARY_REFRESH_MS", "primaryRefreshMs", 30_000, 100, 86_400_000),
    maxRequestBytes: int(
      "FIELDSEAL_MAX_REQUEST_BYTES",
      "maxRequestBytes",
      1024 * 1024,
      1024,
      64 * 1024 * 1024,
    ),
    shutdownGraceMs: int("FIELDSEAL_SHUTDOWN_GRACE_MS", "shutdownGraceMs", 10_000, 0, 600_000),
    logLevel: oneOf(
      "FIELDSEAL_LOG_LEVEL",
      "logLevel",
      ["debug", "info", "warn", "error", "silent"] as const,
      "info",
    ),
    principals: parsePrincipals(file.principals),
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
      pushEnabled: bool("FIELDSEAL_COGNIGY_PUSH", "cognigy.pushEnabled", baseUrl !== undefined),
      deadlineMs: int("FIELDSEAL_COGNIGY_DEADLINE_MS", "cognigy.deadlineMs", 6000, 100, 60_000),
    },
    metrics: { enabled: bool("FIELDSEAL_METRICS_ENABLED", "metrics.enabled", true) },
  };
}

function parsePrincipals(raw: unknown): PrincipalConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw))
    throw new FieldsealError("invalid_argument", "config: principals must be an array");
  const seen = new Set<string>();
  return raw.map((entry, i) => {
    const at = `config: principals[${i}]`;
    if (typeof entry !== "object" || entry === null)
      throw new FieldsealError("invalid_argument", `${at} must be an object`);
    const { name, tokenSha256, scopes } = entry as Record<string, unknown>;
    if (typeof name !== "string" || !/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
      throw new FieldsealError(
        "invalid_argument",
        `${at}.name must be 1-64 characters of A-Z, a-z, 0-9, _ . @ -`,
      );
    }
    if (seen.has(name)) throw new FieldsealError("invalid_argument", `${at}.name "${name}" is used twice`);
    seen.add(name);
    if (typeof tokenSha256 !== "string" || !/^[0-9a-f]{64}$/.test(tokenSha256)) {
      throw new FieldsealError("invalid_argument", `${at}.tokenSha256 must be 64 lowercase hex characters`);
    }
    if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === "string")) {
      throw new FieldsealError("invalid_argument", `${at}.scopes must be an array of strings`);
    }
    assertScopes(name, scopes);
    return { name, tokenSha256, scopes };
  });
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

function bad(envName: string, path: string, why: string): FieldsealError {
  return new FieldsealError("invalid_argument", `config: ${envName} (file key "${path}") ${why}`);
}
