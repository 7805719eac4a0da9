import { describe, expect, it } from "vitest";
import { parseConfig, SETTINGS } from "../../src/config.js";
import { isFieldsealError } from "../../src/errors.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };

describe("the store write budget setting", () => {
  it("defaults to 48 writes per keyring per day, a third of what Secrets Manager sustains", () => {
    expect(parseConfig({}, {}, where).rotation.storeWritesPerDay).toBe(48);
    expect(SETTINGS.find((s) => s.env === "FIELDSEAL_STORE_WRITES_PER_DAY")).toMatchObject({
      file: "rotation.storeWritesPerDay",
      default: "48",
    });
  });

  it("is read from the file and the environment, the environment first", () => {
    expect(parseConfig({ rotation: { storeWritesPerDay: 24 } }, {}, where).rotation.storeWritesPerDay).toBe(
      24,
    );
    const c = parseConfig(
      { rotation: { storeWritesPerDay: 24 } },
      { FIELDSEAL_STORE_WRITES_PER_DAY: "100" },
      where,
    );
    expect(c.rotation.storeWritesPerDay).toBe(100);
  });

  it("refuses a budget that is not a whole number from 1 to 86,400", () => {
    for (const bad of ["0", "-3", "1.5", "86401", "lots"]) {
      let caught: unknown;
      try {
        parseConfig({}, { FIELDSEAL_STORE_WRITES_PER_DAY: bad }, where);
      } catch (err) {
        caught = err;
      }
      expect(isFieldsealError(caught, "invalid_argument")).toBe(true);
      expect((caught as Error).message).toContain("FIELDSEAL_STORE_WRITES_PER_DAY");
    }
  });
});
