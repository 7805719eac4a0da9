// Builds dist/ with tsc only when the sources changed since the last build, so that a command on a built
// checkout starts at once. The check stats every source file (a few hundred microseconds) and compares a
// digest of their paths, sizes and modification times with the one the last build wrote to dist/.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The build's inputs besides the source folders. */
const INPUT_FILES = ["tsconfig.json", "tsconfig.build.json", "package-lock.json"];
const SOURCE_DIRS = ["src", "gen"];
const STAMP = "dist/.build-stamp";
const LOCK = "dist/.build-lock";
/** A lock older than this belongs to a build that died. */
const LOCK_STALE_MS = 120_000;

/** Digest of the build inputs under `root`: each file's path, size and mtime; undefined when no sources exist. */
export function sourceDigest(root) {
  const hash = createHash("sha256");
  let found = 0;
  const visit = (rel) => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory()) visit(path);
      else if (entry.isFile()) {
        const s = statSync(join(root, path));
        hash.update(`${path}\0${s.size}\0${s.mtimeMs}\n`);
        found++;
      }
    }
  };
  for (const dir of SOURCE_DIRS) if (existsSync(join(root, dir))) visit(dir);
  if (found === 0) return undefined;
  for (const file of INPUT_FILES) {
    if (!existsSync(join(root, file))) continue;
    const s = statSync(join(root, file));
    hash.update(`${file}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return hash.digest("hex");
}

/**
 * Builds `root`'s dist/ unless its stamp matches the sources. Returns "fresh" (nothing run), "built",
 * "no-sources" (an installed copy with dist/ only) or "no-compiler" (sources changed, but TypeScript is not
 * installed and a build exists: it runs as it is). Concurrent callers build once: the others wait on the
 * lock file and then find the stamp fresh.
 */
export function buildIfStale(root, tsc = join(root, "node_modules/typescript/bin/tsc"), force = false) {
  const digest = sourceDigest(root);
  if (digest === undefined) return "no-sources";
  if (!force && stampOf(root) === digest) return "fresh";
  // An installed copy that kept its sources but not the compiler (npm ci --omit=dev) runs what it has.
  if (!existsSync(tsc) && existsSync(join(root, "dist/src/cli.js"))) return "no-compiler";
  mkdirSync(join(root, "dist"), { recursive: true });
  const release = lock(root);
  try {
    const now = sourceDigest(root);
    if (!force && stampOf(root) === now) return "fresh";
    // tsc prints its diagnostics; a failed build throws, and the stamp stays as it was.
    execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--noEmitOnError"], {
      stdio: "inherit",
      // Bounded: a wedged compiler fails the command (and a test run) instead of hanging it.
      timeout: 300_000,
    });
    writeAtomically(join(root, STAMP), `${now}\n`);
    return "built";
  } finally {
    release();
  }
}

function stampOf(root) {
  try {
    return readFileSync(join(root, STAMP), "utf8").trim();
  } catch {
    return undefined;
  }
}

function writeAtomically(path, text) {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  const fd = openSync(temp, "r");
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, path);
}

/** Takes dist/.build-lock (exclusive create), waiting up to LOCK_STALE_MS for another build; returns its release. */
function lock(root) {
  const path = join(root, LOCK);
  const started = Date.now();
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      closeSync(openSync(path, "wx"));
      return () => unlinkSync(path);
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    let age = 0;
    try {
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      continue;
    }
    if (age > LOCK_STALE_MS || Date.now() - started > LOCK_STALE_MS) {
      try {
        unlinkSync(path);
      } catch {}
      continue;
    }
    Atomics.wait(pause, 0, 0, 100);
  }
}

// `node bin/build-if-stale.js [--force]` (npm run build): builds this checkout, always with --force, and
// stamps it, so the next command finds it fresh.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    buildIfStale(fileURLToPath(new URL("..", import.meta.url)), undefined, process.argv.includes("--force"));
  } catch {
    process.exitCode = 1;
  }
}
