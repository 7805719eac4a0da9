import { describe, expect, it } from "vitest";
import { parseConfig, SETTINGS } from "../../src/config.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };

describe("webhook signature settings", () => {
  it("default to refusing v1 and to 100,000 signatures per signer", () => {
    const c = parseConfig({}, {}, where);
    expect(c.webhook.hmacAcceptV1).toBe(false);
    expect(c.webhook.hmacReplayCapacityPerSigner).toBe(100_000);
  });

  it("are read from the environment over the config file", () => {
    const c = parseConfig(
      { webhook: { hmacAcceptV1: false, hmacReplayCapacityPerSigner: 10 } },
      { FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES: "true", FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER: "500" },
      where,
    );
    expect(c.webhook.hmacAcceptV1).toBe(true);
    expect(c.webhook.hmacReplayCapacityPerSigner).toBe(500);
    const fromFile = parseConfig(
      { webhook: { hmacAcceptV1: true, hmacReplayCapacityPerSigner: 7 } },
      {},
      where,
    );
    expect(fromFile.webhook).toMatchObject({ hmacAcceptV1: true, hmacReplayCapacityPerSigner: 7 });
  });

  it("refuse a capacity of zero and a v1 switch that is not a boolean", () => {
    expect(() => parseConfig({}, { FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER: "0" }, where)).toThrow(
      /FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER/,
    );
    expect(() => parseConfig({}, { FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES: "maybe" }, where)).toThrow(
      /FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES/,
    );
  });

  it("are listed for --help", () => {
    const names = SETTINGS.map((s) => s.env);
    expect(names).toContain("FIELDSEAL_WEBHOOK_ACCEPT_V1_SIGNATURES");
    expect(names).toContain("FIELDSEAL_WEBHOOK_REPLAY_CAPACITY_PER_SIGNER");
  });
});
