import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { MAX_WORKERS, parseConfig } from "../../src/config.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };

describe("FIELDSEAL_WORKERS", () => {
  it("defaults to one process", () => {
    expect(parseConfig({}, {}, where).workers).toBe(1);
  });

  it("takes a number from the environment or the file, and auto as one per available core", () => {
    expect(parseConfig({ workers: 3 }, {}, where).workers).toBe(3);
    expect(parseConfig({ workers: 3 }, { FIELDSEAL_WORKERS: "2" }, where).workers).toBe(2);
    expect(parseConfig({}, { FIELDSEAL_WORKERS: "auto" }, where).workers).toBe(
      Math.min(availableParallelism(), MAX_WORKERS),
    );
    expect(parseConfig({ workers: "auto" }, {}, where).workers).toBe(
      Math.min(availableParallelism(), MAX_WORKERS),
    );
  });

  it.each(["0", "-1", "1.5", "many", String(MAX_WORKERS + 1), "AUTO"])(
    "refuses %s with a message naming auto",
    (v) => {
      expect(() => parseConfig({}, { FIELDSEAL_WORKERS: v }, where)).toThrow(
        /FIELDSEAL_WORKERS \(file key "workers"\) must be a whole number from 1 to 256 or auto/,
      );
    },
  );
});
