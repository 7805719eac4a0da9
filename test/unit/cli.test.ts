import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli.js";

const run = promisify(execFile);
let dir: string;

/** Runs the CLI in this process against a fresh data directory, capturing its output and exit code. */
async function cli(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const write = (sink: "out" | "err") => (chunk: string | Uint8Array) => {
    if (sink === "out") out += String(chunk);
    else err += String(chunk);
    return true;
  };
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = write("out") as typeof process.stdout.write;
  process.stderr.write = write("err") as typeof process.stderr.write;
  try {
    const env = { FIELDSEAL_DATA_DIR: dir, FIELDSEAL_LOG_LEVEL: "silent" };
    if (stdin !== undefined) throw new Error("stdin is only supported by cliProcess");
    const code = await main(args, env);
    return { code, out, err };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("fieldseal CLI", () => {
  it("seals and opens a value with the same keys the server uses", async () => {
    const sealed = await cli(["seal", "--field", "credit_card", "--session", "s1", "4111111111111111"]);
    expect(sealed.code).toBe(0);
    expect(sealed.out.trim()).toMatch(/^fs1\.default\.1\.[A-Za-z0-9_-]+$/);
    const opened = await cli(["open", "--field", "credit_card", "--session", "s1", sealed.out.trim()]);
    expect(opened).toMatchObject({ code: 0, out: '"4111111111111111"\n' });
    expect(statSync(join(dir, "keys")).mode & 0o777).toBe(0o700);
  });

  it("keeps JSON types with --json", async () => {
    const sealed = await cli(["seal", "--json", "--field", "card", "--user", "u1", '{"exp":{"m":12}}']);
    const opened = await cli(["open", "--field", "card", "--user", "u1", sealed.out.trim()]);
    expect(JSON.parse(opened.out)).toEqual({ exp: { m: 12 } });
  });

  it("refuses to open a value in another field, with exit code 1 and no value in the message", async () => {
    const sealed = await cli(["seal", "--field", "credit_card", "--session", "s1", "CANARY-4111"]);
    const opened = await cli(["open", "--field", "ssn", "--session", "s1", sealed.out.trim()]);
    expect(opened.code).toBe(1);
    expect(opened.err).toMatch(/does not authenticate.*\(envelope_tampered\)/);
    expect(opened.err + opened.out).not.toContain("CANARY");
  });

  it("rotates, lists and describes keyrings, never printing key material", async () => {
    expect((await cli(["keys", "rotate"])).out).toMatch(/default: version 2 is now primary/);
    expect((await cli(["keys", "list"])).out).toBe("default\n");
    const described = await cli(["keys", "describe"]);
    expect(described.out).toMatch(/v1 +decrypt-only/);
    expect(described.out).toMatch(/v2 +primary/);
    // The keyring's current state is its highest revision file (docs/keys.md).
    const revisions = readdirSync(join(dir, "keys"))
      .map((f) => /^default\.([0-9]+)\.json$/.exec(f)?.[1])
      .filter((r) => r !== undefined)
      .map(Number);
    const current = `default.${Math.max(...revisions)}.json`;
    const file = JSON.parse(readFileSync(join(dir, "keys", current), "utf8")) as {
      versions: { material: string }[];
    };
    expect(file.versions).toHaveLength(2);
    for (const v of file.versions) {
      expect(v.material).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect(described.out).not.toContain(v.material);
    }
  });

  it("retires old versions", async () => {
    const sealed = await cli(["seal", "--field", "f", "--session", "s", "x"]);
    await cli(["keys", "rotate"]);
    expect((await cli(["keys", "retire", "default", "3"])).code).toBe(0);
    const opened = await cli(["open", "--field", "f", "--session", "s", sealed.out.trim()]);
    expect(opened).toMatchObject({ code: 1 });
    expect(opened.err).toMatch(/retired.*\(key_version_retired\)/);
  });

  it("creates tokens whose config entry holds only the hash", async () => {
    const r = await cli(["token", "create", "--name", "billing", "--scopes", "decrypt:credit_card"]);
    const token = /fsk_[A-Za-z0-9_-]+/.exec(r.out)?.[0] ?? "";
    expect(token).not.toBe("");
    const entry = JSON.parse(r.out.slice(r.out.indexOf("{"))) as { tokenSha256: string; scopes: string[] };
    expect(entry.scopes).toEqual(["decrypt:credit_card"]);
    expect(entry.tokenSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(entry)).not.toContain(token);
  });

  it("answers usage errors with exit code 2 and says what is missing", async () => {
    expect(await cli(["seal", "--session", "s", "x"])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/--field is required/),
    });
    expect(await cli(["seal", "--field", "f", "x"])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/exactly one of --session or --user/),
    });
    expect(await cli(["frobnicate"])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown command/),
    });
    expect(await cli(["token", "create", "--name", "x", "--scopes", "decrpyt:y"])).toMatchObject({ code: 1 });
  });

  it("has --help for every command", async () => {
    for (const args of [
      ["--help"],
      ["serve", "--help"],
      ["seal", "--help"],
      ["open", "--help"],
      ["keys", "--help"],
      ["token", "--help"],
    ]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.out.length).toBeGreaterThan(100);
    }
    expect((await cli(["serve", "--help"])).out).toContain("FIELDSEAL_KEY_STORE");
  });

  it("runs as a real process from the compiled build", async () => {
    await run("npm", ["run", "--silent", "build"], { cwd: process.cwd() });
    const { stdout } = await run(process.execPath, ["bin/fieldseal.js", "keys", "list"], {
      env: { ...process.env, FIELDSEAL_DATA_DIR: dir },
    });
    expect(stdout).toBe("default\n");
  });
});
