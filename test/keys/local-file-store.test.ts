import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isFieldsealError } from "../../src/errors.js";
import { KEYRING_FORMAT } from "../../src/keys/keyring-codec.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { keyringState, keyStoreContract, withNewVersion } from "./key-store-contract.js";

keyStoreContract("LocalFileKeyStore", async () => {
  const root = await mkdtemp(join(tmpdir(), "fieldseal-store-"));
  return {
    store: new LocalFileKeyStore(join(root, "keys")),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe("LocalFileKeyStore on disk", () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "fieldseal-disk-"));
    dir = join(root, "keys");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("creates the directory 0700 and keyring files 0600", async () => {
    const store = new LocalFileKeyStore(dir);
    const v1 = keyringState("payments", 1, 1);
    await store.compareAndSwap(0, v1);
    await store.compareAndSwap(1, withNewVersion(v1));
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, "payments.json"))).mode & 0o777).toBe(0o600);
  });

  it("leaves no temp or lock files behind after many writes", async () => {
    const store = new LocalFileKeyStore(dir);
    let state = keyringState("payments", 1, 1);
    await store.compareAndSwap(0, state);
    const racers = Array.from({ length: 10 }, () => withNewVersion(state));
    await Promise.all(racers.map((r) => store.compareAndSwap(1, r)));
    state = (await store.load("payments")) ?? state;
    for (let i = 0; i < 5; i++) {
      const next = withNewVersion(state);
      await store.compareAndSwap(state.revision, next);
      state = next;
    }
    expect(await readdir(dir)).toEqual(["payments.json"]);
  });

  it("writes a format marker and base64 material", async () => {
    const store = new LocalFileKeyStore(dir);
    const state = keyringState("payments", 1, 1, () => new Uint8Array(32).fill(0xff));
    await store.compareAndSwap(0, state);
    const stored = JSON.parse(await readFile(join(dir, "payments.json"), "utf8"));
    expect(stored.format).toBe(KEYRING_FORMAT);
    expect(stored.versions[0].material).toBe(Buffer.alloc(32, 0xff).toString("base64"));
  });

  it("rejects a malformed keyring file as internal, naming the keyring without quoting the content", async () => {
    const store = new LocalFileKeyStore(dir);
    await store.list();
    await writeFile(
      join(dir, "payments.json"),
      '{"format":"fieldseal-keyring/1","name":"payments","secret":"c2VjcmV0',
    );
    const err = await store.load("payments").catch((e: unknown) => e);
    expect(isFieldsealError(err, "internal")).toBe(true);
    expect((err as Error).message).toContain('"payments"');
    expect((err as Error).message).not.toContain("c2VjcmV0");
    expect((err as Error).cause).toBeUndefined();
  });

  it("rejects a keyring file without the format marker", async () => {
    const store = new LocalFileKeyStore(dir);
    const state = keyringState("payments", 1, 1);
    await store.compareAndSwap(0, state);
    const stored = JSON.parse(await readFile(join(dir, "payments.json"), "utf8"));
    delete stored.format;
    await writeFile(join(dir, "payments.json"), JSON.stringify(stored));
    await expect(store.load("payments")).rejects.toMatchObject({ code: "internal" });
  });

  it("refuses a write that would drop or change an existing version", async () => {
    const store = new LocalFileKeyStore(dir);
    const v2 = keyringState("payments", 1, 2);
    await store.compareAndSwap(0, v2);
    const dropped = { ...v2, revision: 2, primary: 1, versions: v2.versions.slice(0, 1) };
    await expect(store.compareAndSwap(1, dropped)).rejects.toMatchObject({ code: "internal" });
    const changed = { ...withNewVersion(v2), versions: keyringState("payments", 1, 3).versions };
    await expect(store.compareAndSwap(1, changed)).rejects.toMatchObject({ code: "internal" });
    expect(await store.load("payments")).toEqual(v2);
  });

  it("refuses keyring names that could escape the directory", async () => {
    const store = new LocalFileKeyStore(dir);
    for (const name of ["../etc", "a/b", "", "Upper", ".hidden", "x".repeat(64)]) {
      await expect(store.load(name)).rejects.toMatchObject({ code: "invalid_argument" });
    }
  });

  it("recovers a lock left by a process that died", async () => {
    const store = new LocalFileKeyStore(dir, { staleLockMs: 60_000 });
    await store.list();
    const dead = spawnSync(process.execPath, ["-e", "process.exit(0)"]).pid;
    await writeFile(join(dir, "payments.lock"), JSON.stringify({ pid: dead, host: hostname(), token: "x" }));
    const result = await store.compareAndSwap(0, keyringState("payments", 1, 1));
    expect(result.ok).toBe(true);
    expect(await readdir(dir)).toEqual(["payments.json"]);
  });

  it("waits for a lock held by a live process, then gives up with store_unavailable", async () => {
    const store = new LocalFileKeyStore(dir, { lockTimeoutMs: 200, staleLockMs: 60_000 });
    await store.list();
    await writeFile(
      join(dir, "payments.lock"),
      JSON.stringify({ pid: process.pid, host: hostname(), token: "other" }),
    );
    const err = await store.compareAndSwap(0, keyringState("payments", 1, 1)).catch((e: unknown) => e);
    expect(isFieldsealError(err, "store_unavailable")).toBe(true);
    expect((err as Error).message).toContain('"payments"');
    expect(await store.load("payments")).toBeUndefined();
  });
});
