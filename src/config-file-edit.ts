import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { describeFsError } from "./config.js";
import { FieldsealError } from "./errors.js";

/** How long a writer waits for another's lock, and when a lock is taken as left behind by a dead writer. */
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

/**
 * Changes the JSON config file under an exclusive lock (`<file>.lock`): reads it (or `{}` when it does not
 * exist), lets `change` return the new content, which `validate` must accept, and replaces the file
 * atomically: a 0600 temp file in the same directory, fsync, rename, fsync of the directory. Two writers at
 * once take turns, so neither loses the other's change; a reader sees the old file or the new one.
 */
export async function editConfigFile(
  path: string,
  change: (file: Record<string, unknown>) => Record<string, unknown>,
  validate: (file: Record<string, unknown>) => void,
): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const release = await lockFile(`${path}.lock`);
  try {
    const next = change(readJsonObject(path));
    validate(next);
    const temp = join(dirname(path), `.${randomBytes(6).toString("hex")}.config.tmp`);
    writeFileSync(temp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    try {
      syncPath(temp);
      renameSync(temp, path);
    } catch (err) {
      unlinkSync(temp);
      throw err;
    }
    syncPath(dirname(path));
  } finally {
    release();
  }
}

function readJsonObject(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return {};
    throw new FieldsealError(
      "failed_precondition",
      `cannot read config file ${path}: ${describeFsError(code)}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message may quote part of a secret; the loader reports the position when it starts.
    throw new FieldsealError("invalid_argument", `config file ${path} is not valid JSON; fix it first`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new FieldsealError("invalid_argument", `config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `path` exclusively, waiting (bounded) while another writer holds it; returns the release. */
async function lockFile(path: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(path, "wx", 0o600));
      return () => unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new FieldsealError(
          "failed_precondition",
          `cannot lock config file (${path}): ${describeFsError((err as NodeJS.ErrnoException).code)}`,
        );
      }
    }
    const age = ageMs(path);
    if (age !== undefined && age > LOCK_STALE_MS) {
      // Left behind by a writer that died: only ever a lock, never the config itself.
      try {
        unlinkSync(path);
      } catch {}
      continue;
    }
    if (Date.now() > deadline) {
      throw new FieldsealError(
        "failed_precondition",
        `another writer holds ${path} (remove it if no fieldseal command is running)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function ageMs(path: string): number | undefined {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}
