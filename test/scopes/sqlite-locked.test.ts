/**
 * The SQLite scope key file locked by another process's writer: a write waits at most the busy timeout,
 * then answers store_unavailable saying the database is busy (never INTERNAL, never a bound value).
 * Reads go on meanwhile (WAL: readers do not wait for a writer).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteScopeKeyStore } from "../../src/scopes/sqlite-store.js";
import type { LiveScopeKey } from "../../src/scopes/types.js";

const live = (scope: string, fill: number): LiveScopeKey => ({
  state: "live",
  keyring: "crm",
  scope,
  generation: 1,
  wrapped: new Uint8Array(60).fill(fill),
  wrapVersion: 1,
  createdAt: new Date().toISOString(),
});

describe("SQLite scope keys while another writer holds the lock", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("answers store_unavailable (busy) after the busy timeout, reads still answer, and writes resume", async () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-locked-"));
    dirs.push(d);
    const file = join(d, "scopes.db");
    const store = new SqliteScopeKeyStore(file, { busyTimeoutMs: 200 });
    await store.createKey(live("user:a", 1));
    const other = new DatabaseSync(file);
    other.exec("BEGIN IMMEDIATE");
    try {
      for (const write of [
        () => store.createKey(live("user:b", 2)),
        () => store.forget("crm", "user:a", new Date().toISOString()),
      ]) {
        const err = await write().then(
          () => undefined,
          (e: unknown) => e as { code: string; message: string },
        );
        expect(err?.code).toBe("store_unavailable");
        expect(err?.message).toMatch(/busy|locked/i);
        expect(err?.message).not.toContain("user:");
      }
      expect(await store.get("crm", "user:a")).toMatchObject({ state: "live", generation: 1 });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    expect(await store.createKey(live("user:b", 2))).toMatchObject({ state: "live" });
    expect(await store.forget("crm", "user:a", new Date().toISOString())).toMatchObject({
      state: "forgotten",
    });
    await store.close();
  });
});
