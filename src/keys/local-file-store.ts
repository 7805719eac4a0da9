/**
 * The embedded default key store: keyrings as files in one directory on local disk (format and fencing
 * design: docs/keys.md, "The local file store").
 *
 * - Each revision of a keyring is its own file, `<name>.<revision>.json`, and the keyring's state is the file
 *   with the highest revision. A revision file is written whole to a temp file, fsynced, and then hard-linked
 *   to its name with link(2), which fails if the name exists. So a revision is created exactly once, by one
 *   writer, complete: a writer that stalls (fsync stall, frozen VM, SIGSTOP) and wakes up after another
 *   writer took its revision finds the name taken and loses its compare-and-swap. This fence is the
 *   filesystem's, not a timer's: no lock, timeout or clock decides it.
 * - compareAndSwap also holds an inter-process lock (`<name>.lock`) so that writers on one host take turns
 *   instead of racing. The lock names its owner by host, pid and process start time (Linux: boot id plus the
 *   start time in /proc/<pid>/stat, so a reused pid is not mistaken for the owner). A lock whose owner is
 *   alive is never broken, however old; one whose owner is gone is. Safety never depends on the lock.
 * - Older revision files are pruned, keeping the last few. A keyring file written by earlier releases
 *   (`<name>.json`) is read while no revision file exists; the first write makes it the base of the first
 *   revision file and removes it.
 * - Every write is checked with `successorProblem`: no write can drop or alter an existing key version.
 * - The directory must be a directory of this user, without group or other access; keyring and lock files
 *   must be regular files: a symbolic link is refused at once, never followed.
 *
 * Portability: the target is Linux. link(2) and O_EXCL need a local POSIX file system (ext4, xfs, btrfs,
 * tmpfs, overlayfs); elsewhere, where /proc is missing, the owner check falls back to the pid alone.
 * Share the directory between processes of one machine, not over a network file system between machines.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { constants, readFileSync } from "node:fs";
import { chmod, link, lstat, mkdir, open, readdir, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { assertKeyringName, KEYRING_NAME } from "../engine/names.js";
import { FieldsealError } from "../errors.js";
import { decodeKeyring, encodeKeyring } from "./keyring-codec.js";
import { successorProblem, versionChangeProblem } from "./keyring-state.js";
import type { CasResult, KeyringState, KeyStore } from "./types.js";

export interface LocalFileKeyStoreOptions {
  /** How long compareAndSwap waits for another process's lock before failing store_unavailable. Default 15 s. */
  lockTimeoutMs?: number;
  /**
   * A lock whose owner cannot be checked (written on another host, or unreadable) is presumed abandoned
   * once older than this. A lock whose owner is known to be alive is never broken. Default 10 s.
   */
  staleLockMs?: number;
}

interface LockOwner {
  pid?: unknown;
  host?: unknown;
  token?: unknown;
  /** `<boot id>:<start time in clock ticks>` on Linux; absent elsewhere and in locks of earlier releases. */
  start?: unknown;
}

/** Revision files kept besides the current one, for an operator's forensics. */
const KEEP_OLD_REVISIONS = 2;
const LEGACY_SUFFIX = ".json";
/** `<name>.<revision>.json`; keyring names hold no `.`, so the split is unambiguous. */
const REVISION_FILE = /^([a-z0-9][a-z0-9_-]{0,62})\.([1-9][0-9]{0,15})\.json$/;
/** `.<name>.<pid>.<random>.tmp`: a write in progress, or one whose writer died. */
const TEMP_FILE = /^\.([a-z0-9][a-z0-9_-]{0,62})\.([0-9]+)\.[0-9a-f]+\.tmp$/;
/** O_NOFOLLOW where the platform has it: opening a symbolic link then fails with ELOOP. */
const NO_FOLLOW = constants.O_NOFOLLOW ?? 0;

