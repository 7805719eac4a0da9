/**
 * The local store against what an unlucky operator or a stray tool leaves in the key directory: files that
 * look like revisions, a restored file of an earlier release, a corrupt newest revision, planted directories,
 * a directory of another user. Each is either ignored harmlessly or refused clearly; none is adopted in a way
 * that changes a version's material, and none makes the store destroy key material it did not supersede.
 */
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import type { KeyringState } from "../../src/keys/types.js";
import { keyringState, withNewVersion } from "./key-store-contract.js";

const hex = (state: KeyringState | undefined) =>
  state?.versions.map((v) => Buffer.from(v.material).toString("hex"));

describe("LocalFileKeyStore with garbage in its directory", () => {
  let root: string;
  let dir: string;
  let store: LocalFileKeyStore;
  let state: KeyringState;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "fieldseal-garbage-"));
    dir = join(root, "keys");
    store = new LocalFileKeyStore(dir);
    state = keyringState("payments", 1, 1);
    expect((await store.compareAndSwap(0, state)).ok).toBe(true);
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  for (const name of ["payments.02.json", "payments.-3.json", "payments.x.json", "payments.0.json"]) {
    it(`ignores ${name}, which no revision is named`, async () => {
      await writeFile(join(dir, name), encodeKeyring(keyringState("payments", 2, 2)), { mode: 0o600 });
      expect(await store.load("payments")).toEqual(state);
      expect(await store.revision("payments")).toBe(1);
      expect((await store.compareAndSwap(1, withNewVersion(state))).ok).toBe(true);
      expect(hex(await store.load("payments"))?.[0]).toBe(hex(state)?.[0]);
    });
  }

  it("refuses a revision number past 2^53 by naming the file, instead of chasing a file that is not there", async () => {
    await writeFile(join(dir, "payments.9999999999999999.json"), "{}", { mode: 0o600 });
    for (const attempt of [store.load("payments"), store.revision("payments")]) {
      await expect(attempt).rejects.toMatchObject({
        code: "internal",
        message: expect.stringContaining("payments.9999999999999999.json"),
      });
    }
    await expect(store.compareAndSwap(1, withNewVersion(state))).rejects.toMatchObject({
      code: "internal",
    });
    expect(await store.load("payments").catch(() => undefined)).toBeUndefined();
  });

  it("refuses a corrupt newest revision by name and writes nothing over it", async () => {
    await writeFile(join(dir, "payments.99999999999.json"), '{"format":"fieldseal-keyring/1","na', {
      mode: 0o600,
    });
    await expect(store.load("payments")).rejects.toMatchObject({
      code: "internal",
      message: expect.stringContaining("payments.99999999999.json"),
    });
    await expect(store.compareAndSwap(1, withNewVersion(state))).rejects.toMatchObject({
      code: "internal",
    });
    expect((await readdir(dir)).sort()).toEqual(["payments.1.json", "payments.99999999999.json"]);
  });

  it("refuses a newest revision file that holds another revision", async () => {
    const copied = await readFile(join(dir, "payments.1.json"));
    await writeFile(join(dir, "payments.7.json"), copied, { mode: 0o600 });
    await expect(store.load("payments")).rejects.toMatchObject({ code: "internal" });
  });

  it("refuses a directory named like the newest revision", async () => {
    await mkdir(join(dir, "payments.5.json"));
    await expect(store.load("payments")).rejects.toMatchObject({
      code: "store_unavailable",
      message: expect.stringContaining("not a regular file"),
    });
  });

  it("never deletes a restored file of an earlier release that the revision files do not supersede", async () => {
    // A backup of another history (other material), restored as the old single file after the migration.
    const restored = keyringState("payments", 20, 5);
    const text = encodeKeyring(restored);
    await writeFile(join(dir, "payments.json"), text, { mode: 0o600 });
    // Revision files win over it: it is not read as current...
    expect(await store.load("payments")).toEqual(state);
    expect((await store.compareAndSwap(1, withNewVersion(state))).ok).toBe(true);
    // ...and the write does not destroy it.
    expect(await readFile(join(dir, "payments.json"), "utf8")).toBe(text);
  });

  it("removes the file of an earlier release once a revision grown from it supersedes it", async () => {
    await rm(join(dir, "payments.1.json"));
    const old = keyringState("payments", 4, 2);
    await writeFile(join(dir, "payments.json"), encodeKeyring(old), { mode: 0o600 });
    expect((await store.compareAndSwap(4, withNewVersion(old))).ok).toBe(true);
    expect(await readdir(dir)).toEqual(["payments.5.json"]);
  });

  it("removes a temp file left under this process's pid by an earlier process (a container's pid 1), not a live one's", async () => {
    const earlier = `.payments.${process.pid}.0123456789ab.tmp`;
    const live = `.payments.${process.ppid}.0123456789ab.tmp`;
    for (const file of [earlier, live]) {
      await writeFile(join(dir, file), encodeKeyring(state), { mode: 0o600 });
    }
    expect((await store.compareAndSwap(1, withNewVersion(state))).ok).toBe(true);
    const left = await readdir(dir);
    expect(left).not.toContain(earlier);
    expect(left).toContain(live);
  });

  it("refuses a planted directory at the lock-break path instead of reporting a live lock", async () => {
    const quick = new LocalFileKeyStore(dir, { lockTimeoutMs: 2_000, staleLockMs: 1_000 });
    const lock = join(dir, "payments.lock");
    await writeFile(lock, "not json");
    await mkdir(`${lock}.break`);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    await expect(quick.compareAndSwap(1, withNewVersion(state))).rejects.toMatchObject({
      code: "store_unavailable",
      message: expect.stringContaining("payments.lock.break is not a regular file"),
    });
  });

  it.runIf(process.getuid?.() === 0)(
    "refuses a 0700 key directory of another user (an operator running the CLI with sudo)",
    async () => {
      const other = join(root, "theirs");
      await mkdir(other, { mode: 0o700 });
      await chmod(other, 0o700);
      await chown(other, 12345, 12345);
      await expect(new LocalFileKeyStore(other).load("payments")).rejects.toMatchObject({
        code: "store_unavailable",
        message: expect.stringContaining("belongs to uid 12345"),
      });
      expect(await readdir(other)).toEqual([]);
    },
  );
});
