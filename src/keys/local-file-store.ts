/**
 * The embedded default key store: one JSON file per keyring in a directory on local disk.
 *
 * - The directory is created 0700 on first use; keyring files are 0600.
 * - Writes are atomic: a temp file in the same directory is written and fsynced, renamed over the keyring
 *   file, and the directory is fsynced, so a reader or a crash sees the old keyring or the new one, never a mix.
 * - compareAndSwap holds an inter-process lock (`<name>.lock`, created with O_EXCL and holding the owner's pid)
 *   while it re-reads the revision and writes, so two processes on one host can never both win a revision.
 *   A lock whose owner process is gone, or that is older than `staleLockMs`, is broken under a second
 *   O_EXCL lock so that two processes breaking the same stale lock cannot remove each other's fresh one.
 * - Every write is checked with `successorProblem`: no write can drop or alter an existing key version.
 *
 * The lock relies on O_EXCL and on pids of one host: share the directory between processes of one machine,
 * not over a network file system between machines.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { assertKeyringName, KEYRING_NAME } from "../engine/names.js";
import { FieldsealError } from "../errors.js";
import { decodeKeyring, encodeKeyring } from "./keyring-codec.js";
import { successorProblem } from "./keyring-state.js";
import type { CasResult, KeyringState, KeyStore } from "./types.js";

export interface LocalFileKeyStoreOptions {
  /** How long compareAndSwap waits for another process's lock before failing store_unavailable. Default 15 s. */
  lockTimeoutMs?: number;
  /** A lock file older than this is presumed abandoned even if its owner cannot be checked. Default 10 s. */
  staleLockMs?: number;
}

interface LockOwner {
  pid?: unknown;
  host?: unknown;
  token?: unknown;
}

const FILE_SUFFIX = ".json";

/** Keyrings as files in one local directory; safe for several processes on one host. */
export class LocalFileKeyStore implements KeyStore {
  readonly kind = "local";
  readonly directory: string;
  readonly #lockTimeoutMs: number;
  readonly #staleLockMs: number;
  #ready: Promise<void> | undefined;
  /** Per keyring: the tail of this process's queue of writers, so they wait in line instead of polling. */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(directory: string, options: LocalFileKeyStoreOptions = {}) {
    this.directory = directory;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 15_000;
    this.#staleLockMs = options.staleLockMs ?? 10_000;
  }

  async load(name: string): Promise<KeyringState | undefined> {
    assertKeyringName(name);
    await this.#ensureDirectory();
    return this.#read(name);
  }

  async list(): Promise<string[]> {
    await this.#ensureDirectory();
    let entries: string[];
    try {
      entries = await readdir(this.directory);
    } catch (err) {
      throw this.#unavailable("list keyrings", err);
    }
    return entries
      .filter((f) => f.endsWith(FILE_SUFFIX))
      .map((f) => f.slice(0, -FILE_SUFFIX.length))
      .filter((n) => KEYRING_NAME.test(n))
      .sort();
  }

