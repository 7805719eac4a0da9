/**
 * Compiles the sources to dist/ once per run when they changed since the last build, the same check and
 * stamp bin/fieldseal.js uses (bin/build-if-stale.js), so tests that start a real `fieldseal serve` process
 * run the current code and the processes they start find the build fresh.
 */
import { resolve } from "node:path";
import { buildIfStale } from "../../bin/build-if-stale.js";

const ROOT = resolve(import.meta.dirname, "../..");

export default function setup(): void {
  buildIfStale(ROOT);
}
