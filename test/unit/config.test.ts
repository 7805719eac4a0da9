import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };
const hash = "a".repeat(64);

describe("configuration", () => {
  it("has embedded defaults that need no AWS account or Cognigy tenant", () => {
    const c = parseConfig({}, {}, where);
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 7070,
      keyStore: { kind: "local", dir: "/data/keys" },
      defaultKeyring: "default",
      legacyKeyring: "default",
      rotation: { maxAgeMs: 90 * 86_400_000, sealBudget: 2 ** 28 },
      cognigy: { baseUrl: undefined, pushEnabled: false, mode: "context_inject" },
    });
  });

  it("lets the environment override the file", () => {
    const c = parseConfig({ port: 9000, defaultKeyring: "cards" }, { FIELDSEAL_PORT: "9100" }, where);
    expect(c.port).toBe(9100);
    expect(c.defaultKeyring).toBe("cards");
  });

  it("selects the AWS store with its options", () => {
    const c = parseConfig(
      {},
      { FIELDSEAL_KEY_STORE: "aws", FIELDSEAL_AWS_ENDPOINT: "http://127.0.0.1:5000" },
      where,
    );
    expect(c.keyStore).toEqual({
      kind: "aws",
      region: undefined,
      endpoint: "http://127.0.0.1:5000",
      secretPrefix: "fieldseal/",
      legacySecretIds: {},
    });
  });

  it("pushes from webhooks only when told to, even with a Cognigy base URL", () => {
    expect(
      parseConfig({}, { FIELDSEAL_COGNIGY_BASE_URL: "https://api-trial.cognigy.ai" }, where).cognigy
        .pushEnabled,
    ).toBe(false);
    expect(
      parseConfig(
        {},
        { FIELDSEAL_COGNIGY_BASE_URL: "https://api-trial.cognigy.ai", FIELDSEAL_COGNIGY_PUSH: "true" },
        where,
      ).cognigy.pushEnabled,
    ).toBe(true);
  });

  it.each([
    [{}, { FIELDSEAL_PORT: "70000" }, /FIELDSEAL_PORT .*whole number from 0 to 65535/],
    [{}, { FIELDSEAL_PORT: "12ab" }, /FIELDSEAL_PORT/],
    [{}, { FIELDSEAL_KEY_STORE: "vault" }, /FIELDSEAL_KEY_STORE .*one of local, aws/],
    [{}, { FIELDSEAL_DEFAULT_KEYRING: "Bad.Name" }, /FIELDSEAL_DEFAULT_KEYRING .*keyring name/],
    [{}, { FIELDSEAL_COGNIGY_BASE_URL: "ftp://x" }, /must be an http\(s\) URL/],
    [{}, { FIELDSEAL_LOG_LEVEL: "loud" }, /FIELDSEAL_LOG_LEVEL/],
    [{ principals: {} }, {}, /principals: must be an array/],
    [{ principals: [{ name: "a b", tokenSha256: hash, scopes: [] }] }, {}, /principals\[0\]\.name/],
    [{ principals: [{ name: "a", tokenSha256: "abc", scopes: [] }] }, {}, /principals\[0\]\.tokenSha256/],
    [
      { principals: [{ name: "a", tokenSha256: hash, scopes: ["decrpyt:x"] }] },
      {},
      /unknown scope "decrpyt:x"/,
    ],
    [
      {
        principals: [
          { name: "a", tokenSha256: hash, scopes: [] },
          { name: "a", tokenSha256: hash, scopes: [] },
        ],
      },
      {},
      /principals\[1\]\.name: "a" is used twice/,
    ],
    [
      { webhook: { hmacSecrets: { bot: "short" } } },
      {},
      /webhook\.hmacSecrets\["bot"\] must be a string of at least 32/,
    ],
  ])("refuses a bad setting with a message naming it (%#)", (file, env, message) => {
    expect(() => parseConfig(file, env, where)).toThrow(message);
  });

  it("never quotes an HMAC secret in its error", () => {
    expect(() => parseConfig({ webhook: { hmacSecrets: { bot: "SECRET-CANARY" } } }, {}, where)).toThrow(
      expect.not.objectContaining({ message: expect.stringContaining("SECRET-CANARY") }),
    );
  });
});

