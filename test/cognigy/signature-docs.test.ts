/**
 * docs/cognigy.md's v2 signature example is the contract a signer is written from: its shell and Node
 * snippets are run as printed, and they, the printed signature and Fieldseal's verifier must all agree.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { signWebhookV2, WebhookSignatureVerifier } from "../../src/cognigy/webhook-signature.js";

const doc = readFileSync(fileURLToPath(new URL("../../docs/cognigy.md", import.meta.url)), "utf8");

/** The fenced block right after `<!-- signature-example:<name> -->`. */
function block(name: string): string {
  const match = new RegExp(`<!-- signature-example:${name} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``).exec(
    doc,
  );
  if (match?.[1] === undefined) throw new Error(`docs/cognigy.md has no signature-example:${name} block`);
  return match[1];
}

const SECRET = "docs-example-secret-do-not-use-0123456789";
const BODY = '{"sessionId":"sess_8f3a2c1d","variables":{"credit_card":"4111111111111111"}}';
const expected = /X-Fieldseal-Signature: (v2=[0-9a-f]{64})/.exec(block("expected"))?.[1];

describe("docs/cognigy.md: the v2 signature example", () => {
  it("prints the signature Fieldseal computes for the example's parts", () => {
    expect(expected).toBe(
      signWebhookV2(SECRET, {
        method: "POST",
        path: "/webhooks/cognigy",
        timestampSec: 1_800_000_000,
        sensitiveMetadata: "field:credit_card",
        body: BODY,
      }),
    );
  });

  it("the shell snippet (printf | openssl) prints it", () => {
    const out = execFileSync("bash", ["-c", block("sh")], { encoding: "utf8", timeout: 10_000 });
    expect(out.trim()).toBe(expected);
  });

  it("the Node snippet prints it", () => {
    const dir = mkdtempSync(join(tmpdir(), "fieldseal-doc-"));
    try {
      const file = join(dir, "sign.mjs");
      writeFileSync(file, block("node"));
      const out = execFileSync(process.execPath, [file], { encoding: "utf8", timeout: 10_000 });
      expect(out.trim()).toBe(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Fieldseal's verifier accepts the example request at its timestamp, and refuses it with another header", () => {
    const verifier = new WebhookSignatureVerifier({
      secrets: { "cognigy-flow": SECRET },
      now: () => 1_800_000_000_000,
    });
    const headers = {
      keyId: "cognigy-flow",
      timestamp: "1800000000",
      signature: expected,
      method: "POST",
      path: "/webhooks/cognigy",
    };
    expect(() => verifier.verify({ ...headers, sensitiveMetadata: "field:ssn" }, Buffer.from(BODY))).toThrow(
      /signature does not match/,
    );
    expect(verifier.verify({ ...headers, sensitiveMetadata: "field:credit_card" }, Buffer.from(BODY))).toBe(
      "cognigy-flow",
    );
  });
});
