/**
 * `fieldseal scopes` and the CLI's seal/open on an erasable keyring, as real processes on one data
 * directory; and what restoring a backup of the scope key database does, with the documented remedy.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIELDSEAL_BIN } from "../support/fieldseal-process.js";

const dir = mkdtempSync(join(tmpdir(), "fieldseal-cli-scopes-"));
const auditFile = join(dir, "audit.jsonl");
const ENV = {
  PATH: process.env.PATH ?? "",
  HOME: dir,
  FIELDSEAL_DATA_DIR: dir,
  FIELDSEAL_CONFIG: join(dir, "config.json"),
  FIELDSEAL_KEYRINGS: "crm",
  FIELDSEAL_ERASABLE_KEYRINGS: "crm",
  FIELDSEAL_SCOPE_KEY_TTL_MS: "100",
  FIELDSEAL_AUDIT_FILE: auditFile,
};
writeFileSync(ENV.FIELDSEAL_CONFIG, JSON.stringify({ principals: [] }), { mode: 0o600 });

/** Runs the CLI; bounded in time, with standard input closed (or fed `input`). */
function cli(
  args: string[],
  input = "",
  env: Record<string, string> = ENV,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIELDSEAL_BIN, ...args], { env, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("fieldseal scopes (CLI)", () => {
  let sealed = "";

  it("seals scope-keyed values on an erasable keyring from the CLI, and opens them", async () => {
    // `keys create` first: the CLI never creates a keyring by sealing.
    expect((await cli(["keys", "create", "crm"])).code).toBe(0);
    const s = await cli(
      ["seal", "--keyring", "crm", "--user", "u42", "--field", "card", "-"],
      "4111111111111111\n",
    );
    expect(s.code).toBe(0);
    sealed = s.stdout.trim();
    expect(sealed).toMatch(/^fs1s\.crm\.1\.1\./);
    const o = await cli(["open", "--user", "u42", "--field", "card", sealed]);
    expect(o).toMatchObject({ code: 0, stdout: '"4111111111111111"\n' });
    expect((await cli(["keys", "describe", "crm"])).stdout).toContain("erasable: values sealed per scope");
  });

  it("says which setting opens an fs1s value where no keyring is listed as erasable", async () => {
    const { FIELDSEAL_ERASABLE_KEYRINGS: _, ...without } = ENV;
    const o = await cli(["open", "--user", "u42", "--field", "card", sealed], "", without);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain("FIELDSEAL_ERASABLE_KEYRINGS");
    expect(o.stderr).not.toContain("server");
    expect(o.stdout + o.stderr).not.toContain("4111");
  });

  it("forgets a scope: the value no longer opens, and one audit line says who and which generation", async () => {
    // A backup of the database taken before the forget (no process has it open: the WAL is checkpointed).
    expect(existsSync(join(dir, "scopes.db-wal"))).toBe(false);
    copyFileSync(join(dir, "scopes.db"), join(dir, "backup.db"));
    const f = await cli(["scopes", "forget", "--keyring", "crm", "--user", "u42"]);
    expect(f.code).toBe(0);
    expect(f.stderr).toContain("generation 1");
    const o = await cli(["open", "--user", "u42", "--field", "card", sealed]);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain("(scope_forgotten)");
    expect(o.stderr).not.toContain("4111");
    const lines = readFileSync(auditFile, "utf8").trim().split("\n");
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({
        audit: true,
        action: "forget",
        outcome: "ok",
        principal: "cli",
        keyring: "crm",
        scopeKind: "user",
        scopeId: "u42",
        generation: 1,
      }),
    ]);
  });

  it("brings a forgotten key back when the database is restored from a backup, until the tombstones are re-applied", async () => {
    copyFileSync(join(dir, "backup.db"), join(dir, "scopes.db"));
    // The danger docs/keys.md states: the restored database holds the forgotten data key again.
    expect((await cli(["open", "--user", "u42", "--field", "card", sealed])).code).toBe(0);
    const r = await cli(["scopes", "reapply-tombstones", auditFile]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("1 scopes forgotten (again)");
    const o = await cli(["open", "--user", "u42", "--field", "card", sealed]);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain("(scope_forgotten)");
  });

  it("re-wraps dormant scopes' keys, so destroying older versions leaves them able to seal", async () => {
    for (const args of [
      ["seal", "--keyring", "crm", "--user", "dormant", "--field", "f", "v1-value"],
      ["keys", "rotate", "crm"],
    ]) {
      expect((await cli(args)).code, args.join(" ")).toBe(0);
    }
    // Before the re-wrap, destroying version 1 would erase the dormant scope: refused, naming the remedy.
    const refused = await cli(["keys", "destroy", "crm", "2", "--retire"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Run "fieldseal scopes rewrap-keys --keyring crm" first');
    expect((await cli(["keys", "describe", "crm"])).stdout).not.toContain("destroyed");
    const r = await cli(["scopes", "rewrap-keys", "--keyring", "crm"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/crm: [1-9]\d* scope keys re-wrapped under version 2/);
    expect((await cli(["keys", "destroy", "crm", "2", "--retire"])).code).toBe(0);
    const s = await cli(["seal", "--keyring", "crm", "--user", "dormant", "--field", "f", "v2-value"]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^fs1s\.crm\.2\.1\./);
    expect((await cli(["open", "--user", "dormant", "--field", "f", s.stdout.trim()])).stdout).toBe(
      '"v2-value"\n',
    );
  });

  it("destroys under dormant scope keys only with --force, and those scopes are then erased", async () => {
    expect((await cli(["seal", "--keyring", "crm", "--user", "forced", "--field", "f", "v"])).code).toBe(0);
    expect((await cli(["keys", "rotate", "crm"])).code).toBe(0);
    const below = /primary\D*(\d+)/i.exec((await cli(["keys", "describe", "crm"])).stdout)?.[1];
    expect(below).toBeDefined();
    expect((await cli(["keys", "destroy", "crm", String(below), "--retire"])).code).toBe(1);
    const forced = await cli(["keys", "destroy", "crm", String(below), "--retire", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    const s = await cli(["seal", "--keyring", "crm", "--user", "forced", "--field", "f", "w"]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("key_version_destroyed");
  });

  it("refuses to forget on a keyring that is not erasable or does not exist, or without a scope", async () => {
    expect((await cli(["scopes", "forget", "--keyring", "plain", "--user", "u1"])).code).toBe(2);
    expect((await cli(["scopes", "forget", "--keyring", "crm"])).code).toBe(2);
    expect((await cli(["scopes", "forget", "--keyring", "crm", "--user", "a", "--session", "b"])).code).toBe(
      2,
    );
  });
});