const aws = { FIELDSEAL_KEY_STORE: "aws" };

describe("keyStore.legacySecretIds", () => {
  it("maps keyrings to existing secrets on the aws store", () => {
    const config = parseConfig(
      { keyStore: { legacySecretIds: { cognigy: "cognigy-session-key" } } },
      aws,
      where,
    );
    expect(config.keyStore).toMatchObject({
      kind: "aws",
      legacySecretIds: { cognigy: "cognigy-session-key" },
    });
  });

  it("defaults to no mapping", () => {
    expect(parseConfig({}, aws, where).keyStore).toMatchObject({ legacySecretIds: {} });
  });

  it("refuses a mapping that is not an object of keyring name to secret id", () => {
    expect(() => parseConfig({ keyStore: { legacySecretIds: ["x"] } }, aws, where)).toThrow(
      /keyStore.legacySecretIds must be an object/,
    );
    expect(() => parseConfig({ keyStore: { legacySecretIds: { "a b": "x" } } }, aws, where)).toThrow(
      /keyStore.legacySecretIds/,
    );
    expect(() => parseConfig({ keyStore: { legacySecretIds: { cognigy: 7 } } }, aws, where)).toThrow(
      /legacySecretIds\["cognigy"\] must be a secret name or ARN/,
    );
  });
});

describe("keyStore.legacySecretIds naming one secret twice", () => {
  it("refuses two keyrings on one secret, and a keyring on another keyring's own secret", () => {
    // Adoption writes each keyring into its secret: two keyrings there would overwrite each other.
    expect(() =>
      parseConfig(
        { keyStore: { legacySecretIds: { cognigy: "session-key", cards: "session-key" } } },
        aws,
        where,
      ),
    ).toThrow(/keyrings "cognigy" and "cards" name the same secret/);
    expect(() =>
      parseConfig({ keyStore: { legacySecretIds: { cognigy: "fieldseal/cards" } } }, aws, where),
    ).toThrow(/legacySecretIds\["cognigy"\] names keyring "cards"'s own secret/);
    expect(() =>
      parseConfig(
        { keyStore: { secretPrefix: "prod/", legacySecretIds: { cognigy: "prod/cards" } } },
        aws,
        where,
      ),
    ).toThrow(/names keyring "cards"'s own secret/);
    // Its own secret, or a secret outside the prefix, is fine.
    expect(
      parseConfig(
        { keyStore: { legacySecretIds: { cognigy: "fieldseal/cognigy", cards: "legacy/cards-key" } } },
        aws,
        where,
      ).keyStore,
    ).toMatchObject({ legacySecretIds: { cognigy: "fieldseal/cognigy", cards: "legacy/cards-key" } });
  });
});

describe("legacyEnabled", () => {
  it("is on by default, and turned off by file or environment", () => {
    expect(parseConfig({}, {}, where).legacyEnabled).toBe(true);
    expect(parseConfig({ legacyEnabled: false }, {}, where).legacyEnabled).toBe(false);
    expect(parseConfig({}, { FIELDSEAL_LEGACY_ENABLED: "false" }, where).legacyEnabled).toBe(false);
    expect(
      parseConfig({ legacyEnabled: false }, { FIELDSEAL_LEGACY_ENABLED: "true" }, where).legacyEnabled,
    ).toBe(true);
  });

  it("refuses anything but true or false", () => {
    expect(() => parseConfig({}, { FIELDSEAL_LEGACY_ENABLED: "off" }, where)).toThrow(
      /FIELDSEAL_LEGACY_ENABLED.*must be true or false/,
    );
  });
});
