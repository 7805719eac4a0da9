import { readdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import type { SessionPusher } from "../../src/service/fieldseal-service.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const CANARY = "CANARY-4111-1111-1111-1111";
const session = create(ScopeSchema, { id: { case: "sessionId", value: "s-audit" } });
const pusher: SessionPusher = {
  async push() {
    return { attempts: 1, httpStatus: 200, deduplicated: false };
  },
};

describe("audit trail in its own file", () => {
  let fs: TestFieldseal;
  let auditFile: string;
  let sealed = "";

  beforeAll(async () => {
    fs = await startTestFieldseal({
      // The file comes from the config; the test must not pass its own sink.
      settings: { audit: { file: "audit.jsonl" } },
      overrides: { pusher },
    });
    auditFile = join(fs.dataDir, "audit.jsonl");
  });
  afterAll(async () => {
    await fs?.close();
  });

  it("writes one event per decrypt, rewrap, rotation, retirement, denial and push, and never the value", async () => {
    const bot = fs.client("bot");
    const billing = fs.client("billing");
    const ops = fs.client("ops");
    const admin = fs.client("admin");
    const r = await bot.encryptFields({
      scope: session,
      fields: { credit_card: { kind: { case: "stringValue", value: CANARY } } },
    });
    sealed = r.sealed.credit_card ?? "";
    await billing.decryptField({ scope: session, field: "credit_card", sealed });
    await ops.rotateKey({});
    const rewrapped = await ops.rewrapFields({ scope: session, items: [{ field: "credit_card", sealed }] });
    expect(rewrapped.results[0]?.outcome.case).toBe("sealed");
    await admin.retireKeyVersions({ minDecryptVersion: 1 });
    await bot.pushSession({
      sessionId: "s-audit",
      context: { credit_card: { kind: { case: "stringValue", value: sealed } } },
    });
    await expect(
      billing.decryptField({ scope: session, field: "national_id", sealed }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });

    // No event in process memory: the configured file is the sink.
    expect(fs.audit.events).toEqual([]);
    const text = readFileSync(auditFile, "utf8");
    const events = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    const summary = events.map((e) => `${e.action}:${e.outcome}:${e.principal}`);
    expect(summary).toEqual([
      "encrypt:ok:bot",
      "decrypt:ok:billing",
      "rotate:ok:ops",
      "rewrap:ok:ops",
      "retire:ok:admin",
      "push:ok:bot",
      "decrypt:denied:billing",
    ]);
    for (const e of events) {
      expect(e.audit).toBe(true);
      expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(events[1]).toMatchObject({
      keyring: "default",
      version: 1,
      scopeKind: "session",
      scopeId: "s-audit",
      field: "credit_card",
    });
    expect(events[3]).toMatchObject({ version: 1, toVersion: 2, field: "credit_card" });
    expect(events[6]).toMatchObject({ field: "national_id", code: "permission_denied" });

    // Neither the value, nor the sealed payload, nor any key material from the key store.
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain(sealed.split(".")[3]);
    let keysChecked = 0;
    for (const name of readdirSync(join(fs.dataDir, "keys"))) {
      const keyring = readFileSync(join(fs.dataDir, "keys", name), "utf8");
      for (const b64 of keyring.match(/[A-Za-z0-9+/_-]{40,}={0,2}/g) ?? []) {
        expect(text).not.toContain(b64);
        keysChecked++;
      }
    }
    expect(keysChecked).toBeGreaterThanOrEqual(2);
  });

  it("creates the file readable by its owner only", () => {
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);
  });

  it("reopens the file at its path after log rotation moved it, losing no event", async () => {
    const rotated = `${auditFile}.1`;
    renameSync(auditFile, rotated);
    const before = readFileSync(rotated, "utf8").split("\n").filter(Boolean).length;
    // Written after the move but before the reopen: still goes to the moved file, as with any logger.
    await fs.client("ops").rotateKey({});
    fs.server.reopenAudit();
    await fs.client("ops").rotateKey({});
    const old = readFileSync(rotated, "utf8").split("\n").filter(Boolean);
    const fresh = readFileSync(auditFile, "utf8").split("\n").filter(Boolean);
    expect(old).toHaveLength(before + 1);
    expect(fresh).toHaveLength(1);
    expect(JSON.parse(fresh[0] ?? "{}")).toMatchObject({ action: "rotate", principal: "ops", outcome: "ok" });
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);
  });
});
