import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/log.js";

const SECRET = "CANARY-4111-1111-1111-1111";

function capture(level: Parameters<typeof createLogger>[0]) {
  const lines: string[] = [];
  return { log: createLogger(level, (line) => lines.push(line)), lines };
}

describe("the logger", () => {
  it("writes one JSON object a line with time, level, message and the safe fields", () => {
    const { log, lines } = capture("debug");
    log.info("rpc", { rpc: "x/Y", code: "ok", requestId: "r-1", ms: 1.5 });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    const entry = JSON.parse(lines[0] ?? "");
    expect(entry).toMatchObject({ level: "info", msg: "rpc", rpc: "x/Y", code: "ok", requestId: "r-1" });
    expect(Number.isNaN(Date.parse(entry.time))).toBe(false);
  });

  it("redacts credential headers and every field not on the allow-list", () => {
    const { log, lines } = capture("debug");
    const risky = [
      "authorization",
      "Authorization",
      "x-api-key",
      "cookie",
      "set-cookie",
      "x-fieldseal-principal",
      "x-fieldseal-signature",
      "token",
      "apiKey",
      "bearerToken",
      "secret",
      "key",
      "material",
      "value",
      "plaintext",
      "sealed",
      "body",
      "headers",
    ];
    log.error("everything", Object.fromEntries(risky.map((name) => [name, `${SECRET}:${name}`])));
    expect(lines.join("")).not.toContain(SECRET);
    const entry = JSON.parse(lines[0] ?? "");
    for (const name of risky) expect(entry[name]).toBe("[redacted]");
  });

  it("drops lines below the configured level and everything when silent", () => {
    const warn = capture("warn");
    warn.log.debug("a");
    warn.log.info("b");
    warn.log.warn("c");
    warn.log.error("d");
    expect(warn.lines.map((l) => JSON.parse(l).msg)).toEqual(["c", "d"]);
    const silent = capture("silent");
    silent.log.error("e");
    expect(silent.lines).toEqual([]);
  });
});
