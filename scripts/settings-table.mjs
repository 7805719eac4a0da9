// Rewrites the README's settings table from SETTINGS (src/config.ts), the one declaration of every setting.
// Run through `npm run settings-table`, which builds dist/ first; test/unit/settings-table.test.ts checks it.
import { readFileSync, writeFileSync } from "node:fs";
import { withSettingsTable } from "../dist/src/settings-table.js";

const path = new URL("../README.md", import.meta.url);
const before = readFileSync(path, "utf8");
const after = withSettingsTable(before);
if (after !== before) writeFileSync(path, after);
console.log(after === before ? "README settings table is up to date" : "README settings table rewritten");
