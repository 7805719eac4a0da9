/**
 * Compiles the sources to dist/ once per test run, so tests that start `bin/fieldseal.js` as a child
 * process run the code under test, not a stale build. Vitest runs global setup once in its main process,
 * before any worker starts, so workers never race each other on dist/.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export default function setup(): void {
  const tsc = fileURLToPath(new URL("../../node_modules/typescript/bin/tsc", import.meta.url));
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  if (result.status !== 0) {
    throw new Error(`build failed before tests: ${result.stdout}${result.stderr}${result.error ?? ""}`);
  }
}
