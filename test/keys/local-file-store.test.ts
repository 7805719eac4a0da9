import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isFieldsealError } from "../../src/errors.js";
import { encodeKeyring, KEYRING_FORMAT } from "../../src/keys/keyring-codec.js";
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
    for (const file of ["payments.1.json", "payments.2.json"]) {
      expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
    }
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
    // The current revision and the two before it; no temp or lock file.
    expect((await readdir(dir)).sort()).toEqual(["payments.5.json", "payments.6.json", "payments.7.json"]);
  });

  it("writes a format marker and base64 material", async () => {
    const store = new LocalFileKeyStore(dir);
    const state = keyringState("payments", 1, 1, () => new Uint8Array(32).fill(0xff));
    await store.compareAndSwap(0, state);
    const stored = JSON.parse(await readFile(join(dir, "payments.1.json"), "utf8"));
    expect(stored.format).toBe(KEYRING_FORMAT);
    expect(stored.versions[0].material).toBe(Buffer.alloc(32, 0xff).toString("base64"));
  });

  it("rejects a malformed keyring file as internal, naming the keyring without quoting the content", async () => {
    const store = new LocalFileKeyStore(dir);
    await store.list();
    await writeFile(
      join(dir, "payments.1.json"),
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
    const stored = JSON.parse(await readFile(join(dir, "payments.1.json"), "utf8"));
    delete stored.format;
    await writeFile(join(dir, "payments.1.json"), JSON.stringify(stored));
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
    expect(await readdir(dir)).toEqual(["payments.1.json"]);
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
    // The holder is named, so that an operator can find a stopped or hung process.
    expect((err as Error).message).toContain(`pid ${process.pid} on host ${JSON.stringify(hostname())}`);
    expect(await store.load("payments")).toBeUndefined();
  });

  it("waits out a live owner's lock for lockTimeoutMs without spinning", async () => {
    const store = new LocalFileKeyStore(dir, { lockTimeoutMs: 2_000, staleLockMs: 60_000 });
    await store.list();
    await writeFile(
      join(dir, "payments.lock"),
      JSON.stringify({ pid: process.pid, host: hostname(), token: "other" }),
    );
    const cpu = process.cpuUsage();
    const started = Date.now();
    const err = await store.compareAndSwap(0, keyringState("payments", 1, 1)).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    const used = process.cpuUsage(cpu);
    expect(isFieldsealError(err, "store_unavailable")).toBe(true);
    // It waited the whole timeout (not less), and slept while waiting: generous bounds (measured: about
    // 40 ms of CPU for a 3 s wait).
    expect(elapsed).toBeGreaterThanOrEqual(2_000);
    expect((used.user + used.system) / 1000).toBeLessThan(1_000);
  });

  it("never breaks a lock whose owner is alive, however old the lock", async () => {
    const store = new LocalFileKeyStore(dir, { lockTimeoutMs: 300, staleLockMs: 50 });
    await store.list();
    const lock = join(dir, "payments.lock");
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), token: "other" }));
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(lock, hourAgo, hourAgo);
    const err = await store.compareAndSwap(0, keyringState("payments", 1, 1)).catch((e: unknown) => e);
    expect(isFieldsealError(err, "store_unavailable")).toBe(true);
    expect(await readFile(lock, "utf8")).toContain('"other"');
  });

  it.runIf(existsSync("/proc/self/stat"))(
    "breaks a lock whose pid now belongs to another process (start time differs)",
    async () => {
      const store = new LocalFileKeyStore(dir, { lockTimeoutMs: 2_000, staleLockMs: 60_000 });
      await store.list();
      const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
      // This process's pid, but a start time it never had: the pid was reused.
      await writeFile(
        join(dir, "payments.lock"),
        JSON.stringify({ pid: process.pid, host: hostname(), start: `${bootId}:1`, token: "x" }),
      );
      const result = await store.compareAndSwap(0, keyringState("payments", 1, 1));
      expect(result.ok).toBe(true);
      expect(await readdir(dir)).toEqual(["payments.1.json"]);
    },
  );

  it("breaks an unreadable lock only once it is older than staleLockMs", async () => {
    const fresh = new LocalFileKeyStore(dir, { lockTimeoutMs: 200, staleLockMs: 60_000 });
    await fresh.list();
    const lock = join(dir, "payments.lock");
    await writeFile(lock, "not json");
    await expect(fresh.compareAndSwap(0, keyringState("payments", 1, 1))).rejects.toMatchObject({
      code: "store_unavailable",
    });
    const old = new Date(Date.now() - 120_000);
    await utimes(lock, old, old);
    expect((await fresh.compareAndSwap(0, keyringState("payments", 1, 1))).ok).toBe(true);
  });

  for (const planted of ["dangling", "to a file"] as const) {
    it(`refuses a symbolic link ${planted} at the lock promptly, without spinning`, async () => {
      const store = new LocalFileKeyStore(dir, { lockTimeoutMs: 3_000 });
      await store.list();
      const target = join(root, planted === "dangling" ? "nowhere" : "elsewhere.txt");
      if (planted !== "dangling") await writeFile(target, "x");
      await symlink(target, join(dir, "payments.lock"));
      const cpu = process.cpuUsage();
      const started = Date.now();
      const err = await store.compareAndSwap(0, keyringState("payments", 1, 1)).catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      const used = process.cpuUsage(cpu);
      expect(isFieldsealError(err, "store_unavailable")).toBe(true);
      expect((err as Error).message).toContain("symbolic link");
      expect((err as Error).message).toContain("payments.lock");
      // Generous bounds: it must not wait out the timeout, and must not burn a core while waiting.
      expect(elapsed).toBeLessThan(3_000);
      expect((used.user + used.system) / 1000).toBeLessThan(1_000);
      expect(await store.load("payments")).toBeUndefined();
    });
  }

  it("refuses a keyring file that is a symbolic link, even to a valid keyring", async () => {
    const store = new LocalFileKeyStore(dir);
    await store.list();
    const elsewhere = join(root, "planted.json");
    await writeFile(elsewhere, encodeKeyring(keyringState("payments", 1, 1)));
    await symlink(elsewhere, join(dir, "payments.1.json"));
    const err = await store.load("payments").catch((e: unknown) => e);
    expect(isFieldsealError(err, "store_unavailable")).toBe(true);
    expect((err as Error).message).toContain("symbolic link");
    await expect(store.compareAndSwap(0, keyringState("payments", 1, 1))).rejects.toMatchObject({
      code: "store_unavailable",
    });
  });

  for (const mode of [0o777, 0o755, 0o750, 0o701]) {
    it(`refuses a pre-existing key directory of mode ${mode.toString(8)}, naming the fix`, async () => {
      await mkdir(dir);
      await chmod(dir, mode);
      const store = new LocalFileKeyStore(dir);
      const err = await store.load("payments").catch((e: unknown) => e);
      expect(isFieldsealError(err, "store_unavailable")).toBe(true);
      expect((err as Error).message).toContain(`mode 0${mode.toString(8)}`);
      expect((err as Error).message).toContain("chmod 700");
      await expect(store.compareAndSwap(0, keyringState("payments", 1, 1))).rejects.toMatchObject({
        code: "store_unavailable",
      });
      // Fixed by the operator, the same store works: the refusal is not cached.
      await chmod(dir, 0o700);
      expect((await store.compareAndSwap(0, keyringState("payments", 1, 1))).ok).toBe(true);
    });
  }

  it("accepts a pre-existing 0700 key directory", async () => {
    await mkdir(dir, { mode: 0o700 });
    await chmod(dir, 0o700);
    const store = new LocalFileKeyStore(dir);
    expect((await store.compareAndSwap(0, keyringState("payments", 1, 1))).ok).toBe(true);
  });

  it("loads a keyring file written by an earlier release and migrates it on the next write", async () => {
    await mkdir(dir, { mode: 0o700 });
    await chmod(dir, 0o700);
    const old = keyringState("payments", 7, 3);
    await writeFile(join(dir, "payments.json"), encodeKeyring(old), { mode: 0o600 });
    const store = new LocalFileKeyStore(dir);
    expect(await store.list()).toEqual(["payments"]);
    expect(await store.load("payments")).toEqual(old);
    expect(await store.revision("payments")).toBe(7);
    expect(await store.compareAndSwap(6, withNewVersion(old))).toEqual({ ok: false, current: old });
    const next = withNewVersion(old);
    expect((await store.compareAndSwap(7, next)).ok).toBe(true);
    expect(await readdir(dir)).toEqual(["payments.8.json"]);
    expect(await store.load("payments")).toEqual(next);
    expect(await store.list()).toEqual(["payments"]);
  });

  it("reports the stored revision from the directory alone", async () => {
    const store = new LocalFileKeyStore(dir);
    expect(await store.revision("payments")).toBe(0);
    const v1 = keyringState("payments", 1, 1);
    await store.compareAndSwap(0, v1);
    await store.compareAndSwap(1, withNewVersion(v1));
    expect(await store.revision("payments")).toBe(2);
  });
});
