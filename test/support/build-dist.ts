/**
 * Compiles the sources to dist/ once per run when dist/ is missing or older than a source file, so tests
 * that start a real `fieldseal serve` process (test/support/aws-replica.ts) run the current code.
 */
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const ENTRY = join(ROOT, "dist/src/cli.js");
const BUILD_TIMEOUT_MS = 180_000;

export default async function setup(): Promise<void> {
  if (builtAfter(ENTRY, ["src", "gen", "tsconfig.json", "tsconfig.build.json"])) return;
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  await new Promise<void>((done, fail) => {
    const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json", "--noEmitOnError"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), BUILD_TIMEOUT_MS);
    child.on("error", fail);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) done();
      else fail(new Error(`building dist/ failed (exit ${code}):\n${output.slice(-4000)}`));
    });
  });
}

/** True when `entry` exists and is newer than every file under `sources`. */
function builtAfter(entry: string, sources: string[]): boolean {
  let built: number;
  try {
    built = statSync(entry).mtimeMs;
  } catch {
    return false;
  }
  const newest = (path: string): number => {
    const stat = statSync(path);
    if (!stat.isDirectory()) return stat.mtimeMs;
    return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), 0);
  };
  return sources.every((source) => newest(join(ROOT, source)) < built);
}
