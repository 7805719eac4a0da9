import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { meetsNodeRequirement, NODE_REQUIREMENT, NODE_REQUIREMENT_TEXT } from "../../bin/node-requirement.js";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};

describe("the Node.js requirement", () => {
  it("reads the same in package.json engines, README.md and the command's own check", () => {
    expect(pkg.engines.node).toBe(`>=${NODE_REQUIREMENT.join(".")}`);
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const stated = [...readme.matchAll(/Node\.js (\d+(?:\.\d+)*) or newer/g)].map((m) => m[1]);
    expect(stated.length).toBeGreaterThan(0);
    expect(new Set(stated)).toEqual(new Set([NODE_REQUIREMENT.join(".")]));
    expect(readme).toContain(NODE_REQUIREMENT_TEXT);
  });

  it("is met by the Node the npm scripts run (the `node` devDependency)", () => {
    const lowest = /^\^?(\d+\.\d+\.\d+)$/.exec(pkg.devDependencies.node ?? "")?.[1];
    expect(lowest).toBeDefined();
    expect(meetsNodeRequirement(lowest as string)).toBe(true);
  });

  it("tells versions apart by major and minor", () => {
    expect(meetsNodeRequirement("20.20.2")).toBe(false);
    expect(meetsNodeRequirement("22.17.9")).toBe(false);
    expect(meetsNodeRequirement("22.18.0")).toBe(true);
    expect(meetsNodeRequirement("23.0.0")).toBe(true);
    expect(meetsNodeRequirement("26.10.0")).toBe(true);
  });

  it("is checked by bin/fieldseal.js before anything else runs", async () => {
    // The check runs on the host's Node when it is older (this machine's /usr/bin/node is 20.x).
    const { stdout: version } = await run("/usr/bin/node", ["-p", "process.versions.node"]).catch(() => ({
      stdout: "",
    }));
    if (version.trim() === "" || meetsNodeRequirement(version.trim())) {
      // Meeting the requirement, the command runs.
      const ok = await run(process.execPath, [join(root, "bin/fieldseal.js"), "--help"]);
      expect(ok.stdout).toContain("fieldseal serve");
      return;
    }
    const refused = await run("/usr/bin/node", [join(root, "bin/fieldseal.js"), "--help"]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused?.code).toBe(78);
    expect(refused?.stderr).toContain(`needs ${NODE_REQUIREMENT_TEXT}, this is v${version.trim()}`);
  });
});
