import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/work" };

describe("erasable keyring settings", () => {
  it("has no erasable keyring by default, SQLite in the data directory and a one-second bound", () => {
    const c = parseConfig({}, {}, where);
    expect(c.scopes).toEqual({
      erasable: {},
      store: { kind: "sqlite", file: "/data/scopes.db" },
      cacheTtlMs: 1000,
      cacheEntries: 10_000,
    });
  });

  it("reads keyrings and reuse from the environment or the file, and defaults to DynamoDB on AWS", () => {
    const c = parseConfig(
      { scopes: { erasableKeyrings: ["crm"], cacheTtlMs: 250 } },
      {
        FIELDSEAL_ERASABLE_KEYRINGS: "crm,support",
        FIELDSEAL_REUSE_AFTER_FORGET: "support",
        FIELDSEAL_KEY_STORE: "aws",
        FIELDSEAL_AWS_REGION: "eu-central-1",
      },
      where,
    );
    expect(c.scopes.erasable).toEqual({
      crm: { reuseAfterForget: false },
      support: { reuseAfterForget: true },
    });
    expect(c.scopes.store).toEqual({
      kind: "dynamodb",
      table: "fieldseal-scope-keys",
      region: "eu-central-1",
      endpoint: undefined,
    });
    expect(c.scopes.cacheTtlMs).toBe(250);
  });

  it("refuses reuse for a keyring that is not erasable, bad names, stores and bounds, naming the setting", () => {
    const bad = (file: Record<string, unknown>, env: Record<string, string>, text: RegExp) =>
      expect(() => parseConfig(file, env, where)).toThrow(
        expect.objectContaining({ message: expect.stringMatching(text) }),
      );
    bad(
      {},
      { FIELDSEAL_REUSE_AFTER_FORGET: "crm" },
      /FIELDSEAL_REUSE_AFTER_FORGET.*not in FIELDSEAL_ERASABLE_KEYRINGS/,
    );
    bad({}, { FIELDSEAL_ERASABLE_KEYRINGS: "CRM" }, /FIELDSEAL_ERASABLE_KEYRINGS/);
    bad({}, { FIELDSEAL_SCOPE_STORE: "postgres" }, /FIELDSEAL_SCOPE_STORE/);
    bad({}, { FIELDSEAL_SCOPE_KEY_TTL_MS: "60001" }, /FIELDSEAL_SCOPE_KEY_TTL_MS/);
    bad({ scopes: { cacheEntries: 0 } }, {}, /cacheEntries|FIELDSEAL_SCOPE_KEY_CACHE_ENTRIES/);
  });
});
