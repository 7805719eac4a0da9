import { Code } from "@connectrpc/connect";
// connect's own, @private, tables: imported here only to prove ours agree with them.
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { describe, expect, it } from "vitest";
import { connectCodeName, httpStatusForConnectCode } from "../../src/service/error-map.js";

// Every code Connect defines, plus numbers it does not (a newer peer could send one).
const codes = [
  ...Object.values(Code).filter((v): v is Code => typeof v === "number"),
  0 as Code,
  17 as Code,
  99 as Code,
];

describe("the Connect code tables in error-map agree with connect's", () => {
  it("has every Connect code to compare", () => {
    expect(codes).toContain(Code.Unauthenticated);
    expect(codes.length).toBe(16 + 3);
  });

  it.each(codes)("HTTP status for code %i", (code) => {
    expect(httpStatusForConnectCode(code)).toBe(codeToHttpStatus(code));
  });

  it.each(codes)("name of code %i", (code) => {
    expect(connectCodeName(code)).toBe(codeToString(code));
  });
});
