import { closeSync, fchmodSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { FieldsealError } from "../errors.js";
import type { LiveScopeKey, ScopeKeyRecord, ScopeKeyStore } from "./types.js";

/** Re-reads after a lost conditional write; two are enough unless writers keep racing. */
const MAX_ATTEMPTS = 8;
/** How often a checkpoint blocked by a reader is tried again (see #truncateWal). */
const WAL_RETRY_MS = 1_000;

/**
 * Scope keys in an embedded SQLite database (`node:sqlite`), the default beside the local key store: one
 * file (0600, in a 0700 directory) that several processes on one host share. WAL journal, a busy timeout
 * so concurrent writers wait instead of failing, and `secure_delete` so a forgotten key's bytes are
 * overwritten in the file, not just unlinked from the tree; after each forget the WAL is checkpointed and
 * truncated, so the old page images holding the wrapped key leave the WAL file too.
 *
 * Calls are synchronous under the hood (node:sqlite has no async API): a point read or one-row write takes
 * microseconds; a write waiting on another process's lock blocks for at most the busy timeout.
 */
export class SqliteScopeKeyStore implements ScopeKeyStore {
  readonly kind = "sqlite";
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #insert: StatementSync;
  readonly #renew: StatementSync;
  readonly #bury: StatementSync;
  readonly #rewrap: StatementSync;
  readonly #wrappedBelow: StatementSync;
  readonly #buryAbsent: StatementSync;
  #open = true;
  readonly #busyTimeoutMs: number;
  /** Retries a checkpoint a reader blocked, until the WAL no longer holds a forgotten key's pages. */
  #walRetry: NodeJS.Timeout | undefined;

  constructor(file: string, options: { busyTimeoutMs?: number } = {}) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // Created (or tightened) 0600 before SQLite opens it; SQLite gives its -wal and -shm files the mode of
    // the database file.
    const fd = openSync(file, "a", 0o600);
    fchmodSync(fd, 0o600);
    closeSync(fd);
    this.#busyTimeoutMs = Math.trunc(options.busyTimeoutMs ?? 5_000);
    try {
      this.#db = new DatabaseSync(file);
      this.#db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = FULL");
      this.#db.exec("PRAGMA secure_delete = ON");
      this.#db.exec(`CREATE TABLE IF NOT EXISTS scope_keys (
        keyring TEXT NOT NULL,
        scope TEXT NOT NULL,
        generation INTEGER NOT NULL CHECK (generation >= 0),
        state TEXT NOT NULL CHECK (state IN ('live', 'forgotten')),
        wrapped BLOB,
        wrap_version INTEGER,
        created_at TEXT,
        forgotten_at TEXT,
        CHECK ((state = 'live') = (wrapped IS NOT NULL AND wrap_version IS NOT NULL)),
        PRIMARY KEY (keyring, scope)
      ) STRICT`);
    } catch (err) {
      throw unavailable(err);
    }
    this.#get = this.#db.prepare(
      "SELECT keyring, scope, generation, state, wrapped, wrap_version, created_at, forgotten_at FROM scope_keys WHERE keyring = ? AND scope = ?",
    );
    this.#insert = this.#db.prepare(
      "INSERT INTO scope_keys (keyring, scope, generation, state, wrapped, wrap_version, created_at) VALUES (?, ?, ?, 'live', ?, ?, ?) ON CONFLICT DO NOTHING",
    );
    this.#renew = this.#db.prepare(
      "UPDATE scope_keys SET generation = ?, state = 'live', wrapped = ?, wrap_version = ?, created_at = ?, forgotten_at = NULL WHERE keyring = ? AND scope = ? AND state = 'forgotten' AND generation = ?",
    );
    this.#bury = this.#db.prepare(
      "UPDATE scope_keys SET state = 'forgotten', generation = ?, wrapped = NULL, wrap_version = NULL, forgotten_at = ? WHERE keyring = ? AND scope = ? AND state = 'live' AND generation = ?",
    );
    this.#rewrap = this.#db.prepare(
      "UPDATE scope_keys SET wrapped = ?, wrap_version = ? WHERE keyring = ? AND scope = ? AND state = 'live' AND generation = ? AND wrap_version = ?",
    );
    this.#wrappedBelow = this.#db.prepare(
      "SELECT scope, generation, wrapped, wrap_version, created_at FROM scope_keys WHERE keyring = ? AND state = 'live' AND wrap_version < ?",
    );
    this.#buryAbsent = this.#db.prepare(
      "INSERT INTO scope_keys (keyring, scope, generation, state, forgotten_at) VALUES (?, ?, ?, 'forgotten', ?) ON CONFLICT DO NOTHING",
    );
  }

  async get(keyring: string, scope: string): Promise<ScopeKeyRecord | undefined> {
    return this.#read(keyring, scope);
  }

  async createKey(next: LiveScopeKey): Promise<ScopeKeyRecord> {
    this.#check();
    try {
      if (next.generation === 1) {
        this.#insert.run(next.keyring, next.scope, 1, next.wrapped, next.wrapVersion, next.createdAt);
      } else {
        this.#renew.run(
          next.generation,
          next.wrapped,
          next.wrapVersion,
          next.createdAt,
          next.keyring,
          next.scope,
          next.generation - 1,
        );
      }
    } catch (err) {
      throw unavailable(err);
    }
    const now = this.#read(next.keyring, next.scope);
    if (now === undefined) throw new FieldsealError("internal", "scope key vanished right after its write");
    return now;
  }

  async rewrapKey(
    current: LiveScopeKey,
    wrapped: Uint8Array,
    wrapVersion: number,
  ): Promise<ScopeKeyRecord | undefined> {
    this.#check();
    try {
      this.#rewrap.run(
        wrapped,
        wrapVersion,
        current.keyring,
        current.scope,
        current.generation,
        current.wrapVersion,
      );
    } catch (err) {
      throw unavailable(err);
    }
    return this.#read(current.keyring, current.scope);
  }

  async forget(
    keyring: string,
    scope: string,
    forgottenAt: string,
    through?: number,
  ): Promise<ScopeKeyRecord> {
    this.#check();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = this.#read(keyring, scope);
      if (current?.state === "forgotten") return current;
      if (current !== undefined && through !== undefined && current.generation > through) return current;
      try {
        if (current === undefined) this.#buryAbsent.run(keyring, scope, through ?? 0, forgottenAt);
        else
          this.#bury.run(
            Math.max(current.generation, through ?? 0),
            forgottenAt,
            keyring,
            scope,
            current.generation,
          );
      } catch (err) {
        throw unavailable(err);
      }
      const after = this.#read(keyring, scope);
      if (after?.state === "forgotten") {
        this.#truncateWal();
        return after;
      }
    }
    throw new FieldsealError(
      "conflict",
      `scope in keyring "${keyring}": forget lost ${MAX_ATTEMPTS} races in a row`,
    );
  }

  async *liveKeysWrappedBelow(keyring: string, version: number): AsyncIterable<LiveScopeKey> {
    this.#check();
    // Read whole first: the caller writes to the same table while it walks the list.
    let rows: Record<string, unknown>[];
    try {
      rows = this.#wrappedBelow.all(keyring, version) as Record<string, unknown>[];
    } catch (err) {
      throw unavailable(err);
    }
    for (const row of rows) {
      if (!(row.wrapped instanceof Uint8Array)) continue;
      yield {
        state: "live",
        keyring,
        scope: String(row.scope),
        generation: Number(row.generation),
        wrapped: row.wrapped,
        wrapVersion: Number(row.wrap_version),
        createdAt: String(row.created_at),
      };
    }
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    clearInterval(this.#walRetry);
    this.#walRetry = undefined;
    this.#db.close();
  }

  #read(keyring: string, scope: string): ScopeKeyRecord | undefined {
    this.#check();
    let row: Record<string, unknown> | undefined;
    try {
      row = this.#get.get(keyring, scope) as Record<string, unknown> | undefined;
    } catch (err) {
      throw unavailable(err);
    }
    if (row === undefined) return undefined;
    const generation = Number(row.generation);
    if (row.state === "forgotten") {
      return { state: "forgotten", keyring, scope, generation, forgottenAt: String(row.forgotten_at) };
    }
    if (!(row.wrapped instanceof Uint8Array)) {
      throw new FieldsealError("internal", `scope key record in keyring "${keyring}" is malformed`);
    }
    return {
      state: "live",
      keyring,
      scope,
      generation,
      wrapped: row.wrapped,
      wrapVersion: Number(row.wrap_version),
      createdAt: String(row.created_at),
    };
  }

  /**
   * Moves the WAL's pages into the file and truncates it, so the page images holding a forgotten wrapped key
   * leave the WAL. A reader in another connection (another replica on this host) can keep the checkpoint
   * from completing past the busy timeout; SQLite then answers busy and the WAL keeps those pages, even
   * after later writes. So it is retried every second, without waiting on locks, until it completes.
   */
  #truncateWal(): void {
    if (this.#checkpoint()) return;
    if (this.#walRetry !== undefined) return;
    this.#walRetry = setInterval(() => {
      if (!this.#open) return;
      let done = false;
      try {
        this.#db.exec("PRAGMA busy_timeout = 0");
        done = this.#checkpoint();
      } finally {
        this.#db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      }
      if (done) {
        clearInterval(this.#walRetry);
        this.#walRetry = undefined;
      }
    }, WAL_RETRY_MS);
    this.#walRetry.unref();
  }

  /** True when a TRUNCATE checkpoint completed (its `busy` column is 0). */
  #checkpoint(): boolean {
    try {
      const row = this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy?: number } | undefined;
      return row?.busy === 0;
    } catch {
      return false;
    }
  }

  #check(): void {
    if (!this.#open) throw new FieldsealError("store_unavailable", "scope key database is closed");
  }
}

function unavailable(err: unknown): FieldsealError {
  // The result code and SQLite's fixed text for it (sqlite3_errstr: "database is locked", "disk I/O
  // error"...), which never holds a bound value; node:sqlite sets both on its errors.
  const e = err as { errcode?: number; errstr?: string; code?: string };
  const code = e?.errcode ?? e?.code;
  const what = typeof e?.errstr === "string" && e.errstr.length <= 100 ? `${e.errstr}, ` : "";
  return new FieldsealError(
    "store_unavailable",
    `scope key database failed (${what}SQLite code ${String(code ?? "unknown")})`,
  );
}
