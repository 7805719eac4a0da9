import { randomBytes, randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, describe, expect, inject, it, vi } from "vitest";
import { KeyVersionState, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { isFieldsealError } from "../../src/errors.js";
import { withNewPrimary } from "../../src/keys/keyring-state.js";
import { type KeyEvent, Keyrings } from "../../src/keys/keyrings.js";
import { MAX_SECRET_BYTES, SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { MOTO_CREDENTIALS, MOTO_REGION, motoClient } from "../support/moto.js";

const endpoint = inject("motoEndpoint");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "wall-session" } });

describe("Secrets Manager keyrings on moto", () => {
  const sm = motoClient(endpoint);
  const open: Keyrings[] = [];
  const storeCalls: string[] = [];
  const keyrings = (prefix: string, options: ConstructorParameters<typeof Keyrings>[1] = {}) => {
    const k = new Keyrings(
      new SecretsManagerKeyStore({
        endpoint,
        region: MOTO_REGION,
        credentials: MOTO_CREDENTIALS,
        secretPrefix: prefix,
        onStoreCall: (e) => storeCalls.push(e.op),
      }),
      options,
    );
    open.push(k);
    return k;
  };
  const servers: TestFieldseal[] = [];
  afterEach(async () => {
    for (const k of open.splice(0)) await k.close();
    for (const s of servers.splice(0)) await s.close();
  });
  afterAll(() => sm.destroy());

  /**
   * What the old middleware (or a runbook) does: PutSecretValue of the tutorial's shape, made AWSCURRENT.
   * On AWS one PutSecretValue moves AWSCURRENT; moto (5.x) leaves it on a version that UpdateSecretVersionStage
   * promoted too (it tracks the "current" version separately), so the label is moved explicitly to reach the
   * state AWS would hold: AWSCURRENT on the tutorial-shaped version only.
   */
  async function writeTutorialShape(secretId: string): Promise<void> {
    const before = await sm.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
    );
    const put = await sm.send(
      new PutSecretValueCommand({
        SecretId: secretId,
        SecretString: JSON.stringify({ key: randomBytes(32).toString("base64"), version: "v9" }),
        VersionStages: ["AWSPENDING"],
      }),
    );
    await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: put.VersionId,
        RemoveFromVersionId: before.VersionId,
      }),
    );
    const listed = await sm.send(
      new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }),
    );
    const current = listed.Versions?.filter((v) => v.VersionStages?.includes("AWSCURRENT"));
    expect(current?.map((v) => v.VersionId)).toEqual([put.VersionId]);
  }

  /** Moves AWSCURRENT back to the version carrying Fieldseal's FIELDSEAL_PENDING label (the runbook fix). */
  async function restoreFieldsealVersion(secretId: string): Promise<void> {
    const listed = await sm.send(
      new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }),
    );
    const ours = listed.Versions?.find((v) => v.VersionStages?.includes("FIELDSEAL_PENDING"));
    const current = listed.Versions?.find((v) => v.VersionStages?.includes("AWSCURRENT"));
    if (!ours?.VersionId || !current?.VersionId) throw new Error("no Fieldseal version to restore");
    await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: ours.VersionId,
        RemoveFromVersionId: current.VersionId,
      }),
    );
  }

  it.each([
    { how: "a keyring Fieldseal created", adopted: false },
    { how: "an adopted tutorial secret after Fieldseal's first write", adopted: true },
  ])("refuses a tutorial-shaped AWSCURRENT written behind Fieldseal's back on $how", async ({ adopted }) => {
    const prefix = `overwrite-${randomUUID()}/`;
    const secretId = `${prefix}cards`;
    const events: KeyEvent[] = [];
    let now = Date.now();
    const a = keyrings(prefix, { now: () => now, primaryRefreshMs: 1_000, onEvent: (e) => events.push(e) });
    if (adopted) {
      await sm.send(
        new CreateSecretCommand({
          Name: secretId,
          SecretString: JSON.stringify({ key: randomBytes(32).toString("base64"), version: "v1" }),
        }),
      );
      expect((await a.ensure("cards")).versions[0]?.legacyLabel).toBe("v1");
    } else {
      await a.create("cards");
    }
    await a.rotate("cards");
    await a.rotate("cards");
    const cached = [1, 2, 3].map(async (v) => hex((await a.openingKey("cards", v)).material));
    const materials = await Promise.all(cached);
    const sealing = await a.sealingKey("cards");
    expect(sealing.version).toBe(3);

    await writeTutorialShape(secretId);

    // A new replica never reads it as revision 1 (version 1 only): it refuses, naming the keyring.
    const fresh = keyrings(prefix);
    const err = await fresh.sealingKey("cards").catch((e: unknown) => e);
    expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
    expect((err as Error).message).toContain('keyring "cards"');
    expect((err as Error).message).toContain("tutorial");
    await expect(fresh.openingKey("cards", 1)).rejects.toMatchObject({ code: "key_store_conflict" });
    expect(fresh.storeConflicts()).toMatchObject([{ keyring: "cards", kind: "store" }]);

    // The running replica keeps serving what it cached, and refuses writes with the same clear error
    // instead of colliding forever.
    now += 1_000;
    for (const [i, m] of materials.entries())
      expect(hex((await a.openingKey("cards", i + 1)).material)).toBe(m);
    expect(hex((await a.sealingKey("cards")).material)).toBe(hex(sealing.material));
    await expect(a.rotate("cards")).rejects.toMatchObject({ code: "key_store_conflict" });
    await expect(a.destroy("cards", 1)).rejects.toMatchObject({ code: "key_store_conflict" });
    await vi.waitFor(() => expect(a.storeConflicts()).toMatchObject([{ keyring: "cards", kind: "store" }]));
    expect(events.some((e) => e.type === "store_conflict" && e.kind === "store")).toBe(true);

    // The store never wrote anything over the tutorial-shaped value.
    const current = await sm.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
    );
    expect(JSON.parse(current.SecretString ?? "{}").version).toBe("v9");

    // The runbook fix: AWSCURRENT back on Fieldseal's newest version. Both replicas recover.
    await restoreFieldsealVersion(secretId);
    now += 1_000;
    a.storeConflicts();
    await vi.waitFor(() => expect(a.storeConflicts()).toEqual([]));
    expect((await a.rotate("cards")).primary).toBe(4);
    const recovered = keyrings(prefix);
    expect(hex((await recovered.openingKey("cards", 1)).material)).toBe(materials[0]);
  });

  it("refuses two tutorial write-backs in a row over an adopted keyring, whatever their creation times", async () => {
    const prefix = `twice-${randomUUID()}/`;
    const secretId = `${prefix}cards`;
    await sm.send(
      new CreateSecretCommand({
        Name: secretId,
        SecretString: JSON.stringify({ key: randomBytes(32).toString("base64"), version: "v1" }),
      }),
    );
    const a = keyrings(prefix);
    await a.ensure("cards");
    // Two Fieldseal writes (revisions 2 and 3): what any keyring in use has (seal reservations write too).
    await a.rotate("cards");
    await a.rotate("cards");
    const primary = (await a.describe("cards")).primary;
    await writeTutorialShape(secretId);
    await writeTutorialShape(secretId);
    const listed = await sm.send(
      new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }),
    );
    // The second write-back moved AWSPREVIOUS off Fieldseal's version: only FIELDSEAL_PENDING is left on it,
    // and creation times cannot be relied on (moto's listing stamps every version with the time of the call;
    // AWS's can share a millisecond).
    const ours = listed.Versions?.find((v) => v.VersionStages?.includes("FIELDSEAL_PENDING"));
    expect(ours?.VersionStages).toEqual(["FIELDSEAL_PENDING"]);

    // A new replica must not read the second write-back as the keyring's version 1 only.
    const fresh = keyrings(prefix);
    const err = await fresh.openingKey("cards", 1).catch((e: unknown) => e);
    expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
    await expect(fresh.sealingKey("cards")).rejects.toMatchObject({ code: "key_store_conflict" });
    await restoreFieldsealVersion(secretId);
    expect((await keyrings(prefix).describe("cards")).primary).toBe(primary);
  });

  it("raises a hand-written version of the same revision with other material, even when a seal reservation meets it first", async () => {
    const prefix = `forged-${randomUUID()}/`;
    const secretId = `${prefix}cards`;
    const a = keyrings(prefix, { sealBlockSize: 1 });
    await a.create("cards");
    await a.rotate("cards");
    const v1 = hex((await a.openingKey("cards", 1)).material);
    await a.sealingKey("cards");
    // Let the reservation made ahead in the background land first.
    const currentId = async () =>
      (await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" })))
        .VersionId;
    for (let i = 0, seen = await currentId(); i < 20; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await currentId();
      if (now === seen) break;
      seen = now;
    }
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
    );
    const forged = JSON.parse(stored.SecretString ?? "{}") as {
      versions: Array<{ material: string }>;
      writer?: string;
    };
    (forged.versions[0] as { material: string }).material = randomBytes(32).toString("base64");
    forged.writer = "by-hand";
    const put = await sm.send(
      new PutSecretValueCommand({
        SecretId: secretId,
        SecretString: JSON.stringify(forged),
        VersionStages: ["AWSPENDING"],
      }),
    );
    await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: put.VersionId,
        RemoveFromVersionId: stored.VersionId,
      }),
    );
    // Sealing on runs out of reserved seals: the reservation's write meets the forged state before any load.
    let err: unknown;
    for (let i = 0; i < 500 && err === undefined; i++) {
      err = await a.sealingKey("cards").then(
        () => undefined,
        (e: unknown) => e,
      );
    }
    expect(isFieldsealError(err, "key_store_conflict")).toBe(true);
    expect((err as Error).message).toContain("version 1");
    expect(a.storeConflicts()).toEqual([expect.objectContaining({ keyring: "cards" })]);
    expect(hex((await a.openingKey("cards", 1)).material)).toBe(v1);
  });

  it("knows a keyring Fieldseal only created (no write since) by its CreateSecret version id", async () => {
    const prefix = `created-${randomUUID()}/`;
    await keyrings(prefix).create("fresh");
    const listed = await sm.send(
      new ListSecretVersionIdsCommand({ SecretId: `${prefix}fresh`, IncludeDeprecated: true }),
    );
    expect(listed.Versions?.some((v) => v.VersionStages?.includes("FIELDSEAL_PENDING"))).toBe(false);
    await writeTutorialShape(`${prefix}fresh`);
    await expect(keyrings(prefix).openingKey("fresh", 1)).rejects.toMatchObject({
      code: "key_store_conflict",
    });
  });

  it("still adopts a tutorial secret Fieldseal has never written as version 1", async () => {
    const prefix = `adopt-${randomUUID()}/`;
    const key = randomBytes(32);
    await sm.send(
      new CreateSecretCommand({
        Name: `${prefix}legacy`,
        SecretString: JSON.stringify({ key: key.toString("base64"), version: "2024-01" }),
      }),
    );
    const k = keyrings(prefix);
    const opened = await k.openingKeyByLegacyLabel("legacy", "2024-01");
    expect(hex(opened.material)).toBe(key.toString("hex"));
    expect(k.storeConflicts()).toEqual([]);
  });

  it("three replicas destroying, rotating, retiring and sealing at once lose no live version and agree", async () => {
    const prefix = `storm-${randomUUID()}/`;
    let now = Date.now();
    const clock = { now: () => now, primaryRefreshMs: 0, sealBlockSize: 1 };
    const [a, b, c] = [keyrings(prefix, clock), keyrings(prefix, clock), keyrings(prefix, clock)] as const;
    await a.create("cards");
    for (let i = 0; i < 5; i++) await a.rotate("cards");
    await a.retire("cards", 3);
    // Every material any replica ever handed out for sealing, by version.
    const sealedUnder = new Map<number, string>();
    const seal = async (k: Keyrings) => {
      const key = await k.sealingKey("cards");
      const seen = sealedUnder.get(key.version);
      if (seen !== undefined) expect(hex(key.material)).toBe(seen);
      sealedUnder.set(key.version, hex(key.material));
    };
    const outcomes: string[] = [];
    const run = async (name: string, work: () => Promise<unknown>) => {
      try {
        await work();
        outcomes.push(`${name}:ok`);
      } catch (err) {
        // Losing every compare-and-swap to the others is allowed, and so is a retirement to 4 that comes
        // after the destroy raised the minimum to 5; anything else is not.
        const late = isFieldsealError(err, "failed_precondition") && /cannot be lowered/.test(err.message);
        expect(isFieldsealError(err, "conflict") || (name === "retire" && late)).toBe(true);
        outcomes.push(`${name}:${(err as { code: string }).code}`);
      }
    };
    await Promise.all([
      run("destroy", async () => {
        await a.destroy("cards", 3);
        await a.destroy("cards", 5, { retire: true });
      }),
      run("rotate", async () => {
        for (let i = 0; i < 4; i++) {
          await b.rotate("cards");
          await seal(b);
        }
      }),
      run("retire", async () => {
        await c.retire("cards", 4);
        await seal(c);
        await c.rotate("cards");
      }),
      run("seal", async () => {
        for (let i = 0; i < 10; i++) await seal(a);
      }),
    ]);
    now += 1;
    const fresh = keyrings(prefix);
    const state = await fresh.describe("cards");
    console.info(
      `storm: ${outcomes.join(", ")}; primary ${state.primary}, min ${state.minDecryptVersion}, destroyed ${JSON.stringify(state.destroyed?.map((r) => [r.from, r.through]))}`,
    );
    expect(state.minDecryptVersion).toBe(5);
    expect(state.destroyed?.at(-1)?.through).toBe(4);
    expect(state.versions.map((v) => v.version)).toEqual(
      Array.from({ length: state.primary - 4 }, (_, i) => i + 5),
    );
    // Every live version a value was sealed under opens everywhere with the material it was sealed with.
    for (const [version, material] of sealedUnder) {
      for (const reader of [a, b, c, fresh]) {
        if (version < 5) {
          await expect(reader.openingKey("cards", version)).rejects.toMatchObject({
            code: "key_version_destroyed",
          });
        } else {
          expect(hex((await reader.openingKey("cards", version)).material)).toBe(material);
        }
      }
    }
    for (const reader of [a, b, c, fresh]) expect(reader.storeConflicts()).toEqual([]);
  }, 60_000);

  it("rotates past the Secrets Manager size wall by destroying retired versions in between", async () => {
    const prefix = `wall-${randomUUID()}/`;
    // 440 versions written at once, each with a full 2^28 seal count (the longest stored form), so the
    // test spends its time on the rotations that matter: the ones that reach the wall and pass it.
    const seeder = new SecretsManagerKeyStore({
      endpoint,
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
      secretPrefix: prefix,
    });
    let seed = withNewPrimary(
      { name: "busy", revision: 0, primary: 0, minDecryptVersion: 1, versions: [] },
      Date.now(),
    );
    for (let i = 1; i < 440; i++) seed = { ...withNewPrimary(seed, Date.now()), revision: 1 };
    seed = { ...seed, versions: seed.versions.map((v) => ({ ...v, sealsReserved: 2 ** 28 })) };
    expect((await seeder.compareAndSwap(0, seed)).ok).toBe(true);
    await seeder.close();

    // A running server on the same keyring seals a value. The seeded primary's seal budget is spent, so the
    // server rotates by usage first and seals under version 441.
    const server = await startTestFieldseal({
      store: new SecretsManagerKeyStore({
        endpoint,
        region: MOTO_REGION,
        credentials: MOTO_CREDENTIALS,
        secretPrefix: prefix,
      }),
      settings: { primaryRefreshMs: 100 },
    });
    servers.push(server);
    const sealedEarly = await server.client("bot").encryptFields({
      keyring: "busy",
      scope,
      fields: { pan: { kind: { case: "stringValue", value: "4111" } } },
    });
    expect(sealedEarly.keyVersion).toBe(441);

    const k = keyrings(prefix, { sealBlockSize: 1 });
    const v1 = hex((await k.openingKey("busy", 1)).material);
    // Without destroying: rotations stop with too_large once the whole keyring would pass 65,536 bytes.
    let wall = 0;
    for (let i = 0; i < 100; i++) {
      const err = await k.rotate("busy").then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err === undefined) continue;
      expect(isFieldsealError(err, "too_large")).toBe(true);
      expect((err as Error).message).toContain(String(MAX_SECRET_BYTES));
      wall = (await k.describe("busy")).primary;
      break;
    }
    console.info(`a Secrets Manager keyring stops rotating at ${wall} versions`);
    expect(wall).toBeGreaterThan(441);
    expect(wall).toBeLessThan(500);
    expect(hex((await k.openingKey("busy", 1)).material)).toBe(v1);

    // Retire and destroy all but the newest 20, then keep rotating well past the wall, destroying again
    // every 40 rotations.
    let primary = wall;
    const target = wall + 120;
    // At the wall even a retirement no longer fits (a longer minimum version number); it must go in the
    // same write as the destruction.
    await expect(k.retire("busy", wall - 20)).rejects.toMatchObject({ code: "too_large" });
    while (primary < target) {
      if ((primary - wall) % 40 === 0) await k.destroy("busy", primary - 20, { retire: true });
      primary = (await k.rotate("busy")).primary;
    }
    const fresh = keyrings(prefix);
    const state = await fresh.describe("busy");
    expect(state.primary).toBe(target);
    expect(state.destroyed?.length).toBe(3);
    for (const reader of [k, fresh]) {
      await expect(reader.openingKey("busy", 1)).rejects.toMatchObject({ code: "key_version_destroyed" });
      expect((await reader.openingKey("busy", target - 10)).version).toBe(target - 10);
    }
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: `${prefix}busy`, VersionStage: "AWSCURRENT" }),
    );
    expect(stored.SecretString).not.toContain(Buffer.from(v1, "hex").toString("base64"));

    // Over the RPC, the value sealed under destroyed version 441 answers key_version_destroyed once the
    // server's cache has caught up (it re-reads the keyring every primaryRefreshMs, here 100 ms).
    const admin = server.client("admin");
    await vi.waitFor(
      async () => {
        const err = await admin
          .decryptField({ scope, field: "pan", sealed: sealedEarly.sealed.pan ?? "" })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
        expect((err as ConnectError).metadata.get("fieldseal-reason")).toBe("key_version_destroyed");
      },
      { timeout: 10_000, interval: 100 },
    );
    const info = await admin.describeKey({ keyring: "busy" });
    expect(info.key?.versions[440]?.state).toBe(KeyVersionState.DESTROYED);
    expect(info.key?.primaryVersion).toBe(target);
    console.info(
      `${target} versions with destroys in between: ${Buffer.byteLength(stored.SecretString ?? "")} bytes stored`,
    );
  }, 60_000);
});
