import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli.js";
import { DECLARED_SETTINGS, loadConfig, SETTINGS } from "../../src/config.js";
import type { Setting } from "../../src/setting.js";

const root = new URL("../../", import.meta.url).pathname;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-settings-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Settings that only take effect beside others (the AWS store's options need the aws store; one TLS file
 * needs the others; reuse after forget needs the keyring to be erasable; the scope table needs the DynamoDB
 * scope store; the scope store's example, sqlite, differs from its default only on the aws key store), as
 * config-file keys written under both the base and the changed config.
 */
function companions(setting: Setting<unknown>): Record<string, unknown> {
  if (setting.file?.startsWith("keyStore.") && setting.file !== "keyStore.kind")
    return { keyStore: { kind: "aws" } };
  if (setting.file === "scopes.reuseAfterForget") return { scopes: { erasableKeyrings: ["cards"] } };
  if (setting.file === "scopes.table") return { scopes: { store: "dynamodb" } };
  if (setting.file === "scopes.store") return { keyStore: { kind: "aws" } };
  if (setting.file?.startsWith("tls.")) {
    return { tls: { certFile: "base-cert.pem", keyFile: "base-key.pem", clientCaFile: "base-ca.pem" } };
  }
  return {};
}

/** The same for settings read from the environment only (the standard OpenTelemetry variables). */
const ENV_COMPANIONS: Record<string, Record<string, string>> = {
  OTEL_SDK_DISABLED: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" },
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
};

/** `value` at the dotted key path `path` inside `into`. */
function setPath(into: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(into);
  const parts = path.split(".");
  let node = copy;
  for (const part of parts.slice(0, -1)) {
    node[part] = { ...((node[part] as Record<string, unknown> | undefined) ?? {}) };
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1) as string] = value;
  return copy;
}

let files = 0;
/** Loads the config that `file` (written 0600) and `env` make, from the test directory. */
function load(file: Record<string, unknown>, env: Record<string, string>) {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
  // FIELDSEAL_CONFIG's own example names another file: it holds the same base config.
  writeFileSync(join(dir, "other-config.json"), JSON.stringify(file), { mode: 0o600 });
  return loadConfig({ FIELDSEAL_CONFIG: path, ...env }, dir);
}

describe("every declared setting", () => {
  it("is declared once, by an environment variable or file key no other setting uses", () => {
    const envs = DECLARED_SETTINGS.flatMap((s) => (s.env === undefined ? [] : [s.env]));
    const keys = DECLARED_SETTINGS.flatMap((s) => (s.file === undefined ? [] : [s.file]));
    expect(new Set(envs).size).toBe(envs.length);
    expect(new Set(keys).size).toBe(keys.length);
    for (const s of DECLARED_SETTINGS) expect(s.env ?? s.file, s.description).toBeDefined();
  });

  it.each(DECLARED_SETTINGS.filter((s) => s.env !== undefined).map((s) => [s.env, s] as const))(
    "%s is read from the environment and changes the config",
    (env, setting) => {
      const base = companions(setting);
      const baseEnv = ENV_COMPANIONS[env as string] ?? {};
      const before = load(base, baseEnv);
      const after = load(base, { ...baseEnv, [env as string]: String(setting.example) });
      // Each load writes its own file: the file's name counts only for FIELDSEAL_CONFIG itself.
      const named = (c: typeof after) => (env === "FIELDSEAL_CONFIG" ? c : { ...c, configFile: "" });
      expect(named(after)).not.toEqual(named(before));
      // The same value from the config file gives the same config (when the setting has a file key).
      if (setting.file !== undefined) {
        const fromFile = load(setPath(base, setting.file, setting.example), {});
        expect({ ...fromFile, configFile: "" }).toEqual({ ...after, configFile: "" });
      }
    },
  );

  it.each(DECLARED_SETTINGS.filter((s) => s.file !== undefined).map((s) => [s.file, s] as const))(
    "%s is read from the config file and changes the config",
    (file, setting) => {
      const base = companions(setting);
      const before = load(base, {});
      const after = load(setPath(base, file as string, setting.example), {});
      expect({ ...after, configFile: "" }).not.toEqual({ ...before, configFile: "" });
    },
  );

  it("refuses a value of the wrong kind from either place, naming the setting", () => {
    for (const setting of DECLARED_SETTINGS) {
      // A value no setting accepts: an array of a number, in the file (and, as text, where a number is
      // wanted, in the environment).
      if (setting.file !== undefined) {
        expect(() => load(setPath(companions(setting), setting.file as string, [42]), {})).toThrow(
          new RegExp(`config: .*${regexpText(setting.file)}`),
        );
      }
    }
  });

  it("is listed by `fieldseal --help`, with its default", async () => {
    let text = "";
    const real = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => {
      text += String(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      expect(await main(["--help"], {})).toBe(0);
    } finally {
      process.stdout.write = real;
    }
    for (const s of SETTINGS) {
      const line = text
        .split("\n")
        .find((l) => l.trimStart().startsWith(`${s.env} `) && l.includes(` ${s.file} `));
      expect(line, `${s.env} ${s.file}`).toBeDefined();
      expect(line).toContain(`[${s.default}]`);
      expect(line?.endsWith("(secret)")).toBe(s.secret);
    }
  });

  it("appears in the README's settings table (test/unit/settings-table.test.ts checks the whole table)", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    for (const s of SETTINGS) {
      expect(readme, `${s.env} / ${s.file}`).toMatch(
        new RegExp(`\\| \`${regexpText(s.env)}\` +\\| \`${regexpText(s.file)}\``),
      );
    }
  });
});

function regexpText(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function* sources(path: string): Generator<string> {
  for (const name of readdirSync(path)) {
    const full = join(path, name);
    if (statSync(full).isDirectory()) yield* sources(full);
    else if (/\.(ts|js|mjs)$/.test(name)) yield full;
  }
}

describe("the environment", () => {
  it("is read only by bin/fieldseal.js, which hands it to the config parser", () => {
    const readers: string[] = [];
    for (const file of [...sources(join(root, "src")), ...sources(join(root, "bin"))]) {
      const text = readFileSync(file, "utf8");
      const reads =
        text.match(/process\s*(\.|\[\s*["'`])\s*env\b|\{[^}]*\benv\b[^}]*\}\s*=\s*process\b/g) ?? [];
      for (const _ of reads) readers.push(relative(root, file));
    }
    expect(readers).toEqual(["bin/fieldseal.js"]);
  });
});
