import { describe, expect, it } from "vitest";
import { parseEnvelope } from "../../src/engine/envelope.js";
import { parseScopedEnvelope } from "../../src/engine/scoped.js";

/** The payload and number checks fs1 and fs1s share, with each format's own wording around the reason. */
describe("envelope payload and number checks", () => {
  const cases: Array<[payloadOrNumbers: string, reason: string]> = [
    ["1.KFh+", "payload is not base64url"],
    ["1.KFh", "payload is not canonical base64url"],
    ["1.", "payload is not base64url"],
    ["1.KFhi", "payload is too short"],
    ["0.KFhi", "key version is not a positive integer"],
    ["01.KFhi", "key version is not a positive integer"],
    ["4294967296.KFhi", "key version is not a positive integer"],
  ];

  it.each(cases)("fs1 %s: %s", (rest, reason) => {
    expect(() => parseEnvelope(`fs1.crm.${rest}`)).toThrow(
      expect.objectContaining({
        code: "envelope_malformed",
        message: `sealed value is not a valid fs1 envelope: ${reason}`,
      }),
    );
  });

  it.each(cases)("fs1s %s: %s", (rest, reason) => {
    const [version, payload] = rest.split(".");
    expect(() => parseScopedEnvelope(`fs1s.crm.${version}.1.${payload}`)).toThrow(
      expect.objectContaining({
        code: "envelope_malformed",
        message: `sealed value is not a valid fs1s envelope: ${reason}`,
      }),
    );
  });

  it("fs1s checks its generation like its version", () => {
    for (const generation of ["0", "01", "4294967296", "x"]) {
      expect(() => parseScopedEnvelope(`fs1s.crm.1.${generation}.KFhi`)).toThrow(
        "sealed value is not a valid fs1s envelope: generation is not a positive integer",
      );
    }
  });
});