/** What is on disk for one keyring. */
interface Stored {
  /** Revisions that have a revision file, ascending. */
  readonly revisions: number[];
  /** True when a keyring file of an earlier release (`<name>.json`) exists. */
  readonly legacy: boolean;
  /** Temp files of this keyring, with the pid that wrote each. */
  readonly temps: Array<{ file: string; pid: number }>;
}

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
    return this.#readCurrent(name);
  }

  /**
   * The keyring's stored revision (0 when it does not exist), from the directory listing alone: a cheap
   * check of whether another process changed it.
   */
  async revision(name: string): Promise<number> {
    assertKeyringName(name);
    await this.#ensureDirectory();
    const stored = await this.#scan(name);
    const newest = stored.revisions.at(-1);
    if (newest !== undefined) return newest;
    if (!stored.legacy) return 0;
    return (await this.#readFile(name, this.#legacyFile(name)))?.revision ?? 0;
  }

  async list(): Promise<string[]> {
    await this.#ensureDirectory();
    const names = new Set<string>();
    for (const file of await this.#entries()) {
      const revision = REVISION_FILE.exec(file);
      if (revision) names.add(revision[1] as string);
      else if (file.endsWith(LEGACY_SUFFIX)) {
        const name = file.slice(0, -LEGACY_SUFFIX.length);
        if (KEYRING_NAME.test(name)) names.add(name);
      }
    }
    return [...names].sort();
  }

  async compareAndSwap(expectedRevision: number, next: KeyringState): Promise<CasResult> {
    assertKeyringName(next.name);
    if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
      throw new FieldsealError("invalid_argument", "expected revision must be an integer >= 0");
    }
    await this.#ensureDirectory();
    const name = next.name;
    return this.#inLine(name, () =>
      this.#withLock(name, async (): Promise<CasResult> => {
        const current = await this.#readCurrent(name);
        if ((current?.revision ?? 0) !== expectedRevision) return { ok: false, current };
        const problem = successorProblem(current, next);
        if (problem) {
          throw new FieldsealError("internal", `refusing to write keyring "${name}": ${problem}`);
        }
        if (!(await this.#createRevision(name, next))) {
          // Another writer created this revision first (its lock was lost, or it ignored locks): the fence.
          return { ok: false, current: await this.#readCurrent(name) };
        }
        await this.#tidy(name, next);
        return { ok: true, state: next };
      }),
    );
  }

  async close(): Promise<void> {
    // Locks are held only inside compareAndSwap, so waiting for queued writers releases everything.
    await Promise.allSettled([...this.#queues.values()]);
  }

  #revisionFile(name: string, revision: number): string {
    return join(this.directory, `${name}.${revision}.json`);
  }

  #legacyFile(name: string): string {
    return join(this.directory, `${name}${LEGACY_SUFFIX}`);
  }

  #ensureDirectory(): Promise<void> {
    this.#ready ??= (async () => {
      let created: string | undefined;
      try {
        created = await mkdir(this.directory, { recursive: true, mode: 0o700 });
        // mkdir's mode is filtered by the umask; set it exactly on what we created.
        if (created !== undefined) await chmod(this.directory, 0o700);
      } catch (err) {
        throw this.#unavailable("create the key directory", err);
      }
      await this.#checkDirectory();
    })().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  /**
   * Refuses a key directory that other users could read or change. Keyring files are 0600, but a directory
   * writable by others lets them replace or plant files (a keyring, a symbolic link as a lock); one readable
   * by others shows which keyrings exist and when they rotate. Fieldseal does not chmod a directory it did
   * not create: the operator chose that mode, and must see and fix it.
   */
  async #checkDirectory(): Promise<void> {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(this.directory);
    } catch (err) {
      throw this.#unavailable("inspect the key directory", err);
    }
    if (!info.isDirectory()) {
      throw new FieldsealError("store_unavailable", `local key store: ${this.directory} is not a directory`);
    }
    // Windows has no POSIX owner or mode bits to check (stat reports a synthetic mode); ACLs are the
    // operator's there.
    if (process.platform === "win32") return;
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) {
      throw new FieldsealError(
        "store_unavailable",
        `local key store: the key directory ${this.directory} belongs to uid ${info.uid}, not to this process's uid ${uid}`,
      );
    }
    const mode = info.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new FieldsealError(
        "store_unavailable",
        `local key store: the key directory ${this.directory} has mode ${mode.toString(8).padStart(4, "0")}, open to other users; key directories must be 0700 (run: chmod 700 '${this.directory}')`,
      );
    }
  }

  async #entries(): Promise<string[]> {
    try {
      return await readdir(this.directory);
    } catch (err) {
      throw this.#unavailable("list keyrings", err);
    }
  }

  async #scan(name: string): Promise<Stored> {
    const revisions: number[] = [];
    const temps: Array<{ file: string; pid: number }> = [];
    let legacy = false;
    for (const file of await this.#entries()) {
      if (file === `${name}${LEGACY_SUFFIX}`) {
        legacy = true;
        continue;
      }
      const revision = REVISION_FILE.exec(file);
      if (revision?.[1] === name) {
        const number = Number(revision[2]);
        // Past 2^53 the number no longer names its file (Number rounds it): refuse it rather than chase it.
        if (!Number.isSafeInteger(number)) {
          throw new FieldsealError(
            "internal",
            `local key store: the revision file ${file} of keyring "${name}" in ${this.directory} has a revision number out of range; it was not written by Fieldseal (remove it)`,
          );
        }
        revisions.push(number);
        continue;
      }
      const temp = TEMP_FILE.exec(file);
      if (temp?.[1] === name) temps.push({ file, pid: Number(temp[2]) });
    }
    revisions.sort((a, b) => a - b);
    return { revisions, legacy, temps };
  }

  /** The keyring's current state: its highest revision file, or the file of an earlier release. */
  async #readCurrent(name: string): Promise<KeyringState | undefined> {
    // A revision file only disappears by pruning once a higher one exists, so a retry finds the new highest.
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.#scan(name);
      const newest = stored.revisions.at(-1);
      const file =
        newest !== undefined
          ? this.#revisionFile(name, newest)
          : stored.legacy
            ? this.#legacyFile(name)
            : undefined;
      if (file === undefined) return undefined;
      const state = await this.#readFile(name, file);
      if (!state) continue;
      if (newest !== undefined && state.revision !== newest) {
        throw new FieldsealError(
          "internal",
          `stored keyring "${name}" is malformed: the file of revision ${newest} holds revision ${state.revision}`,
        );
      }
      return state;
    }
    throw new FieldsealError(
      "store_unavailable",
      `local key store: keyring "${name}" kept changing while being read in ${this.directory}`,
    );
  }

  /** Reads one keyring file, refusing anything but a regular file; undefined when it is gone. */
  async #readFile(name: string, file: string): Promise<KeyringState | undefined> {
    let text: string;
    try {
      const handle = await open(file, constants.O_RDONLY | NO_FOLLOW);
      try {
        if (!(await handle.stat()).isFile()) throw Object.assign(new Error("not a file"), { code: "EFTYPE" });
        text = await handle.readFile("utf8");
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = errorCode(err);
      if (code === "ENOENT") return undefined;
      if (code === "ELOOP" || code === "EFTYPE") {
        throw new FieldsealError(
          "store_unavailable",
          `local key store: the file of keyring "${name}" in ${this.directory} is a symbolic link or not a regular file; Fieldseal never follows one (remove it)`,
        );
      }
      throw this.#unavailable(`read keyring "${name}"`, err);
    }
    try {
      return decodeKeyring(text, name);
    } catch (err) {
      // Name the file, so that an operator knows which one to inspect; the message never quotes its content.
      if (!(err instanceof FieldsealError)) throw err;
      throw new FieldsealError("internal", `${err.message} (file ${basename(file)} in ${this.directory})`);
    }
  }

  /**
   * Creates revision `state.revision`'s file, exclusively: written whole to a temp file and fsynced, then
   * hard-linked to its name. False when the name already exists, i.e. another writer took this revision.
   */
  async #createRevision(name: string, state: KeyringState): Promise<boolean> {
    const target = this.#revisionFile(name, state.revision);
    const temp = await this.#writeTemp(name, encodeKeyring(state));
    let created = true;
    try {
      await link(temp, target);
    } catch (err) {
      if (errorCode(err) !== "EEXIST") throw this.#unavailable(`write keyring "${name}"`, err);
      created = false;
    } finally {
      await removeTemp(temp);
    }
    if (!created) return false;
    await this.#syncDirectory();
    // Revision numbers below the highest are pruned, so a writer that stalled for long could create a number
    // that was pruned after a higher one was written. The highest never goes away, so such a file is never
    // read as current; remove it and report the loss. (Should a later write have been built on ours, which
    // needs a lost lock as well, reporting a loss is still the safe side: the caller re-reads and redoes.)
    const newest = (await this.#scan(name)).revisions.at(-1) ?? 0;
    if (newest > state.revision) {
      await unlink(target).catch(() => {});
      return false;
    }
    return true;
  }

  /**
   * A complete 0600 temp file holding `text`, named so that its writer's pid can be checked; fsynced when
   * `durable` (a keyring revision must survive a crash; a lock need not).
   */
  async #writeTemp(name: string, text: string, durable = true): Promise<string> {
    const temp = join(this.directory, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    liveTemps.add(temp);
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.chmod(0o600);
        await handle.writeFile(text, "utf8");
        if (durable) await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      await removeTemp(temp);
      throw this.#unavailable(`write a temp file for keyring "${name}"`, err);
    }
    return temp;
  }

  /**
   * After a write (under the lock): removes revision files older than the last few (all of them once the
   * keyring has destroyed versions), the file of an earlier release once revision files replace it, and temp
   * files whose writer is gone. Best effort.
   */
  async #tidy(name: string, written: KeyringState): Promise<void> {
    const stored = await this.#scan(name).catch(() => undefined);
    if (!stored) return;
    // Once versions are destroyed, no older revision may keep their material on disk: destruction would
    // otherwise be undone by anyone who reads the directory. Then every older revision goes at once
    // (a reader that listed one just before retries on the new highest).
    const keep = (written.destroyed?.length ?? 0) > 0 ? 0 : KEEP_OLD_REVISIONS;
    const doomed = stored.revisions
      .filter((r) => r < written.revision - keep)
      .map((r) => this.#revisionFile(name, r));
    // The earlier release's file is superseded once revision `written` holds every version it holds with the
    // same material, as it does when the revision files grew from it. One that does not (a backup restored
    // after the migration, a file from another host) is left alone: deleting it could destroy key versions.
    if (stored.legacy && (await this.#supersedes(name, written))) doomed.push(this.#legacyFile(name));
    for (const temp of stored.temps) {
      const path = join(this.directory, temp.file);
      // A temp file under this process's own pid that this process is not writing was left by an earlier
      // process with the same pid: in a container the server is often pid 1 on every start.
      const abandoned =
        temp.pid === process.pid ? !liveTemps.has(path) : processState(temp.pid, undefined) === "gone";
      if (abandoned) doomed.push(path);
    }
    for (const file of doomed) await unlink(file).catch(() => {});
  }

  /**
   * True when `written` holds every version of the earlier release's file with the same material (or has
   * destroyed it below its minimum decryption version, which must not survive in that file either).
   */
  async #supersedes(name: string, written: KeyringState): Promise<boolean> {
    try {
      const legacy = await this.#readFile(name, this.#legacyFile(name));
      return legacy !== undefined && versionChangeProblem(legacy, written) === undefined;
    } catch {
      return false;
    }
  }

  /** Makes the link durable: without it a crash can lose the new directory entry. */
  async #syncDirectory(): Promise<void> {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(this.directory, "r");
      await handle.sync();
    } catch (err) {
      // Some platforms cannot fsync a directory; the link itself is still atomic there.
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
    const owner = JSON.stringify({ pid: process.pid, host: hostname(), start: ownStart(), token });
    // The lock is linked into place from a complete temp file: it never exists without its owner in it.
    const temp = await this.#writeTemp(name, owner, false);
    const deadline = Date.now() + this.#lockTimeoutMs;
    let delay = 2;
    try {
      for (;;) {
        try {
          await link(temp, lockPath);
          break;
        } catch (err) {
          if (errorCode(err) !== "EEXIST") throw this.#unavailable(`lock keyring "${name}"`, err);
        }
        let broken: boolean;
        try {
          broken = await this.#breakIfAbandoned(name, lockPath);
        } catch (err) {
          if (err instanceof FieldsealError) throw err;
          throw this.#unavailable(`inspect the lock of keyring "${name}"`, err);
        }
        if (Date.now() >= deadline) {
          // Name the holder: a live owner's lock is never broken, so an operator must find a stopped or hung one.
          const holder = await readOwner(lockPath);
          const who =
            holder && isPid(holder.pid) && typeof holder.host === "string"
              ? ` (pid ${holder.pid} on host ${JSON.stringify(holder.host.slice(0, 255))})`
              : "";
          throw new FieldsealError(
            "store_unavailable",
            `local key store: keyring "${name}" stayed locked by another process${who} for ${this.#lockTimeoutMs} ms`,
          );
        }
        if (broken) continue;
        await sleep(delay + Math.random() * delay);
        delay = Math.min(delay * 2, 50);
      }
    } finally {
      await removeTemp(temp);
    }
    try {
      return await work();
    } finally {
      const now = await readOwner(lockPath);
      // Remove the lock only if it is still ours: someone may have removed it while this process stalled.
      if (now?.token === token) await unlink(lockPath).catch(() => {});
    }
  }

  /**
   * Returns true when the lock is gone (or was removed here) and acquiring should be retried at once.
   * Refuses, at once, a lock path that is a symbolic link or not a regular file.
   */
  async #breakIfAbandoned(name: string, lockPath: string): Promise<boolean> {
    const seen = await lstatOrUndefined(lockPath);
    if (!seen) return true;
    if (!seen.isFile()) {
      throw new FieldsealError(
        "store_unavailable",
        `local key store: the lock of keyring "${name}" (${lockPath}) is ${seen.isSymbolicLink() ? "a symbolic link" : "not a regular file"}; Fieldseal never follows one (remove it)`,
      );
    }
    const owner = await readOwner(lockPath);
    if (!this.#abandoned(owner, seen.mtimeMs)) return false;

    // Break under a second lock so that two processes breaking the same lock cannot remove each other's
    // fresh one. Even if that went wrong, two writers would still be fenced by the revision files.
    const breakPath = `${lockPath}.break`;
    try {
      await (await open(breakPath, "wx", 0o600)).close();
    } catch (err) {
      if (errorCode(err) !== "EEXIST") throw this.#unavailable("break an abandoned lock", err);
      // A breaker that died mid-break leaves this behind; it is only ever held for a few file operations.
      const breakSeen = await lstatOrUndefined(breakPath);
      if (breakSeen && !breakSeen.isFile()) {
        throw new FieldsealError(
          "store_unavailable",
          `local key store: ${breakPath} is not a regular file; Fieldseal never created it (remove it)`,
        );
      }
      if (breakSeen && Date.now() - breakSeen.mtimeMs > this.#staleLockMs)
        await unlink(breakPath).catch(() => {});
      return false;
    }
    try {
      const again = await lstatOrUndefined(lockPath);
      if (!again) return true;
      const ownerAgain = await readOwner(lockPath);
      const same = again.ino === seen.ino && ownerAgain?.token === owner?.token;
      if (same) await unlink(lockPath).catch(() => {});
      return same;
    } finally {
      await unlink(breakPath).catch(() => {});
    }
  }

  /** True when the lock's owner is known to be gone, or cannot be checked and the lock is stale. */
  #abandoned(owner: LockOwner | undefined, mtimeMs: number): boolean {
    if (owner !== undefined && owner.host === hostname() && isPid(owner.pid)) {
      const start = typeof owner.start === "string" ? owner.start : undefined;
      return processState(owner.pid, start) === "gone";
    }
    return Date.now() - mtimeMs > this.#staleLockMs;
  }

  #unavailable(what: string, err: unknown): FieldsealError {
    return new FieldsealError(
      "store_unavailable",
      `local key store: cannot ${what} in ${this.directory} (${errorCode(err) ?? "error"})`,
      { cause: err },
    );
  }
}

