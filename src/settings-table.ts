import { SETTINGS, type SettingDoc } from "./config.js";

/**
 * The README's settings table, rendered from `SETTINGS` (src/config.ts), so that the table, `--help` and
 * the parser are one declaration. `npm run settings-table` rewrites the README's table; a test checks it.
 */
export function settingsTable(settings: readonly SettingDoc[] = SETTINGS): string {
  const rows = [
    ["environment", "config file key", "meaning", "default", "secret"],
    ...settings.map((s) => [code(s.env), code(s.file), s.description, s.default, s.secret ? "yes" : ""]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

function code(name: string): string {
  return `\`${name}\``;
}

/** Replaces the settings table in `readme` (the table whose header starts `| environment`). */
export function withSettingsTable(readme: string, table = settingsTable()): string {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| environment"));
  if (start < 0) throw new Error("README has no settings table (a line starting with `| environment`)");
  let end = start;
  while (end < lines.length && lines[end]?.startsWith("|")) end++;
  return [...lines.slice(0, start), table, ...lines.slice(end)].join("\n");
}
