import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { DEFAULT_PRINCIPALS } from "./fieldseal.js";

/** The `fieldseal` command (bin/fieldseal.js, which runs dist/; test/support/build-dist.ts keeps it fresh). */
export const FIELDSEAL_BIN = fileURLToPath(new URL("../../bin/fieldseal.js", import.meta.url));

export interface FieldsealProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly tokens: Record<string, string>;
  /** Everything the process wrote so far (audit lines go to stdout, logs to stderr). */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL if it has not exited within `killAfterMs`; removes the data directory. */
  stop(killAfterMs?: number): Promise<number | string>;
}

export interface FieldsealProcessOptions {
  principals?: ReadonlyArray<{ name: string; scopes: string[] }>;
  /** Extra config file settings (merged over port 0 and the principals). */
  settings?: Record<string, unknown>;
  /** Extra environment variables (they win over the defaults set here). */
  env?: Record<string, string>;
  /** Extra arguments after `serve`. */
  args?: string[];
  /** Bound on the wait for "fieldseal listening on <url>". */
  startTimeoutMs?: number;
}

/**
 * Starts `fieldseal serve` as a child process on 127.0.0.1 and a free port, with a fresh data directory,
 * a local key store and a config file naming principals with known tokens.
 */
export async function startFieldsealProcess(
  options: FieldsealProcessOptions = {},
): Promise<FieldsealProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-proc-"));
  const tokens: Record<string, string> = {};
  const principals = (options.principals ?? DEFAULT_PRINCIPALS).map((p) => {
    const token = generateToken();
    tokens[p.name] = token;
    return { name: p.name, tokenSha256: hashToken(token), scopes: p.scopes };
  });
  const configFile = join(dataDir, "config.json");
  writeFileSync(configFile, JSON.stringify({ principals, ...options.settings }), { mode: 0o600 });
  const child = spawn(process.execPath, [FIELDSEAL_BIN, "serve", ...(options.args ?? [])], {
    cwd: dataDir,
    // A clean environment: nothing of the caller's (real AWS profiles, proxies) leaks into the child.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dataDir,
      FIELDSEAL_DATA_DIR: dataDir,
      FIELDSEAL_CONFIG: configFile,
      FIELDSEAL_PORT: "0",
      FIELDSEAL_HOST: "127.0.0.1",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let errText = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    errText += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  const cleanUp = () => rmSync(dataDir, { recursive: true, force: true });

  const started = await new Promise<string | Error>((resolve) => {
    const timer = setTimeout(
      () => resolve(new Error("fieldseal did not report listening in time")),
      options.startTimeoutMs ?? 15_000,
    );
    const check = () => {
      const m = /fieldseal listening on (https?:\/\/\S+)/.exec(out);
      if (m?.[1] === undefined) return;
      clearTimeout(timer);
      child.stdout?.off("data", check);
      resolve(m[1]);
    };
    child.stdout?.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      resolve(new Error(`fieldseal exited (${code}) before listening`));
    });
  });
  if (started instanceof Error) {
    child.kill("SIGKILL");
    await exited;
    cleanUp();
    throw new Error(`${started.message}\nstdout: ${out}\nstderr: ${errText}`);
  }
  const url = started;

  let stopping: Promise<number | string> | undefined;
  return {
    child,
    url,
    port: Number(new URL(url).port),
    dataDir,
    tokens,
    stdout: () => out,
    stderr: () => errText,
    exited,
    stop(killAfterMs = 10_000) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
          await exited;
          clearTimeout(timer);
        }
        cleanUp();
        return exited;
      })();
      return stopping;
    },
  };
}
