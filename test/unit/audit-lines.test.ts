import { describe, expect, it } from "vitest";
import { jsonLinesAudit } from "../../src/audit.js";

describe("jsonLinesAudit", () => {
  it("writes one JSON line per event: time and the audit marker first, then the event's fields in order", () => {
    const lines: string[] = [];
    const sink = jsonLinesAudit((line) => lines.push(line));
    const before = Date.now();
    sink.record({
      action: "decrypt",
      principal: "billing",
      outcome: "ok",
      requestId: 'r-"1"\n',
      keyring: "default",
      version: 3,
      scopeKind: "session",
      scopeId: "s-1",
      field: "credit_card",
      code: undefined,
    });
    sink.record({ action: "authenticate", principal: "", outcome: "denied" });
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line.endsWith("}\n")).toBe(true);
    const [first, second] = lines.map((l) => JSON.parse(l));
    expect(Object.keys(first)).toEqual([
      "time",
      "audit",
      "action",
      "principal",
      "outcome",
      "requestId",
      "keyring",
      "version",
      "scopeKind",
      "scopeId",
      "field",
    ]);
    expect(first).toMatchObject({ audit: true, requestId: 'r-"1"\n', version: 3 });
    expect(Date.parse(first.time)).toBeGreaterThanOrEqual(before - 1);
    expect(second).toEqual({
      time: second.time,
      audit: true,
      action: "authenticate",
      principal: "",
      outcome: "denied",
    });
  });
});
