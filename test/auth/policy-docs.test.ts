import { readFileSync } from "node:fs";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { grantForScope, OPERATIONS } from "../../src/auth/policy.js";
import type { FieldsealErrorCode } from "../../src/errors.js";
import { connectCodeFor } from "../../src/service/error-map.js";

// The operation and scope names a reader finds in README, docs/security.md and `token create --help` are
// the ones the policy knows: a name missing from one of them is a permission nobody can find or grant.

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

/** The backquoted names of the sentence starting `Operations:` that lists `encrypt` first. */
function operationsSentence(text: string): string[] {
  const at = text.indexOf("Operations: `encrypt`");
  expect(at, "an `Operations: `encrypt`, ...` sentence").toBeGreaterThanOrEqual(0);
  const end = at + (/\.\s/.exec(text.slice(at))?.index ?? 0);
  const sentence = text.slice(at, end).replace(/\(.*?\)/gs, "");
  return [...sentence.matchAll(/`([a-z_]+)`/g)].map((m) => m[1] as string);
}

/** Shorthand scopes accepted by the policy, with per-field ones written `<field>` as the docs do. */
const SHORTHANDS = [
  "encrypt",
  "rewrap",
  "rotate",
  "destroy",
  "forget",
  "push",
  "admin",
  "decrypt:<field>",
  "decrypt:*",
  "index:<field>",
  "index:*",
  "legacy:decrypt",
  "legacy:rewrap",
];

describe("permission names in the docs", () => {
  it.each(["README.md", "docs/security.md"])(
    "%s lists every operation of the policy, and no other",
    (path) => {
      expect(new Set(operationsSentence(read(path)))).toEqual(new Set(OPERATIONS));
    },
  );

  it("every shorthand scope the docs name is one the policy accepts", () => {
    for (const scope of SHORTHANDS)
      expect(grantForScope(scope.replace("<field>", "credit_card")), scope).toBeDefined();
    expect(grantForScope("index"), "index needs a field").toBeUndefined();
  });

  it.each([
    ["README.md's Scopes paragraph", () => read("README.md").split("\nScopes: ")[1]?.split("\n\n")[0] ?? ""],
    ["token create --help", () => read("src/cli.ts").split("--scopes LIST")[1]?.split("--apply")[0] ?? ""],
  ])("%s names every shorthand scope", (_where, text) => {
    const names = new Set(
      [...text().matchAll(/(?:^|[\s`,(])([a-z]+(?::(?:<field>|\*|[a-z]+))?)(?=[`,\s)]|$)/g)].map(
        (m) => m[1] as string,
      ),
    );
    for (const scope of SHORTHANDS) expect(names, scope).toContain(scope);
  });
});

describe("error reasons in the README", () => {
  // Every code of src/errors.ts but `internal` (a bug: answered bare) is a reason a client can branch on.
  const codes = [...read("src/errors.ts").matchAll(/^\s*\| "([a-z_]+)"/gm)].map(
    (m) => m[1] as FieldsealErrorCode,
  );
  const readme = read("README.md");
  const list = readme.slice(
    readme.indexOf("Errors carry the Connect/gRPC code"),
    readme.indexOf("Messages never contain values"),
  );

  it("found the codes and the list", () => {
    expect(codes.length).toBeGreaterThan(15);
    expect(list.length).toBeGreaterThan(100);
  });

  it.each(codes.filter((c) => c !== "internal"))("names %s under its Connect code", (reason) => {
    const code = Code[connectCodeFor(reason)].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    const bullet = list.split("\n- ").find((b) => b.includes(`\`${code}\`:`)) ?? "";
    expect(bullet, `a bullet for ${code}`).not.toBe("");
    expect(bullet, reason).toContain(`\`${reason}\``);
    // The reason is listed after its own code, not another one in the same bullet.
    const at = bullet.indexOf(`\`${reason}\``);
    const owner = [...bullet.slice(0, at).matchAll(/`([A-Z_]+)`:/g)].pop()?.[1];
    expect(owner, reason).toBe(code);
  });
});