  async compareAndSwap(expectedRevision: number, next: KeyringState): Promise<CasResult> {
    assertKeyringName(next.name);
    if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
      throw new FieldsealError("invalid_argument", "expected revision must be an integer >= 0");
    }
    await this.#ensureDirectory();
    return this.#inLine(next.name, () =>
      this.#withLock(next.name, async (): Promise<CasResult> => {
        const current = await this.#read(next.name);
        if ((current?.revision ?? 0) !== expectedRevision) return { ok: false, current };
        const problem = successorProblem(current, next);
        if (problem) {
          throw new FieldsealError("internal", `refusing to write keyring "${next.name}": ${problem}`);
        }
        await this.#writeAtomically(next.name, encodeKeyring(next));
        return { ok: true, state: next };
      }),
    );
  }

  async close(): Promise<void> {
    // Locks are held only inside compareAndSwap, so waiting for queued writers releases everything.
    await Promise.allSettled([...this.#queues.values()]);
  }

  #file(name: string): string {
    return join(this.directory, `${name}${FILE_SUFFIX}`);
  }

  #ensureDirectory(): Promise<void> {
    this.#ready ??= (async () => {
      try {
        const created = await mkdir(this.directory, { recursive: true, mode: 0o700 });
        // mkdir's mode is filtered by the umask; set it exactly on what we created.
        if (created !== undefined) await chmod(this.directory, 0o700);
      } catch (err) {
        this.#ready = undefined;
        throw this.#unavailable("create the key directory", err);
      }
    })();
    return this.#ready;
  }

  async #read(name: string): Promise<KeyringState | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file(name), "utf8");
    } catch (err) {
      if (errorCode(err) === "ENOENT") return undefined;
      throw this.#unavailable(`read keyring "${name}"`, err);
    }
    return decodeKeyring(text, name);
  }

  async #writeAtomically(name: string, text: string): Promise<void> {
    const temp = join(this.directory, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.chmod(0o600);
        await handle.writeFile(text, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.#file(name));
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw this.#unavailable(`write keyring "${name}"`, err);
    }
    await this.#syncDirectory();
  }

  /** Makes the rename durable: without it a crash can bring back the old directory entry. */
  async #syncDirectory(): Promise<void> {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(this.directory, "r");
      await handle.sync();
    } catch (err) {
      // Some platforms cannot fsync a directory; the rename itself is still atomic there.
      const code = errorCode(err);
      if (code !== "EISDIR" && code !== "EINVAL" && code !== "EPERM") {
        throw this.#unavailable("sync the key directory", err);
      }
    } finally {
      await handle?.close();
    }
  }

  async #inLine<T>(name: string, work: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(name) ?? Promise.resolve();
    const run = before.then(work);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#queues.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#queues.get(name) === tail) this.#queues.delete(name);
    }
  }

  async #withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
    const lockPath = join(this.directory, `${name}.lock`);
    const token = randomUUID();
    const deadline = Date.now() + this.#lockTimeoutMs;
    let delay = 2;
    for (;;) {
      try {
        const handle = await open(lockPath, "wx", 0o600);
        try {
          await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), token }));
        } finally {
          await handle.close();
        }
        break;
      } catch (err) {
        if (errorCode(err) !== "EEXIST") throw this.#unavailable(`lock keyring "${name}"`, err);
      }
      let broken: boolean;
      try {
        broken = await this.#breakIfStale(lockPath);
      } catch (err) {
        throw this.#unavailable(`inspect the lock of keyring "${name}"`, err);
      }
      if (broken) continue;
      if (Date.now() >= deadline) {
        throw new FieldsealError(
          "store_unavailable",
          `local key store: keyring "${name}" stayed locked by another process for ${this.#lockTimeoutMs} ms`,
        );
      }
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
    }
    try {
      return await work();
    } finally {
      const owner = await readOwner(lockPath);
      // Remove the lock only if it is still ours: a stale-lock breaker may have replaced it.
      if (owner?.token === token) await unlink(lockPath).catch(() => {});
    }
  }

  /** Returns true when the lock is gone (or was removed here) and acquiring should be retried at once. */
  async #breakIfStale(lockPath: string): Promise<boolean> {
    const seen = await statOrUndefined(lockPath);
    if (!seen) return true;
    const owner = await readOwner(lockPath);
    const ownerGone =
      owner !== undefined &&
      owner.host === hostname() &&
      typeof owner.pid === "number" &&
      !isAlive(owner.pid);
    const tooOld = Date.now() - seen.mtimeMs > this.#staleLockMs;
    if (!ownerGone && !tooOld) return false;

    const breakPath = `${lockPath}.break`;
    try {
      await (await open(breakPath, "wx", 0o600)).close();
    } catch (err) {
      if (errorCode(err) !== "EEXIST") throw this.#unavailable("break a stale lock", err);
      // A breaker that died mid-break leaves this behind; it is only ever held for a few file operations.
      const breakSeen = await statOrUndefined(breakPath);
      if (breakSeen && Date.now() - breakSeen.mtimeMs > this.#staleLockMs)
        await unlink(breakPath).catch(() => {});
      return false;
    }
    try {
      const again = await statOrUndefined(lockPath);
      if (!again) return true;
      const ownerAgain = await readOwner(lockPath);
      const same =
        again.ino === seen.ino && again.mtimeMs === seen.mtimeMs && ownerAgain?.token === owner?.token;
      if (same) await unlink(lockPath).catch(() => {});
      return same;
    } finally {
      await unlink(breakPath).catch(() => {});
    }
  }

  #unavailable(what: string, err: unknown): FieldsealError {
    return new FieldsealError(
      "store_unavailable",
      `local key store: cannot ${what} in ${this.directory} (${errorCode(err) ?? "error"})`,
      { cause: err },
    );
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if (errorCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

async function readOwner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(lockPath, "utf8"));
    return typeof parsed === "object" && parsed !== null ? (parsed as LockOwner) : undefined;
  } catch {
    // Missing, or just created and not yet written: the owner is unknown.
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) === "EPERM";
  }
}
