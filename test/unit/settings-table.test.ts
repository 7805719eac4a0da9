import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../../src/config.js";
import { settingsTable, withSettingsTable } from "../../src/settings-table.js";

describe("the README's settings table", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

  it("is the table SETTINGS renders (run `npm run settings-table` after adding a setting)", () => {
    expect(withSettingsTable(readme)).toBe(readme);
  });

  it("lists every setting once, by its environment variable and config file key", () => {
    const table = settingsTable();
    for (const s of SETTINGS) {
      const row = table
        .split("\n")
        .filter((l) => l.startsWith(`| \`${s.env}\``) && l.includes(`\`${s.file}\``));
      expect(row, `${s.env} / ${s.file}`).toHaveLength(1);
    }
  });
});
