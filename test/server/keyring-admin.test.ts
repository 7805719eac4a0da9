import { readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { KeyVersionState, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { decodeKeyring, encodeKeyring } from "../../src/keys/keyring-codec.js";
import { currentKeyringFile, keyringRevisionFiles, writeKeyringRevision } from "../keys/support.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-admin" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

async function failure(
  call: Promise<unknown>,
): Promise<{ code: Code; reason: string | null; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  return { code: ce.code, reason: ce.metadata.get("fieldseal-reason"), message: ce.rawMessage };
}

describe("keyring administration over the API", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [
        { name: "admin", scopes: ["admin"] },
        { name: "bot", scopes: ["encrypt"] },
        { name: "reader", scopes: ["decrypt:*"] },
        { name: "ops", scopes: ["rotate"] },
        { name: "shredder", scopes: ["destroy"] },
      ],
      settings: { keyrings: ["cards", "loyalty"], primaryRefreshMs: 100 },
    });
  });
  afterAll(async () => {
    await fs.close();
  });

  it("creates the default and the configured keyrings at start-up, and no other", async () => {
    expect((await fs.client("admin").listKeyrings({})).keyrings).toEqual(["cards", "default", "loyalty"]);
  });

  it("answers NOT_FOUND (keyring_not_found) to EncryptFields on an unknown keyring and creates nothing", async () => {
    const bot = fs.client("bot");
    for (let i = 0; i < 3; i++) {
      const f = await failure(
        bot.encryptFields({ keyring: "paymnets", scope, fields: { pan: text("4111") } }),
      );
      expect(f).toMatchObject({ code: Code.NotFound, reason: "keyring_not_found" });
      expect(f.message).toContain('"paymnets"');
    }
    expect((await fs.client("admin").listKeyrings({})).keyrings).not.toContain("paymnets");
    expect(
      (await bot.encryptFields({ keyring: "cards", scope, fields: { pan: text("4111") } })).keyVersion,
    ).toBe(1);
  });

  it("creates a keyring through RotateKey with create and the rotate permission only", async () => {
    const denied = await failure(fs.client("bot").rotateKey({ keyring: "payments", create: true }));
    expect(denied.code).toBe(Code.PermissionDenied);
    const missing = await failure(fs.client("ops").rotateKey({ keyring: "payments" }));
    expect(missing).toMatchObject({ code: Code.NotFound, reason: "keyring_not_found" });
    const stale = await failure(
      fs.client("ops").rotateKey({ keyring: "payments", create: true, expectedPrimaryVersion: 3 }),
    );
    expect(stale.code).toBe(Code.FailedPrecondition);

    const created = await fs.client("ops").rotateKey({ keyring: "payments", create: true });
    expect(created.key?.primaryVersion).toBe(1);
    expect(fs.audit.events).toContainEqual(
      expect.objectContaining({ action: "create", principal: "ops", outcome: "ok", keyring: "payments" }),
    );
    // On an existing keyring, create is a plain rotation.
    expect(
      (await fs.client("ops").rotateKey({ keyring: "payments", create: true })).key?.primaryVersion,
    ).toBe(2);
  });

  it("destroys retired versions with the destroy permission only; their values answer key_version_destroyed", async () => {
    const bot = fs.client("bot");
    const ops = fs.client("ops");
    const reader = fs.client("reader");
    const old = await bot.encryptFields({ keyring: "loyalty", scope, fields: { member: text("M-1") } });
    expect(old.keyVersion).toBe(1);
    await ops.rotateKey({ keyring: "loyalty" });
    await ops.rotateKey({ keyring: "loyalty" });
    const kept = await bot.encryptFields({ keyring: "loyalty", scope, fields: { member: text("M-3") } });
    expect(kept.keyVersion).toBe(3);

    // Not retired yet: refused. Rotate alone may not destroy; encrypt may not either.
    expect(
      await failure(fs.client("shredder").destroyKeyVersions({ keyring: "loyalty", belowVersion: 2 })),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "failed_precondition",
    });
    await ops.retireKeyVersions({ keyring: "loyalty", minDecryptVersion: 3 });
    for (const who of ["ops", "bot", "reader"]) {
      const f = await failure(fs.client(who).destroyKeyVersions({ keyring: "loyalty", belowVersion: 3 }));
      expect(f.code).toBe(Code.PermissionDenied);
    }
    expect(await failure(fs.client("shredder").destroyKeyVersions({ keyring: "loyalty" }))).toMatchObject({
      code: Code.InvalidArgument,
    });
    expect(
      await failure(fs.client("shredder").destroyKeyVersions({ keyring: "loyalty", belowVersion: 4 })),
    ).toMatchObject({ code: Code.FailedPrecondition });

    const destroyed = await fs.client("shredder").destroyKeyVersions({ keyring: "loyalty", belowVersion: 3 });
    expect(destroyed.destroyedVersions).toEqual([1, 2]);
    expect(destroyed.key?.versions.map((v) => [v.version, v.state])).toEqual([
      [1, KeyVersionState.DESTROYED],
      [2, KeyVersionState.DESTROYED],
      [3, KeyVersionState.PRIMARY],
    ]);
    expect(destroyed.key?.versions[0]?.destroyedAt).toBeDefined();
    // The log says which versions went, under allow-listed names (not "[redacted]").
    expect(fs.logs.filter((l) => l.includes("key versions destroyed"))).toEqual([
      expect.stringContaining('"keyring":"loyalty","fromVersion":1,"toVersion":2'),
    ]);
    expect(destroyed.key?.versions[0]?.createdAt).toBeUndefined();
    expect(fs.audit.events).toContainEqual(
      expect.objectContaining({
        action: "destroy",
        principal: "shredder",
        outcome: "ok",
        keyring: "loyalty",
      }),
    );
    expect(fs.audit.events).toContainEqual(
      expect.objectContaining({ action: "destroy", principal: "ops", outcome: "denied" }),
    );
    // Again: nothing left to destroy.
    expect(
      (await fs.client("admin").destroyKeyVersions({ keyring: "loyalty", belowVersion: 3 }))
        .destroyedVersions,
    ).toEqual([]);

    const opened = await failure(
      reader.decryptField({ scope, field: "member", sealed: old.sealed.member ?? "" }),
    );
    expect(opened).toMatchObject({ code: Code.FailedPrecondition, reason: "key_version_destroyed" });
    const batch = await reader.decryptFields({
      scope,
      items: [{ field: "member", sealed: old.sealed.member ?? "" }],
    });
    expect(batch.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { reason: "key_version_destroyed" },
    });
    expect(
      (await reader.decryptField({ scope, field: "member", sealed: kept.sealed.member ?? "" })).value,
    ).toMatchObject(text("M-3"));
    // The material is gone from the store's text, and the keyring keeps rotating.
    const keysDir = join(fs.dataDir, "keys");
    const stored = await readFile(currentKeyringFile(keysDir, "loyalty"), "utf8");
    expect(decodeKeyring(stored, "loyalty").versions.map((v) => v.version)).toEqual([3]);
    // No revision file left on disk holds a destroyed version's material.
    for (const file of keyringRevisionFiles(keysDir, "loyalty")) {
      const versions = decodeKeyring(await readFile(file, "utf8"), "loyalty").versions;
      expect(versions.map((v) => v.version).filter((v) => v < 3)).toEqual([]);
    }
    expect((await ops.rotateKey({ keyring: "loyalty" })).key?.primaryVersion).toBe(4);
  });

  it("retires and destroys in one write only for a caller who may do both", async () => {
    const denied = await failure(
      fs.client("shredder").destroyKeyVersions({ keyring: "payments", belowVersion: 2, retire: true }),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(
      await failure(
        fs.client("admin").destroyKeyVersions({ keyring: "payments", belowVersion: 9, retire: true }),
      ),
    ).toMatchObject({ code: Code.FailedPrecondition });
    const done = await fs
      .client("admin")
      .destroyKeyVersions({ keyring: "payments", belowVersion: 2, retire: true });
    expect(done.destroyedVersions).toEqual([1]);
    expect(done.key?.minDecryptVersion).toBe(2);
  });

  it("fails readiness while the store holds changed key material, and recovers once it is repaired", async () => {
    const keysDir = join(fs.dataDir, "keys");
    const good = decodeKeyring(await readFile(currentKeyringFile(keysDir, "cards"), "utf8"), "cards");
    const forged = new Uint8Array(32).fill(9);
    const forgedState = {
      ...good,
      revision: good.revision + 1,
      versions: good.versions.map((v) => (v.version === 1 ? { ...v, material: forged } : v)),
    };
    await writeKeyringRevision(keysDir, forgedState, encodeKeyring(forgedState));
    const described = await failure(fs.client("admin").describeKey({ keyring: "cards" }));
    expect(described).toMatchObject({ code: Code.FailedPrecondition, reason: "key_store_conflict" });

    const readyz = async () => (await fetch(`${fs.url}/readyz`)).status;
    const health = createClient(Health, createGrpcTransport({ baseUrl: fs.url }));
    expect(await readyz()).toBe(503);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    const metrics = await (await fetch(`${fs.url}/metrics`)).text();
    expect(metrics).toMatch(
      /fieldseal_key_material_conflicts_total\{keyring="cards",kind="material"\} [1-9]/,
    );
    const logged = fs.logs.filter((l) => l.includes("key store state refused"));
    expect(logged.length).toBeGreaterThan(0);
    expect(logged[0]).toContain('"reason":"material"');
    expect(logged[0]).toContain("change the material of version 1");
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
    for (const line of fs.logs) expect(line).not.toContain(b64(forged));
    // Sealing goes on under the cached keys.
    expect(
      (await fs.client("bot").encryptFields({ keyring: "cards", scope, fields: { pan: text("4") } }))
        .keyVersion,
    ).toBe(1);

    const repaired = { ...good, revision: good.revision + 2 };
    await writeKeyringRevision(keysDir, repaired, encodeKeyring(repaired));
    await vi.waitFor(async () => expect(await readyz()).toBe(200), { timeout: 10_000, interval: 100 });
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("refuses to rotate on a restored older backup, fails readiness, and recovers once the newest is back", async () => {
    const keysDir = join(fs.dataDir, "keys");
    const admin = fs.client("admin");
    await admin.rotateKey({ keyring: "loyalty" });
    const backup = decodeKeyring(await readFile(currentKeyringFile(keysDir, "loyalty"), "utf8"), "loyalty");
    await admin.rotateKey({ keyring: "loyalty" });
    const sealed = await fs
      .client("bot")
      .encryptFields({ keyring: "loyalty", scope, fields: { pts: text("1200") } });
    const newest = decodeKeyring(await readFile(currentKeyringFile(keysDir, "loyalty"), "utf8"), "loyalty");
    // The operator restores the older backup: only its revision file is left.
    for (const file of keyringRevisionFiles(keysDir, "loyalty")) await unlink(file);
    await writeKeyringRevision(keysDir, backup, encodeKeyring(backup));

    const rotated = await failure(admin.rotateKey({ keyring: "loyalty" }));
    expect(rotated).toMatchObject({ code: Code.FailedPrecondition, reason: "key_store_conflict" });
    expect(rotated.message).toContain(`revision ${backup.revision}`);
    // Nothing was written on the backup: no new version numbered like one already sealed under.
    expect(keyringRevisionFiles(keysDir, "loyalty")).toEqual([
      join(keysDir, `loyalty.${backup.revision}.json`),
    ]);
    const readyz = async () => (await fetch(`${fs.url}/readyz`)).status;
    expect(await readyz()).toBe(503);
    expect(await (await fetch(`${fs.url}/metrics`)).text()).toMatch(
      /fieldseal_key_material_conflicts_total\{keyring="loyalty",kind="store"\} [1-9]/,
    );
    // The value sealed before the restore still opens from the cached keys.
    const opened = await fs
      .client("reader")
      .decryptField({ scope, field: "pts", sealed: sealed.sealed.pts ?? "" });
    expect(opened.value).toMatchObject(text("1200"));

    await writeKeyringRevision(keysDir, newest, encodeKeyring(newest));
    await vi.waitFor(async () => expect(await readyz()).toBe(200), { timeout: 10_000, interval: 100 });
    expect((await admin.rotateKey({ keyring: "loyalty" })).key?.primaryVersion).toBe(newest.primary + 1);
  });
});
