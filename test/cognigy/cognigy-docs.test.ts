/**
 * docs/cognigy.md is what a flow author configures from: its settings table must name every Cognigy and
 * webhook setting Fieldseal has, and the rate-limit error it prints must be the one Fieldseal sends.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CognigyRequestBudget } from "../../src/cognigy/request-budget.js";
import { SETTINGS } from "../../src/config.js";

const doc = readFileSync(fileURLToPath(new URL("../../docs/cognigy.md", import.meta.url)), "utf8");
const sources = readFileSync(
  fileURLToPath(new URL("../../docs/cognigy-sources.md", import.meta.url)),
  "utf8",
);

describe("docs/cognigy.md", () => {
  it("lists every FIELDSEAL_COGNIGY_* and FIELDSEAL_WEBHOOK_* setting with its config-file key", () => {
    const ours = SETTINGS.filter((s) => /^FIELDSEAL_(COGNIGY|WEBHOOK)_/.test(s.env));
    expect(ours.length).toBeGreaterThan(10);
    for (const s of ours) expect(doc).toContain(`\`${s.env}\` (\`${s.file}\`)`);
  });

  it("prints the rate-limit refusal exactly as the request budget words it", async () => {
    let t = 0;
    const budget = new CognigyRequestBudget({ limit: 1000, windowMs: 300_000, now: () => t });
    for (let i = 0; i < 1000; i++) (await budget.take(t + 6000)).done();
    t += 88_000; // the first token comes back in 212 s
    const err = await budget.take(t + 6000).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const printed = /`(Cognigy push failed after 0 attempt\(s\): Cognigy\.AI allows[^`]*)`/.exec(doc)?.[1];
    expect(printed?.replace(/\s+/g, " ")).toBe(`Cognigy push failed after 0 attempt(s): ${err?.message}`);
  });

  it("links every Cognigy page it cites to docs.cognigy.com, and cognigy-sources.md quotes each of them", () => {
    const cited = [...doc.matchAll(/https:\/\/docs\.cognigy\.com\/[a-z0-9/-]+\//g)].map((m) => m[0]);
    expect(new Set(cited).size).toBeGreaterThanOrEqual(5);
    for (const url of new Set(cited)) expect(sources).toContain(`<${url}>`);
  });
});
