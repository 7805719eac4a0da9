// Builds the uploadable Extension: bundles src/module.ts with its dependencies into build/module.js
// (Cognigy installs nothing at upload, so the bundle must stand alone), then writes
// fieldseal-cognigy-extension.tar.gz with build/, package.json, package-lock.json, README.md and icon.png at
// its root, the layout of Cognigy's own Extensions (`tar cfz x.tar.gz build/* package.json ...`).
// Run from the repository: npm run build:cognigy-extension
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const TARBALL = "fieldseal-cognigy-extension.tar.gz";

rmSync(join(root, "build"), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ["src/module.ts"],
  outfile: "build/module.js",
  bundle: true,
  platform: "node",
  format: "cjs",
  // Cognigy's Extension runtime is Node; 18 is the oldest with the global fetch the nodes use.
  target: "node18",
  legalComments: "inline",
  logLevel: "warning",
});
execFileSync(
  "tar",
  ["-czf", TARBALL, "build", "package.json", "package-lock.json", "README.md", "icon.png"],
  { cwd: root, stdio: "inherit" },
);
console.log(`cognigy-extension: wrote ${join(root, TARBALL)}`);
