/**
 * The local store run as an unprivileged user (a real child process under uid 12345, started by a root
 * parent), against what root or another user leaves behind: a key directory root created, and a revision
 * file restored with `sudo` (owned by root, 0600). Each is refused clearly, never worked around. Runs only
 * as root, which can start a process under another uid.
 */
import { spawnSync } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { keyringState, withNewVersion } from "./key-store-contract.js";

const LOADER = fileURLToPath(new URL("./fixtures/load-child.mjs", import.meta.url));
const SERVICE_UID = 12345;

/** Loads `payments` from `dir` in a child process running as SERVICE_UID. */
function loadAsService(dir: string): { ok: boolean; code?: string; message?: string; versions?: number } {
  const run = spawnSync(process.execPath, [LOADER, dir, "payments"], {
    uid: SERVICE_UID,
    gid: SERVICE_UID,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (run.status !== 0) throw new Error(`loader failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

describe.runIf(process.getuid?.() === 0)("the local store as an unprivileged user", () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "fieldseal-users-"));
    // Traversable by the service user, as the parent of a real key directory is.
    await chmod(root, 0o755);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function serviceDirectory(): Promise<string> {
    const dir = join(root, "keys");
    await mkdir(dir, { mode: 0o700 });
    await chmod(dir, 0o700);
    await chown(dir, SERVICE_UID, SERVICE_UID);
    return dir;
  }

  it("opens its own directory and keyring", async () => {
    const dir = await serviceDirectory();
    await writeFile(join(dir, "payments.1.json"), encodeKeyring(keyringState("payments", 1, 2)), {
      mode: 0o600,
    });
    await chown(join(dir, "payments.1.json"), SERVICE_UID, SERVICE_UID);
    expect(loadAsService(dir)).toEqual({ ok: true, versions: 2 });
  });

  it("refuses a 0700 key directory that root created, naming both uids", async () => {
    const dir = join(root, "keys");
    await mkdir(dir, { mode: 0o700 });
    await chmod(dir, 0o700);
    const outcome = loadAsService(dir);
    expect(outcome).toMatchObject({ ok: false, code: "store_unavailable" });
    expect(outcome.message).toContain(`belongs to uid 0, not to this process's uid ${SERVICE_UID}`);
  });

  it("refuses clearly a newest revision restored by root that it cannot read, and reveals nothing of it", async () => {
    const dir = await serviceDirectory();
    const own = keyringState("payments", 1, 1);
    await writeFile(join(dir, "payments.1.json"), encodeKeyring(own), { mode: 0o600 });
    await chown(join(dir, "payments.1.json"), SERVICE_UID, SERVICE_UID);
    const restored = withNewVersion(own);
    // `sudo cp` of a backup: owned by root, 0600.
    await writeFile(join(dir, "payments.2.json"), encodeKeyring(restored), { mode: 0o600 });
    const outcome = loadAsService(dir);
    expect(outcome).toMatchObject({ ok: false, code: "store_unavailable" });
    expect(outcome.message).toContain('read keyring "payments"');
    expect(outcome.message).toContain("EACCES");
    // Once the operator gives the file back to the service user, the restored revision is current.
    await chown(join(dir, "payments.2.json"), SERVICE_UID, SERVICE_UID);
    expect(loadAsService(dir)).toEqual({ ok: true, versions: 2 });
  });
});
