// Builds the uploadable Extension: bundles src/module.ts with its dependencies into build/module.js, then
// writes fieldseal-cognigy-extension.tar.gz with build/, package.json, package-lock.json, README.md and
// icon.png at its root, the layout of Cognigy's own Extensions (`tar cfz x.tar.gz build/* package.json ...`).
// Those ship no node_modules and require axios and @cognigy/extension-tools at run time, so Cognigy installs
// what their lockfile names. This bundle needs nothing: the package.json and lockfile in the tarball declare
// no dependency at all, so nothing is installed (and no build tool such as esbuild, with its install script,
// is ever fetched on Cognigy's side).
// Run from the repository: npm run build:cognigy-extension
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
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
// The package files as uploaded: this package's name, version and entry point, and no dependencies.
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const uploaded = {
  name: pkg.name,
  version: pkg.version,
  description: pkg.description,
  license: pkg.license,
  private: true,
  main: pkg.main,
};
const lock = {
  name: pkg.name,
  version: pkg.version,
  lockfileVersion: 3,
  requires: true,
  packages: { "": { name: pkg.name, version: pkg.version, license: pkg.license } },
};
const staging = join(root, "build", ".upload");
mkdirSync(staging, { recursive: true });
writeFileSync(join(staging, "package.json"), `${JSON.stringify(uploaded, null, 2)}\n`);
writeFileSync(join(staging, "package-lock.json"), `${JSON.stringify(lock, null, 2)}\n`);

// The same sources give the same bytes: entries sorted, no owner, time or umask of the machine that built
// it (GNU tar), and a gzip header without a time.
const tarball = execFileSync(
  "tar",
  [
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mode=u=rwX,go=rX",
    "--format=gnu",
    "-cf",
    "-",
    "--exclude=build/.upload",
    "build",
    "README.md",
    "icon.png",
    "-C",
    staging,
    "package.json",
    "package-lock.json",
  ],
  { cwd: root, maxBuffer: 64 * 1024 * 1024 },
);
writeFileSync(join(root, TARBALL), gzipSync(tarball, { level: 9 }));
rmSync(staging, { recursive: true, force: true });
console.log(`cognigy-extension: wrote ${join(root, TARBALL)}`);
