import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildIfStale } from "../../bin/build-if-stale.js";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const TSC = join(root, "node_modules/typescript/bin/tsc");
let project: string;

/** A small TypeScript project of its own, compiled by the real tsc. */
function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), "fieldseal-build-"));
  mkdirSync(join(dir, "src"));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, target: "es2022", module: "nodenext", outDir: "dist" },
    }),
  );
  writeFileSync(
    join(dir, "tsconfig.build.json"),
    JSON.stringify({ extends: "./tsconfig.json", compilerOptions: { rootDir: "." }, include: ["src"] }),
  );
  writeFileSync(join(dir, "src/a.ts"), "export const a: number = 1;\n");
  return dir;
}

const mtime = (path: string) => statSync(path).mtimeMs;

beforeAll(() => {
  project = makeProject();
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe("building only when the sources changed", () => {
  it("builds a fresh checkout, then does not run tsc again while nothing changed", () => {
    expect(buildIfStale(project, TSC)).toBe("built");
    const out = join(project, "dist/src/a.js");
    const stamp = join(project, "dist/.build-stamp");
    const [outAt, stampAt] = [mtime(out), mtime(stamp)];
    expect(buildIfStale(project, TSC)).toBe("fresh");
    expect(buildIfStale(project, TSC)).toBe("fresh");
    // tsc rewrites every output file when it runs, and a build rewrites the stamp: neither moved.
    expect([mtime(out), mtime(stamp)]).toEqual([outAt, stampAt]);
    // `npm run build` (--force) builds anyway, and stamps.
    expect(buildIfStale(project, TSC, true)).toBe("built");
    expect(buildIfStale(project, TSC)).toBe("fresh");
  });

  it("rebuilds after a source changes, is added, or gets an older time (a checkout)", () => {
    writeFileSync(join(project, "src/a.ts"), "export const a: number = 2;\n");
    expect(buildIfStale(project, TSC)).toBe("built");
    expect(readFileSync(join(project, "dist/src/a.js"), "utf8")).toContain("= 2");
    writeFileSync(join(project, "src/b.ts"), "export const b = 'b';\n");
    expect(buildIfStale(project, TSC)).toBe("built");
    utimesSync(join(project, "src/b.ts"), new Date(2001, 0, 1), new Date(2001, 0, 1));
    expect(buildIfStale(project, TSC)).toBe("built");
    expect(buildIfStale(project, TSC)).toBe("fresh");
  });

  it("keeps the old stamp when the build fails, so the next call tries again", () => {
    const stamp = readFileSync(join(project, "dist/.build-stamp"), "utf8");
    writeFileSync(join(project, "src/a.ts"), "export const a: number = 'not a number';\n");
    expect(() => buildIfStale(project, TSC)).toThrow();
    expect(readFileSync(join(project, "dist/.build-stamp"), "utf8")).toBe(stamp);
    writeFileSync(join(project, "src/a.ts"), "export const a: number = 3;\n");
    expect(buildIfStale(project, TSC)).toBe("built");
  });

  it("runs the existing build when the sources changed but TypeScript is not installed", () => {
    writeFileSync(join(project, "src/a.ts"), "export const a: number = 5;\n");
    mkdirSync(join(project, "dist/src"), { recursive: true });
    writeFileSync(join(project, "dist/src/cli.js"), "export {};\n");
    expect(buildIfStale(project, join(project, "node_modules/typescript/bin/tsc"))).toBe("no-compiler");
    expect(buildIfStale(project, TSC)).toBe("built");
  });

  it("runs nothing for an installed copy that has dist/ but no sources", () => {
    const installed = mkdtempSync(join(tmpdir(), "fieldseal-installed-"));
    try {
      expect(buildIfStale(installed, TSC)).toBe("no-sources");
    } finally {
      rmSync(installed, { recursive: true, force: true });
    }
  });

  it("builds once when two commands start at once on a changed checkout", async () => {
    writeFileSync(join(project, "src/a.ts"), "export const a: number = 4;\n");
    const script = `
      const { buildIfStale } = await import(${JSON.stringify(new URL("../../bin/build-if-stale.js", import.meta.url).href)});
      process.stdout.write(buildIfStale(${JSON.stringify(project)}, ${JSON.stringify(TSC)}));`;
    const results = await Promise.all(
      [1, 2].map(() => run(process.execPath, ["--input-type=module", "-e", script], { timeout: 120_000 })),
    );
    expect(results.map((r) => r.stdout).sort()).toEqual(["built", "fresh"]);
  }, 150_000);
});

describe("the fieldseal command on this built checkout", () => {
  it("does not rebuild: the build stamp is untouched by a call", async () => {
    // test/support/build-dist.ts brought dist/ up to date before the run.
    const stamp = join(root, "dist/.build-stamp");
    const before = mtime(stamp);
    const { stdout } = await run(process.execPath, [join(root, "bin/fieldseal.js"), "--help"], {
      timeout: 30_000,
    });
    expect(stdout).toContain("fieldseal serve");
    expect(mtime(stamp)).toBe(before);
  });
});
