/**
 * A replica configured without FIELDSEAL_ERASABLE_KEYRINGS seals plain fs1 values on a keyring the others
 * treat as erasable, and ForgetScope cannot erase those. The erasable replicas make it loud: a warning
 * naming the keyring (once per keyring) and a counter on every such value they open.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const PRINCIPALS = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
];
const scope = create(ScopeSchema, { id: { case: "userId", value: "u42" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

describe("a replica without the erasable setting beside erasable ones", () => {
  const keys = mkdtempSync(join(tmpdir(), "fieldseal-unerasable-"));
  let plain: TestFieldseal;
  let erasable: TestFieldseal;
  beforeAll(async () => {
    // One key store, as replicas share one.
    plain = await startTestFieldseal({
      principals: PRINCIPALS,
      store: new LocalFileKeyStore(keys),
      settings: { keyrings: ["crm"] },
    });
    erasable = await startTestFieldseal({
      principals: PRINCIPALS,
      store: new LocalFileKeyStore(keys),
      settings: { keyrings: ["crm"], scopes: { erasableKeyrings: ["crm"], cacheTtlMs: 50 } },
    });
  });
  afterAll(async () => {
    await plain?.close();
    await erasable?.close();
    rmSync(keys, { recursive: true, force: true });
  });

  it("is told apart by DescribeKey, and its plain values are counted and logged where they are opened", async () => {
    expect((await plain.client("admin").describeKey({ keyring: "crm" })).key?.erasable).toBe(false);
    expect((await erasable.client("admin").describeKey({ keyring: "crm" })).key?.erasable).toBe(true);
    const fromPlain = (
      await plain.client("bot").encryptFields({ keyring: "crm", scope, fields: { f: text("v") } })
    ).sealed.f as string;
    expect(fromPlain).toMatch(/^fs1\.crm\./);
    const fromErasable = (
      await erasable.client("bot").encryptFields({ keyring: "crm", scope, fields: { f: text("w") } })
    ).sealed.f as string;
    expect(fromErasable).toMatch(/^fs1s\.crm\./);

    const reader = erasable.client("reader");
    // A scope-keyed value is not counted; each plain one is; the warning is written once.
    await reader.decryptField({ scope, field: "f", sealed: fromErasable });
    for (let i = 0; i < 3; i++) await reader.decryptField({ scope, field: "f", sealed: fromPlain });
    const metrics = (await erasable.server.metrics.scrape()).text;
    expect(metrics).toMatch(/^fieldseal_unerasable_values_opened_total\{keyring="crm"\} 3$/m);
    const warnings = erasable.logs.filter((l) => l.includes("plain fs1 value on an erasable keyring"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0] as string)).toMatchObject({ level: "warn", keyring: "crm" });
    expect(warnings[0]).not.toContain("u42");

    // ForgetScope on the erasable replica erases the scope-keyed value, not the plain one: the gap the
    // warning is about.
    await erasable.client("admin").forgetScope({ keyring: "crm", scope });
    await expect(reader.decryptField({ scope, field: "f", sealed: fromErasable })).rejects.toThrow();
    expect((await reader.decryptField({ scope, field: "f", sealed: fromPlain })).value?.kind.value).toBe("v");
  });
});
