import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";

const where = { dataDir: "/tmp/fs", configFile: "/tmp/fs/config.json", cwd: "/tmp/fs" };
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
