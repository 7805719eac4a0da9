import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli.js";
import { currentKeyringFile } from "./support.js";

let dir: string;

/** Runs the CLI in this process against one data directory, capturing its output and exit code. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(args, { FIELDSEAL_DATA_DIR: dir, FIELDSEAL_LOG_LEVEL: "silent" });
    return { code, out, err };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-cli-keys-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("fieldseal keys create / destroy", () => {
  it("creates keyrings only by `keys create`, never by sealing or rotating a new name", async () => {
    const sealed = await cli(["seal", "--field", "pan", "--session", "s", "--keyring", "paymnets", "4111"]);
    expect(sealed.code).toBe(1);
    expect(sealed.err).toContain('keyring "paymnets" does not exist (keyring_not_found)');
    expect((await cli(["keys", "rotate", "paymnets"])).code).toBe(1);
    expect((await cli(["keys", "list"])).out).toBe("");

    expect(await cli(["keys", "create", "payments"])).toMatchObject({
      code: 0,
      out: "payments: created with version 1 as primary\n",
    });
    const again = await cli(["keys", "create", "payments"]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('keyring "payments" already exists');
    expect((await cli(["keys", "create"])).code).toBe(2);
    expect((await cli(["keys", "create", "Bad Name"])).code).toBe(1);
    const ok = await cli(["seal", "--field", "pan", "--session", "s", "--keyring", "payments", "4111"]);
    expect(ok.out).toMatch(/^fs1\.payments\.1\./);
  });

  it("destroys retired versions irreversibly, and says so", async () => {
    await cli(["keys", "create", "cards"]);
    const first = (
      await cli(["seal", "--field", "pan", "--session", "s", "--keyring", "cards", "4111"])
    ).out.trim();
    await cli(["keys", "rotate", "cards"]);
    await cli(["keys", "rotate", "cards"]);
    const early = await cli(["keys", "destroy", "cards", "3"]);
    expect(early.code).toBe(1);
    expect(early.err).toContain("only retired versions can be destroyed");
    expect((await cli(["keys", "destroy", "cards"])).code).toBe(2);
    expect((await cli(["keys", "destroy", "cards", "0"])).code).toBe(2);
    await cli(["keys", "retire", "cards", "3"]);
    expect((await cli(["keys", "destroy", "cards", "3"])).out).toContain(
      "the key material of versions 1 to 2 is destroyed",
    );
    const described = (await cli(["keys", "describe", "cards"])).out;
    expect(described).toContain("v1-v2  destroyed");
    expect(described).toContain("v3  primary");
    const opened = await cli(["open", "--field", "pan", "--session", "s", first]);
    expect(opened.code).toBe(1);
    expect(opened.err).toContain("(key_version_destroyed)");
    const stored = JSON.parse(readFileSync(currentKeyringFile(join(dir, "keys"), "cards"), "utf8")) as {
      versions: unknown[];
    };
    expect(stored.versions).toHaveLength(1);
    expect((await cli(["keys", "--help"])).out).toContain("IRREVERSIBLE");
    // --retire: retire and destroy in one write.
    await cli(["keys", "rotate", "cards"]);
    expect((await cli(["keys", "destroy", "cards", "4", "--retire"])).out).toContain(
      "versions 1 to 3 is destroyed",
    );
    expect((await cli(["keys", "describe", "cards"])).out).toContain("minimum decryption version 4");
  });
});

describe("the keyrings setting", () => {
  const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/data" };
  it("reads a comma-separated variable or a file array, checks every name and drops repeats", async () => {
    const { parseConfig } = await import("../../src/config.js");
    expect(parseConfig({}, {}, where).keyrings).toEqual([]);
    expect(parseConfig({}, { FIELDSEAL_KEYRINGS: "cards, loyalty,cards," }, where).keyrings).toEqual([
      "cards",
      "loyalty",
    ]);
    expect(parseConfig({ keyrings: ["a", "b"] }, {}, where).keyrings).toEqual(["a", "b"]);
    expect(() => parseConfig({ keyrings: ["ok", "Not OK"] }, {}, where)).toThrow(/FIELDSEAL_KEYRINGS/);
    expect(() => parseConfig({ keyrings: [3] }, {}, where)).toThrow(/keyring names/);
    expect(() => parseConfig({ keyrings: { a: 1 } }, {}, where)).toThrow(/comma-separated/);
  });
});
