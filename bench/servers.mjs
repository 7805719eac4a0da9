/** Starts the processes the bench talks to: Fieldseal (`fieldseal serve`), and runs the load generator. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hashToken } from "../dist/src/auth/principals.js";
import { freePort, startChild } from "./lib.mjs";

const ROOT = resolve(import.meta.dirname, "..");

/**
 * Starts `fieldseal serve` as a child process on a free loopback port with a fresh data dir and one
 * principal allowed to encrypt, decrypt, index and push. `env` adds settings (key store, Cognigy endpoint...).
 */
export async function startFieldseal(env = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-bench-"));
  const token = randomBytes(24).toString("base64url");
  writeFileSync(
    join(dataDir, "config.json"),
    JSON.stringify({
      principals: [
        { name: "bench", tokenSha256: hashToken(token), scopes: ["encrypt", "decrypt:*", "index:*", "push"] },
      ],
      // Only the ComputeIndex rows name this field (the card is checked and normalised); every other call
      // seals fields without a format, as before.
      fields: { card_lookup: { format: "card" } },
    }),
  );
  const port = await freePort();
  const { stop, child } = await startChild(process.execPath, [join(ROOT, "bin/fieldseal.js"), "serve"], {
    env: {
      FIELDSEAL_DATA_DIR: dataDir,
      FIELDSEAL_PORT: String(port),
      FIELDSEAL_HOST: "127.0.0.1",
      FIELDSEAL_LOG_LEVEL: "warn",
      ...env,
    },
    ready: /fieldseal listening on (\S+)/,
  });
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    pid: child.pid,
    async stop() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs one load-generator process to completion and returns its JSON result. */
export function runLoadgen(options) {
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      [join(ROOT, "bench/loadgen.mjs"), JSON.stringify(options)],
      { timeout: options.durationMs + (options.warmupMs ?? 300) + 20_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`loadgen failed: ${err.message} ${stderr.slice(-1000)}`));
        const line = stdout.trim().split("\n").pop();
        const result = JSON.parse(line);
        if (result.errors > 0) result.stderr = stderr.slice(-500);
        resolvePromise(result);
      },
    );
  });
}
