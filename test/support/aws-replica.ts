/**
 * A Fieldseal replica as an operator runs one on AWS: a real `fieldseal serve` child process on the
 * Secrets Manager key store (moto, or a proxy in front of it), with known principals.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "./bearer.js";
import { startFieldsealProcess as startGeneral } from "./fieldseal-process.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "./moto.js";

export const PROCESS_PRINCIPALS: ReadonlyArray<{ name: string; scopes: string[] }> = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
  { name: "ops", scopes: ["rotate", "rewrap"] },
  { name: "migrator", scopes: ["rewrap", "legacy:decrypt", "legacy:rewrap"] },
];

export interface AwsReplicaOptions {
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

export interface AwsReplica {
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

/** Starts a replica on 127.0.0.1, port 0, on the aws key store, once it reports listening. */
export async function startAwsReplica(options: AwsReplicaOptions): Promise<AwsReplica> {
  const proc = await startGeneral({
    principals: PROCESS_PRINCIPALS,
    settings: { ...options.config },
    env: {
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
    },
    startTimeoutMs: 30_000,
  });
  if (!/\(key store: aws\)/.test(proc.stdout())) {
    await proc.stop();
    throw new Error("fieldseal serve did not start on the aws key store");
  }
  const { url, port, tokens } = proc;
  return {
    url,
    port,
    address: `127.0.0.1:${port}`,
    pid: proc.child.pid ?? 0,
    tokens,
    output: () => proc.stdout() + proc.stderr(),
    logs: () =>
      proc
        .stderr()
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
          interceptors: [bearer(token)],
        }),
      );
    },
    async stop() {
      const code = await proc.stop();
      return typeof code === "number" ? code : null;
    },
  };
}

/** Stops every process given, even if some fail to stop. */
export async function stopAll(processes: Iterable<AwsReplica | undefined>): Promise<void> {
  await Promise.allSettled([...processes].map((p) => p?.stop()));
}
