/**
 * `npm run build:cognigy-extension` writes the tarball Cognigy.AI takes as an upload: build/, package.json,
 * package-lock.json, README.md and a 64x64 icon.png at its root, and a build/ that loads on its own, with no
 * node_modules anywhere near it (Cognigy installs nothing at upload).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { INodeFunctionBaseParams } from "../../clients/cognigy-extension/src/cognigy-api.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { children, cognigyRun } from "./harness.js";

const ROOT = resolve(import.meta.dirname, "../..");
const TARBALL = join(ROOT, "clients/cognigy-extension/fieldseal-cognigy-extension.tar.gz");

interface LoadedExtension {
  nodes: Array<{
    type: string;
    parentType: string | null;
    function: ((p: INodeFunctionBaseParams) => Promise<void>) | null;
  }>;
  connections: Array<{ type: string; fields: Array<{ fieldName: string }> }>;
  options: { label?: string };
}

let unpacked: string;

beforeAll(() => {
  execFileSync("npm", ["run", "--silent", "build:cognigy-extension"], {
    cwd: ROOT,
    stdio: "pipe",
    timeout: 120_000,
  });
  unpacked = mkdtempSync(join(tmpdir(), "fieldseal-extension-"));
  execFileSync("tar", ["-xzf", TARBALL, "-C", unpacked]);
});
afterAll(() => {
  if (unpacked !== undefined) rmSync(unpacked, { recursive: true, force: true });
});

describe("the Extension tarball", () => {
  it("holds exactly build/, package.json, package-lock.json, README.md and icon.png at its root", () => {
    const entries = execFileSync("tar", ["-tzf", TARBALL], { encoding: "utf8" }).trim().split("\n").sort();
    expect(entries).toEqual([
      "README.md",
      "build/",
      "build/module.js",
      "icon.png",
      "package-lock.json",
      "package.json",
    ]);
    const pkg = JSON.parse(readFileSync(join(unpacked, "package.json"), "utf8"));
    expect(pkg.main).toBe("build/module.js");
    // Nothing for Cognigy to install: no dependency, no script, and a lockfile naming no package.
    expect(Object.keys(pkg).sort()).toEqual(["description", "license", "main", "name", "private", "version"]);
    const lock = JSON.parse(readFileSync(join(unpacked, "package-lock.json"), "utf8"));
    expect(lock.name).toBe(pkg.name);
    expect(Object.keys(lock.packages)).toEqual([""]);
  });

  it("is the same bytes when built again, and names no owner or time of the machine that built it", () => {
    const first = readFileSync(TARBALL);
    execFileSync("npm", ["run", "--silent", "build:cognigy-extension"], {
      cwd: ROOT,
      stdio: "pipe",
      timeout: 120_000,
    });
    expect(readFileSync(TARBALL).equals(first)).toBe(true);
    const listing = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvzf", TARBALL], {
      encoding: "utf8",
      env: { ...process.env, TZ: "UTC" },
    });
    for (const line of listing.trim().split("\n")) {
      expect(line).toMatch(/^[-d]rw[-x]r-[-x]r-[-x] 0\/0 +\d+ 1970-01-01 00:00:00 /);
    }
    // The gzip header carries no build time (bytes 4-7, MTIME).
    expect(first.readUInt32LE(4)).toBe(0);
  });

  it("has a 64x64 PNG icon", () => {
    const png = readFileSync(join(unpacked, "icon.png"));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.subarray(12, 16).toString("ascii")).toBe("IHDR");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([64, 64]);
    // The committed icon is what its script draws: same header and pixels (the deflate bytes may differ
    // between zlib versions).
    const redrawn = join(unpacked, "redrawn.png");
    execFileSync(process.execPath, [join(ROOT, "clients/cognigy-extension/scripts/make-icon.mjs"), redrawn]);
    expect(pngImage(readFileSync(redrawn))).toEqual(pngImage(png));
  });

  it("loads with require and with import in a clean directory, exposing the nodes and the Connection", () => {
    const describeIt = `
      const summary = (ext) => JSON.stringify({
        nodes: ext.nodes.map((n) => [n.type, n.parentType, typeof n.function]),
        connections: ext.connections,
        label: ext.options.label,
      });`;
    const required = execFileSync(
      process.execPath,
      ["-e", `${describeIt} console.log(summary(require("./build/module.js").default));`],
      { cwd: unpacked, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } },
    );
    const imported = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `${describeIt} const m = await import("./build/module.js"); console.log(summary(m.default.default));`,
      ],
      { cwd: unpacked, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } },
    );
    expect(imported).toBe(required);
    expect(JSON.parse(required)).toEqual({
      nodes: [
        ["sealFields", null, "function"],
        ["sealFieldsOnSuccess", "sealFields", "object"],
        ["sealFieldsOnFailure", "sealFields", "object"],
        ["openField", null, "function"],
        ["openFieldOnSuccess", "openField", "object"],
        ["openFieldOnFailure", "openField", "object"],
      ],
      connections: [
        {
          type: "fieldseal",
          label: "Fieldseal",
          fields: [{ fieldName: "serviceUrl" }, { fieldName: "token" }],
        },
      ],
      label: "Fieldseal",
    });
    // Nothing outside the bundle is required: no package the upload would have to install. Node's own
    // modules are required by their plain names, as the axios inside Cognigy's own Extensions does.
    const bundle = readFileSync(join(unpacked, "build/module.js"), "utf8");
    const dependencies = [...bundle.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
    expect(dependencies.sort()).toEqual(["http", "https"]);
  });

  describe("the bundled nodes against a real server", () => {
    let fs: TestFieldseal;
    beforeAll(async () => {
      fs = await startTestFieldseal({
        principals: [
          { name: "bot", scopes: ["encrypt"] },
          { name: "handoff", scopes: ["decrypt:credit_card"] },
        ],
      });
    });
    afterAll(async () => {
      await fs?.close();
    });

    it("seal a value and open it again", async () => {
      const loaded = createRequire(join(unpacked, "build/"))("./module.js");
      // What tsc makes of Cognigy's own `export default createExtension(...)` with "module": "commonjs"
      // (Cognigy/Extensions, e.g. extensions/deepl): exports.default, marked __esModule.
      expect(Object.keys(loaded)).toEqual(["default"]);
      expect(loaded.__esModule).toBe(true);
      const extension = loaded.default as LoadedExtension;
      const node = (type: string) => {
        const fn = extension.nodes.find((n) => n.type === type)?.function;
        if (typeof fn !== "function") throw new Error(`no function for ${type}`);
        return fn;
      };
      const run = cognigyRun({ sessionId: "sess-bundle" }, { credit_card: "4111111111111111" });
      await node("sealFields")({
        cognigy: run.cognigy,
        config: {
          connection: { serviceUrl: fs.url, token: fs.tokens.bot },
          fields: [{ field: "credit_card" }],
        },
        childConfigs: children("sealFieldsOnSuccess", "sealFieldsOnFailure"),
        nodeId: "n1",
      });
      expect(run.context.credit_card).toBeNull();
      await node("openField")({
        cognigy: run.cognigy,
        config: {
          connection: { serviceUrl: fs.url, token: fs.tokens.handoff },
          field: "credit_card",
          targetKey: "opened",
        },
        childConfigs: children("openFieldOnSuccess", "openFieldOnFailure"),
        nodeId: "n2",
      });
      expect(run.context.opened).toBe("4111111111111111");
      expect(run.nextNodes).toEqual(["child-success", "child-success"]);
    });
  });
});

/** A PNG's IHDR and inflated image data, read chunk by chunk. */
function pngImage(png: Buffer): { header: Buffer; pixels: Buffer } {
  let header: Buffer = Buffer.alloc(0);
  const data: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.subarray(at + 4, at + 8).toString("ascii");
    const body = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") header = body;
    if (type === "IDAT") data.push(body);
    at += 12 + length;
  }
  return { header, pixels: inflateSync(Buffer.concat(data)) };
}