/** Temp files this process is writing or about to remove, across all store instances in it. */
const liveTemps = new Set<string>();

async function removeTemp(temp: string): Promise<void> {
  await unlink(temp).catch(() => {});
  liveTemps.delete(temp);
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function isPid(pid: unknown): pid is number {
  return typeof pid === "number" && Number.isSafeInteger(pid) && pid > 0;
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (errorCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

async function readOwner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    const handle = await open(lockPath, constants.O_RDONLY | NO_FOLLOW);
    try {
      const parsed: unknown = JSON.parse(await handle.readFile("utf8"));
      return typeof parsed === "object" && parsed !== null ? (parsed as LockOwner) : undefined;
    } finally {
      await handle.close();
    }
  } catch {
    // Missing, a symbolic link, or not ours to parse: the owner is unknown.
    return undefined;
  }
}

let bootId: string | undefined | null = null;

/** This boot's id on Linux, undefined elsewhere. */
function currentBootId(): string | undefined {
  if (bootId === null) {
    try {
      bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      bootId = undefined;
    }
  }
  return bootId;
}

/** `<boot id>:<start time>` of process `pid` on Linux, "gone" if it has exited, undefined without /proc. */
function startOf(pid: number): string | "gone" | undefined {
  const boot = currentBootId();
  if (boot === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    return errorCode(err) === "ENOENT" || errorCode(err) === "ESRCH" ? "gone" : undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and ")": split after the last.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  // Field 22 of proc_pid_stat(5), starttime: clock ticks after boot at which the process started.
  const started = fields[19];
  if (state === "Z" || state === "X" || state === "x") return "gone";
  return started === undefined ? undefined : `${boot}:${started}`;
}

let ownStartCache: string | undefined | null = null;

function ownStart(): string | undefined {
  if (ownStartCache === null) {
    const start = startOf(process.pid);
    ownStartCache = start === "gone" ? undefined : start;
  }
  return ownStartCache;
}

/**
 * Whether the process that wrote a lock is still the one running under `pid`. With a recorded start (Linux),
 * a pid now used by another process, or a start from an earlier boot, counts as gone; without one, the pid
 * alone decides (kill(pid, 0); a live process of another user answers EPERM and counts as alive).
 */
function processState(pid: number, start: string | undefined): "alive" | "gone" {
  const now = startOf(pid);
  if (now === "gone") return "gone";
  if (start !== undefined && now !== undefined) return now === start ? "alive" : "gone";
  try {
    process.kill(pid, 0);
    return "alive";
  } catch (err) {
    return errorCode(err) === "EPERM" ? "alive" : "gone";
  }
}
