import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Keyrings } from "../../src/keys/keyrings.js";
import type { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { tempStore } from "./support.js";

const CHILD = fileURLToPath(new URL("./fixtures/rotate-child.mjs", import.meta.url));
const ROTATIONS = 25;

interface ChildReport {
  created: number[];
  conflicts: number;
}

/** Starts a child that rotates once it reads a line on stdin; resolves with its report. */
function startChild(dir: string, name: string) {
  const child = spawn(process.execPath, [CHILD, dir, name, String(ROTATIONS)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<ChildReport>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as ChildReport);
      else reject(new Error(`rotating child exited with ${code}: ${stderr}`));
    });
  });
  return { go: () => child.stdin.end("go\n"), done };
}

describe("LocalFileKeyStore shared by two processes", () => {
  let store: LocalFileKeyStore;
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, dir, cleanup } = await tempStore());
  });
  afterEach(async () => {
    await cleanup();
  });

  it("keeps versions contiguous and loses none when two processes rotate the same keyring at once", async () => {
    const setup = new Keyrings(store);
    await setup.ensure("shared");
    const children = [startChild(dir, "shared"), startChild(dir, "shared")];
    for (const child of children) child.go();
    const reports = await Promise.all(children.map((c) => c.done));

    const state = await store.load("shared");
    const total = 1 + 2 * ROTATIONS;
    expect(state?.versions.map((v) => v.version)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(state?.primary).toBe(total);
    expect(new Set(state?.versions.map((v) => Buffer.from(v.material).toString("hex"))).size).toBe(total);
    // Each version was created by exactly one process: no revision was won twice.
    const created = reports.flatMap((r) => r.created).sort((a, b) => a - b);
    expect(created).toEqual(Array.from({ length: total - 1 }, (_, i) => i + 2));
    await setup.close();
  });
});
