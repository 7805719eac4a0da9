import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { editConfigFile } from "../../src/config-file-edit.js";

const run = promisify(execFile);
// The built module (test/support/build-dist.ts builds dist/ before the run), for separate processes.
const BUILT = new URL("../../dist/src/config-file-edit.js", import.meta.url).href;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-edit-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("editing the config file", () => {
  it("keeps other keys, writes 0600 and leaves no temp or lock file", async () => {
    const path = join(dir, "keep.json");
    writeFileSync(path, JSON.stringify({ port: 9000, webhook: { maxBodyBytes: 4096 } }), { mode: 0o644 });
    await editConfigFile(
      path,
      (file) => ({ ...file, principals: [{ name: "a" }] }),
      () => {},
    );
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({
      port: 9000,
      webhook: { maxBodyBytes: 4096 },
      principals: [{ name: "a" }],
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["keep.json"]);
  });

  it("changes nothing when the new content does not validate", async () => {
    const path = join(dir, "invalid.json");
    writeFileSync(path, '{"port": 1}\n', { mode: 0o600 });
    await expect(
      editConfigFile(
        path,
        () => ({ port: -1 }),
        () => {
          throw new Error("port must be positive");
        },
      ),
    ).rejects.toThrow("port must be positive");
    expect(readFileSync(path, "utf8")).toBe('{"port": 1}\n');
    expect(readdirSync(dir).filter((n) => n !== "keep.json")).toEqual(["invalid.json"]);
  });

  it("refuses a file that is not JSON without quoting it", async () => {
    const path = join(dir, "broken.json");
    writeFileSync(path, '{"webhook": {"hmacSecrets": {"bot": "SECRET-CANARY', { mode: 0o600 });
    const failed = await editConfigFile(
      path,
      (f) => f,
      () => {},
    ).catch((err: Error) => err);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/not valid JSON/);
    expect((failed as Error).message).not.toContain("SECRET-CANARY");
  });

  it("loses no change when several processes edit at once", async () => {
    const path = join(dir, "shared.json");
    const writers = 6;
    const edits = 10;
    const script = `
      const { editConfigFile } = await import(${JSON.stringify(BUILT)});
      for (let i = 0; i < ${edits}; i++) {
        await editConfigFile(${JSON.stringify(path)}, (f) => ({ ...f, principals: [...(f.principals ?? []), process.argv[1] + "-" + i] }), () => {});
      }`;
    await Promise.all(
      Array.from({ length: writers }, (_, w) =>
        run(process.execPath, ["--input-type=module", "-e", script, `w${w}`], { timeout: 60_000 }),
      ),
    );
    const { principals } = JSON.parse(readFileSync(path, "utf8")) as { principals: string[] };
    expect(principals).toHaveLength(writers * edits);
    expect(new Set(principals).size).toBe(writers * edits);
  }, 90_000);
});
