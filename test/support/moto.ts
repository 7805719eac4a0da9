/**
 * Runs moto's Secrets Manager emulator (installed into .venv by scripts/test-deps.sh) on a free loopback
 * port, and tears it down with its whole process group.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

export interface MotoServer {
  readonly endpoint: string;
  stop(): Promise<void>;
}

const MOTO_BIN = resolve(import.meta.dirname, "../../.venv/bin/moto_server");
const READY_ATTEMPTS = 150;

/** Fake credentials and region for the emulator; real AWS is never reached from tests. */
export const MOTO_REGION = "us-east-1";
export const MOTO_CREDENTIALS = { accessKeyId: "testing", secretAccessKey: "testing" };

/** A Secrets Manager client on the emulator with fast failure. */
export function motoClient(endpoint: string): SecretsManagerClient {
  return new SecretsManagerClient({
    endpoint,
    region: MOTO_REGION,
    credentials: MOTO_CREDENTIALS,
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 10_000 },
  });
}

/**
 * Starts moto_server on 127.0.0.1 and waits until it answers. `env` adds moto settings, e.g.
 * INITIAL_NO_AUTH_ACTION_COUNT to enforce IAM policies after that many requests.
 */
export async function startMoto(env: Record<string, string> = {}): Promise<MotoServer> {
  if (!existsSync(MOTO_BIN)) throw new Error(`${MOTO_BIN} is missing: run bash scripts/test-deps.sh`);
  const port = await freePort();
  const child = spawn(MOTO_BIN, ["-H", "127.0.0.1", "-p", String(port)], {
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = () => stopGroup(child);
  for (let attempt = 0; attempt < READY_ATTEMPTS; attempt++) {
    if (child.exitCode !== null) throw new Error(`moto_server exited early: ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return { endpoint, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`moto_server did not answer on ${endpoint}: ${stderr}`);
}

/** Forgets every secret in the emulator. */
export async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: "POST" });
  if (!res.ok) throw new Error(`moto reset failed: ${res.status}`);
}

/** A loopback port that was free a moment ago (moto_server cannot bind port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolvePort(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const killTimer = setTimeout(() => signal("SIGKILL"), 3_000);
  await exited;
  clearTimeout(killTimer);
}
