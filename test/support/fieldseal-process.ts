/**
 * Starts a real `fieldseal serve` child process (bin/fieldseal.js on the compiled dist/, which
 * test/support/build-dist.ts keeps current) on the AWS Secrets Manager key store, the way an operator runs
 * a replica: its own data directory, a config file with known principals, settings from the environment.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "./moto.js";

const BIN = resolve(import.meta.dirname, "../../bin/fieldseal.js");
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const LISTENING = /fieldseal listening on (http:\/\/127\.0\.0\.1:(\d+)) \(key store: (\w+)\)/;

export const PROCESS_PRINCIPALS: ReadonlyArray<{ name: string; scopes: string[] }> = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
  { name: "ops", scopes: ["rotate", "rewrap"] },
];

export interface FieldsealProcessOptions {
  /** Secrets Manager endpoint: moto, or a proxy in front of it. */
  readonly awsEndpoint: string;
  /** Unique per test, so tests sharing one moto never see each other's keyrings. */
  readonly secretPrefix: string;
  /** How often replicas re-read the primary; small so replicas converge quickly. Default 200. */
  readonly primaryRefreshMs?: number;
  /** More FIELDSEAL_* settings. */
  readonly env?: Readonly<Record<string, string>>;
  /** More config file content, e.g. `{ keyStore: { legacySecretIds: {...} } }`. */
  readonly config?: Readonly<Record<string, unknown>>;
}

export interface FieldsealProcess {
  readonly url: string;
  readonly port: number;
  /** `127.0.0.1:<port>`, for grpc-js. */
  readonly address: string;
  readonly pid: number;
  /** Clear-text bearer token per principal in PROCESS_PRINCIPALS. */
  readonly tokens: Readonly<Record<string, string>>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines (stderr) parsed, in order. */
  logs(): Record<string, unknown>[];
  /** A Connect client over HTTP/1.1 authenticated as `principal`. */
  client(principal: string): ReturnType<typeof createClient<typeof FieldsealService>>;
  /** SIGTERM, then SIGKILL if it has not exited within a bound. Resolves with the exit code (null if killed). */
  stop(): Promise<number | null>;
}

/** Starts `fieldseal serve` on 127.0.0.1, port 0, and resolves once it prints its "listening on" line. */
export async function startFieldsealProcess(options: FieldsealProcessOptions): Promise<FieldsealProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-proc-"));
  const tokens: Record<string, string> = {};
  const principals = PROCESS_PRINCIPALS.map((p) => {
    const token = generateToken();
    tokens[p.name] = token;
    return { name: p.name, tokenSha256: hashToken(token), scopes: p.scopes };
  });
  const configFile = join(dataDir, "config.json");
  writeFileSync(configFile, JSON.stringify({ principals, ...options.config }), { mode: 0o600 });

  // A clean environment: nothing of the caller's (real AWS profiles, proxies) leaks into the replica.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dataDir,
    FIELDSEAL_DATA_DIR: dataDir,
    FIELDSEAL_CONFIG: configFile,
    FIELDSEAL_HOST: "127.0.0.1",
    FIELDSEAL_PORT: "0",
    FIELDSEAL_KEY_STORE: "aws",
    FIELDSEAL_AWS_ENDPOINT: options.awsEndpoint,
    FIELDSEAL_AWS_REGION: MOTO_REGION,
    FIELDSEAL_AWS_SECRET_PREFIX: options.secretPrefix,
    FIELDSEAL_PRIMARY_REFRESH_MS: String(options.primaryRefreshMs ?? 200),
    FIELDSEAL_SHUTDOWN_GRACE_MS: "2000",
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: "true",
    ...options.env,
  };
  const child = spawn(process.execPath, [BIN, "serve"], {
    cwd: dataDir,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const stop = async () => {
    const code = await stopProcess(child, exited);
    rmSync(dataDir, { recursive: true, force: true });
    return code;
  };

  let match: RegExpExecArray | null = null;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (match === null && Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    match = LISTENING.exec(stdout);
    if (match === null) await new Promise((r) => setTimeout(r, 25));
  }
  if (match === null || match[1] === undefined) {
    await stop();
    throw new Error(`fieldseal serve did not start:\n${stdout}\n${stderr}`.slice(-4000));
  }
  if (match[3] !== "aws") {
    await stop();
    throw new Error(`fieldseal serve started on key store "${match[3]}", not aws`);
  }
  const url = match[1];
  const port = Number(match[2]);
  return {
    url,
    port,
    address: `127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    tokens,
    output: () => stdout + stderr,
    logs: () =>
      stderr
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    client(principal) {
      const token = tokens[principal];
      return createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: url,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ],
        }),
      );
    },
    stop,
  };
}

/** Stops every process given, even if some fail to stop. */
export async function stopAll(processes: Iterable<FieldsealProcess | undefined>): Promise<void> {
  await Promise.allSettled([...processes].map((p) => p?.stop()));
}

async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return child.exitCode;
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const killTimer = setTimeout(() => signal("SIGKILL"), STOP_TIMEOUT_MS);
  try {
    return await exited;
  } finally {
    clearTimeout(killTimer);
  }
}
