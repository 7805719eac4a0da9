/**
 * The Dockerfile as CI checks it without a container engine: hadolint (installed into .venv by
 * scripts/test-deps.sh) with nothing ignored, and the properties the image promises (pinned Node image of
 * the project's Node major, numeric non-root user, exec-form entrypoint, a build context of only what the
 * build copies).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DOCKERFILE, envOf, execForm, last, readStages } from "../support/dockerfile.js";

const ROOT = resolve(import.meta.dirname, "../..");
const HADOLINT = join(ROOT, ".venv/bin/hadolint");

function hadolint(path: string): { status: number | null; output: string } {
  if (!existsSync(HADOLINT)) throw new Error(`${HADOLINT} is missing: run bash scripts/test-deps.sh`);
  const r = spawnSync(HADOLINT, ["--no-color", path], { encoding: "utf8", timeout: 30_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("Dockerfile", () => {
  it("passes hadolint with no warning ignored", () => {
    expect(hadolint(DOCKERFILE)).toEqual({ status: 0, output: "" });
    expect(readFileSync(DOCKERFILE, "utf8")).not.toMatch(/hadolint\s+(ignore|global)/);
  });

  it("is linted for real: hadolint refuses an unpinned image and a shell-form entrypoint", () => {
    const dir = mkdtempSync(join(tmpdir(), "fieldseal-hadolint-"));
    try {
      const bad = join(dir, "Dockerfile");
      writeFileSync(
        bad,
        "FROM node:latest\nRUN cd /app && npm install\nENTRYPOINT node /app/bin/fieldseal.js\n",
      );
      const r = hadolint(bad);
      expect(r.status).not.toBe(0);
      expect(r.output).toMatch(/DL3007/); // latest tag
      expect(r.output).toMatch(/DL3003/); // cd in RUN
      expect(r.output).toMatch(/DL3025/); // shell-form ENTRYPOINT
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("builds on the official Node image of the project's Node major, pinned to an exact version in every stage", () => {
    const stages = readStages();
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
    };
    const major = /(\d+)\./.exec(pkg.devDependencies.node ?? "")?.[1];
    expect(major).toBeDefined();
    for (const stage of stages) {
      expect(stage.from).toMatch(new RegExp(`^node:${major}\\.\\d+\\.\\d+-[a-z]+-slim$`));
    }
    expect(new Set(stages.map((s) => s.from)).size).toBe(1);
  });

  it("runs as a numeric non-root user, with node itself as PID 1 (exec form, no shell)", () => {
    const runtime = readStages().at(-1);
    if (runtime === undefined) throw new Error("no stage");
    const user = last(runtime, "USER").args;
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const entrypoint = execForm(last(runtime, "ENTRYPOINT"));
    expect(entrypoint[0]).toBe("node");
    expect(execForm(last(runtime, "CMD"))).toEqual(["serve"]);
    expect(envOf(runtime).NODE_ENV).toBe("production");
  });

  it("leaves no package manager in the runtime stage: the server needs node only", () => {
    const runtime = readStages().at(-1);
    const removed = (runtime?.instructions ?? [])
      .filter((i) => i.keyword === "RUN" && /^rm -rf /.test(i.args))
      .flatMap((i) => i.args.split("&&")[0]?.trim().split(/\s+/).slice(2) ?? []);
    for (const path of ["/usr/local/lib/node_modules/npm", "/usr/local/bin/npm", "/usr/local/bin/npx"]) {
      expect(removed).toContain(path);
    }
    // Nothing else in the runtime stage runs npm.
    const runs = (runtime?.instructions ?? [])
      .filter((i) => i.keyword === "RUN")
      .map((i) => i.args.replace(/^rm -rf [^&]*&&/, ""));
    expect(runs.join("\n")).not.toMatch(/\bnpm\b|\bnpx\b/);
  });

  it("sends the builder only what the build copies: local keys, configs and tools stay out", () => {
    const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    const allowed = ignore
      .slice(1)
      .filter((l) => l.startsWith("!"))
      .map((l) => l.replace(/^!/, "").replace(/\/$/, ""));
    for (const secretish of [".fieldseal", ".venv", ".tools", "node_modules", "dist", ".git"]) {
      expect(allowed).not.toContain(secretish);
    }
    // Inside an admitted directory, local state stays out too: these come after the last `!` line, so
    // they win (Docker applies the last matching line).
    const lastAllow = ignore.findLastIndex((l) => l.startsWith("!"));
    const reExcluded = ignore.slice(lastAllow + 1);
    for (const local of [".fieldseal", ".env", "*.pem", "*.key", "*.log", "node_modules", "dist"]) {
      expect(reExcluded, local).toContain(`**/${local}`);
    }
    const copied = readStages()
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from"))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((p) => p.replace(/\/$/, ""));
    expect(new Set(copied)).toEqual(new Set(allowed));
  });
});
