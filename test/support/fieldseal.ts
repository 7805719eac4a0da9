import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { MemoryAudit } from "../../src/audit.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { parseConfig } from "../../src/config.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import type { KeyStore } from "../../src/keys/types.js";
import { createLogger } from "../../src/log.js";
import { type AppOverrides, type RunningServer, startServer } from "../../src/server/app.js";
import { bearer } from "./bearer.js";

/** A principal for tests: its name, scopes and clear-text token. */
export interface TestPrincipal {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly token: string;
}

export interface TestFieldseal {
  readonly server: RunningServer;
  readonly url: string;
  readonly port: number;
  readonly tokens: Record<string, string>;
  readonly logs: string[];
  readonly audit: MemoryAudit;
  readonly dataDir: string;
  /** A Connect client over HTTP/1.1 authenticated as `principal`. */
  client(principal: string): ReturnType<typeof createClient<typeof FieldsealService>>;
  close(): Promise<void>;
}

/** A principal as a test configures it: shorthand scopes and/or explicit allow rules, optional certificate. */
export interface TestPrincipalConfig {
  readonly name: string;
  readonly scopes?: string[];
  readonly allow?: unknown[];
  readonly certificate?: { subject?: string; san?: string };
}

export const DEFAULT_PRINCIPALS: ReadonlyArray<TestPrincipalConfig> = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt", "push"] },
  { name: "billing", scopes: ["decrypt:credit_card"] },
  { name: "ops", scopes: ["rotate", "rewrap"] },
];

/**
 * Starts a real Fieldseal server in this process on 127.0.0.1, port 0, with a local key store in a fresh
 * temp directory (or the given store), capturing logs and audit events.
 */
export async function startTestFieldseal(
  options: {
    principals?: ReadonlyArray<TestPrincipalConfig>;
    store?: KeyStore;
    settings?: Record<string, unknown>;
    env?: Record<string, string>;
    overrides?: AppOverrides;
  } = {},
): Promise<TestFieldseal> {
  const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-test-"));
  const tokens: Record<string, string> = {};
  const principals = (options.principals ?? DEFAULT_PRINCIPALS).map((p) => {
    const token = generateToken();
    tokens[p.name] = token;
    return { ...p, tokenSha256: hashToken(token) };
  });
  const config = parseConfig(
    { port: 0, principals, logLevel: "debug", ...options.settings },
    options.env ?? {},
    { dataDir, configFile: join(dataDir, "config.json"), cwd: dataDir },
  );
  const logs: string[] = [];
  const audit = new MemoryAudit();
  const store = options.store ?? new LocalFileKeyStore(join(dataDir, "keys"));
  const server = await startServer(config, store, {
    log: createLogger("debug", (line) => logs.push(line)),
    // A configured audit file is the real sink; otherwise events are kept in memory for the test.
    ...(options.settings?.audit === undefined ? { audit } : {}),
    ...options.overrides,
  });
  return {
    server,
    url: server.url,
    port: server.port,
    tokens,
    logs,
    audit,
    dataDir,
    client(principal) {
      const token = tokens[principal];
      return createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          interceptors: [bearer(token)],
        }),
      );
    },
    async close() {
      await server.shutdown(2000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
