import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What a running `fieldseal serve` tells other commands about itself, in `<data dir>/run/<pid>.json`:
 * which config file it reads, when the process started (to tell a reused pid apart) and how many SIGHUP
 * reloads it has finished, so that `fieldseal token create --apply` can signal it and wait for the reload.
 */
export interface RunRecord {
  readonly pid: number;
  readonly configFile: string;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), where the system has it. */
  readonly startTicks: string | undefined;
  readonly reloads: number;
  /** Whether the last reload took the new config (false: it did not validate; the old rules stay). */
  readonly lastReloadOk: boolean;
}

/** The running server's record: written at start, updated after each reload, removed on exit. */
export interface RunFile {
  reloaded(ok: boolean): void;
  remove(): void;
}

/**
 * Writes this process's run record (0600, in a 0700 directory, atomically). Undefined when the data
 * directory cannot be written (a read-only container filesystem with the keys in Secrets Manager): the
 * server runs all the same, and `--apply` cannot find it (send SIGHUP yourself).
 */
export function announceServer(dataDir: string, configFile: string): RunFile | undefined {
  const dir = join(dataDir, "run");
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch {
    return undefined;
  }
  const path = join(dir, `${process.pid}.json`);
  let record: RunRecord = {
    pid: process.pid,
    configFile,
    startTicks: startTicks(process.pid),
    reloads: 0,
    lastReloadOk: true,
  };
  const write = () => {
    const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
    writeFileSync(temp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(temp, path);
  };
  try {
    write();
  } catch {
    return undefined;
  }
  return {
    reloaded(ok) {
      record = { ...record, reloads: record.reloads + 1, lastReloadOk: ok };
      try {
        write();
      } catch {
        // The directory went away or became read-only: a waiting `--apply` reports no answer.
      }
    },
    remove() {
      try {
        unlinkSync(path);
      } catch {}
    },
  };
}

/** What became of one server asked to reload. */
export interface ReloadOutcome {
  readonly pid: number;
  readonly result: "reloaded" | "refused_config" | "no_answer" | "not_permitted";
}

/**
 * Sends SIGHUP to every running server of `dataDir` that reads `configFile`, and waits (up to `timeoutMs`)
 * until each has finished its reload. Records of processes that have exited, or whose pid now belongs to
 * another process, are removed and never signalled.
 */
export async function reloadServers(
  dataDir: string,
  configFile: string,
  timeoutMs = 5000,
): Promise<ReloadOutcome[]> {
  const dir = join(dataDir, "run");
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const waiting: { pid: number; before: number }[] = [];
  const outcomes: ReloadOutcome[] = [];
  for (const name of names) {
    const record = readRecord(join(dir, name));
    if (record === undefined || record.configFile !== configFile) continue;
    if (!isSameProcess(record)) {
      try {
        unlinkSync(join(dir, name));
      } catch {}
      continue;
    }
    try {
      process.kill(record.pid, "SIGHUP");
      waiting.push({ pid: record.pid, before: record.reloads });
    } catch {
      outcomes.push({ pid: record.pid, result: "not_permitted" });
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const { pid, before } of waiting) {
    for (;;) {
      const now = readRecord(join(dir, `${pid}.json`));
      if (now !== undefined && now.reloads > before) {
        outcomes.push({ pid, result: now.lastReloadOk ? "reloaded" : "refused_config" });
        break;
      }
      if (Date.now() > deadline) {
        outcomes.push({ pid, result: "no_answer" });
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return outcomes;
}

function readRecord(path: string): RunRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as RunRecord;
    return Number.isInteger(r.pid) && r.pid > 0 && typeof r.configFile === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the record's process still runs and is the one that wrote it (not a reused pid). */
function isSameProcess(record: RunRecord): boolean {
  try {
    process.kill(record.pid, 0);
  } catch (err) {
    // EPERM: alive, but another user's; signalling it will fail and say so.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = startTicks(record.pid);
  return record.startTicks === undefined || now === undefined || now === record.startTicks;
}

/** Field 22 of /proc/<pid>/stat (start time since boot), or undefined off Linux. */
function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}
