/**
 * Adopting the tutorial's key (issue 12, item 4): the tutorial version becomes decrypt-only and a fresh
 * primary is written at once, on both stores, and replicas adopting at once agree on one new version.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateSecretCommand, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, inject, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { isFieldsealError } from "../../src/errors.js";
import { Keyrings } from "../../src/keys/keyrings.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import { adoptingTutorialKeys, hasTutorialPrimary } from "../../src/keys/tutorial-adoption.js";
import type { KeyringState, KeyStore } from "../../src/keys/types.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { MOTO_CREDENTIALS, MOTO_REGION, motoClient } from "../support/moto.js";
import { tutorialKeyring, tutorialSeal } from "../support/tutorial-blob.js";
import { startWriteRefusingProxy, type WriteRefusingProxy } from "../support/write-refusing-proxy.js";

const endpoint = inject("motoEndpoint");
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array()).toString("hex");

/** What every adopted keyring looks like: v1 = the tutorial key, decrypt-only; v2 = a new key, primary. */
function expectAdopted(state: KeyringState | undefined, key: Uint8Array, label: string): void {
  expect(state).toMatchObject({ primary: 2, minDecryptVersion: 1 });
  expect(state?.versions.map((v) => [v.version, v.legacyLabel])).toEqual([
    [1, label],
    [2, undefined],
  ]);
  expect(hex(state?.versions[0]?.material)).toBe(hex(key));
  expect(state?.versions[1]?.material).toHaveLength(32);
  expect(hex(state?.versions[1]?.material)).not.toBe(hex(key));
  expect(state?.versions[1]?.sealsReserved).toBe(0);
}

describe("adopting a tutorial key on the local store", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), "fieldseal-adopt-"));
    dirs.push(d);
    return d;
  };

  it("writes a fresh primary the first time the keyring is read; the tutorial version opens only", async () => {
    const dir = freshDir();
    const key = randomBytes(32);
    const raw = new LocalFileKeyStore(dir);
    expect((await raw.compareAndSwap(0, tutorialKeyring("cognigy", key, "v1"))).ok).toBe(true);
    const adopted: Array<[string, number]> = [];
    const store = adoptingTutorialKeys(raw, { onAdopted: (k, v) => adopted.push([k, v]) });
    const state = await store.load("cognigy");
    expectAdopted(state, key, "v1");
    expect(state?.revision).toBe(2);
    expect(adopted).toEqual([["cognigy", 2]]);
    // Stored, not only returned: a plain read sees it too, and a second read adopts nothing more.
    expectAdopted(await new LocalFileKeyStore(dir).load("cognigy"), key, "v1");
    expect((await store.load("cognigy"))?.revision).toBe(2);
    expect(adopted).toHaveLength(1);

    const keyrings = new Keyrings(store, { sealBlockSize: 1 });
    expect((await keyrings.sealingKey("cognigy")).version).toBe(2);
    expect(hex((await keyrings.openingKeyByLegacyLabel("cognigy", "v1")).material)).toBe(hex(key));
    await keyrings.close();
  });

  it("makes one new version when several processes' stores adopt at once", async () => {
    const dir = freshDir();
    const key = randomBytes(32);
    const seed = new LocalFileKeyStore(dir);
    expect((await seed.compareAndSwap(0, tutorialKeyring("cognigy", key, "v1"))).ok).toBe(true);
    const stores = Array.from({ length: 6 }, () => adoptingTutorialKeys(new LocalFileKeyStore(dir)));
    const states = await Promise.all(stores.map((s) => s.load("cognigy")));
    for (const s of states) expectAdopted(s, key, "v1");
    expect(new Set(states.map((s) => hex(s?.versions[1]?.material))).size).toBe(1);
    expect((await seed.load("cognigy"))?.versions).toHaveLength(2);
  });

  it("refuses a write that would make a tutorial version primary again", async () => {
    const dir = freshDir();
    const store = adoptingTutorialKeys(new LocalFileKeyStore(dir));
    const error = await store
      .compareAndSwap(0, tutorialKeyring("cognigy", randomBytes(32), "v1"))
      .catch((e: unknown) => e);
    expect(isFieldsealError(error, "failed_precondition")).toBe(true);
    expect(await store.load("cognigy")).toBeUndefined();
  });

  it("leaves keyrings without a tutorial primary alone", async () => {
    const dir = freshDir();
    const raw = new LocalFileKeyStore(dir);
    const store = adoptingTutorialKeys(raw);
    const keyrings = new Keyrings(store, { sealBlockSize: 1 });
    await keyrings.create("plain");
    expect((await keyrings.sealingKey("plain")).version).toBe(1);
    await keyrings.close();
    const state = (await new LocalFileKeyStore(dir).load("plain")) as KeyringState;
    expect(hasTutorialPrimary(state)).toBe(false);
    expect(state.versions).toHaveLength(1);
  });
});

describe("adopting the tutorial's secret on Secrets Manager (moto)", () => {
  const sm = motoClient(endpoint);
  const opened: KeyStore[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    sm.destroy();
  });
  const storeFor = (secretName: string) => {
    const store = adoptingTutorialKeys(
      new SecretsManagerKeyStore({
        endpoint,
        region: MOTO_REGION,
        credentials: MOTO_CREDENTIALS,
        legacySecretIds: { cognigy: secretName },
      }),
    );
    opened.push(store);
    return store;
  };

  it("writes the whole keyring in Fieldseal's format: v1 the tutorial key, v2 a fresh primary", async () => {
    const secretName = `cognigy-session-key-${randomUUID()}`;
    const key = randomBytes(32);
    await sm.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: key.toString("base64"), version: "v1-2024" }),
      }),
    );
    const state = await storeFor(secretName).load("cognigy");
    expectAdopted(state, key, "v1-2024");
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: secretName, VersionStage: "AWSCURRENT" }),
    );
    const keyring = JSON.parse(stored.SecretString ?? "{}");
    expect(keyring).toMatchObject({ format: "fieldseal-keyring/1", primary: 2, minDecryptVersion: 1 });
    expect(keyring.versions.map((v: { material: string }) => v.material)).toEqual([
      key.toString("base64"),
      Buffer.from(state?.versions[1]?.material ?? new Uint8Array()).toString("base64"),
    ]);
    expect(keyring.versions[0].legacyLabel).toBe("v1-2024");
  });

  it("makes one new version when replicas adopt at once", async () => {
    const secretName = `cognigy-session-key-${randomUUID()}`;
    const key = randomBytes(32);
    await sm.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: key.toString("base64"), version: "v1" }),
      }),
    );
    const states = await Promise.all(Array.from({ length: 4 }, () => storeFor(secretName).load("cognigy")));
    for (const s of states) expectAdopted(s, key, "v1");
    expect(new Set(states.map((s) => hex(s?.versions[1]?.material))).size).toBe(1);
  });
});

describe("adopting the tutorial's secret with a role that may not write it (real process, moto)", () => {
  const sm = motoClient(endpoint);
  const replicas: AwsReplica[] = [];
  let proxy: WriteRefusingProxy | undefined;
  afterAll(async () => {
    await stopAll(replicas);
    await proxy?.close();
    sm.destroy();
  });

  it("still opens what the tutorial key sealed, seals nothing under it, and adopts once writes are allowed", async () => {
    const secretPrefix = `adopt-readonly-${randomUUID()}/`;
    const key = randomBytes(32);
    const tutorialSecret = JSON.stringify({ key: key.toString("base64"), version: "v1" });
    await sm.send(new CreateSecretCommand({ Name: `${secretPrefix}cognigy`, SecretString: tutorialSecret }));
    proxy = await startWriteRefusingProxy(endpoint);
    const fieldseal = await startAwsReplica({
      awsEndpoint: proxy.url,
      secretPrefix,
      env: { FIELDSEAL_LEGACY_KEYRING: "cognigy", FIELDSEAL_DEFAULT_KEYRING: "cognigy" },
    });
    replicas.push(fieldseal);
    const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-readonly" } });
    const card = "4111111111111111";
    const blob = tutorialSeal(key, "v1", "credit_card", card);

    // Adoption cannot be written: the tutorial version still opens its blobs...
    const opened = await fieldseal
      .client("migrator")
      .decryptField({ scope, field: "credit_card", sealed: blob });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: card });
    expect(opened).toMatchObject({ legacy: true, keyVersion: 1 });
    expect(proxy.refused).toBeGreaterThan(0);
    // ...and nothing new is sealed under it: a clear refusal, not INTERNAL.
    const sealing = await fieldseal
      .client("bot")
      .encryptFields({ scope, fields: { credit_card: { kind: { case: "stringValue", value: card } } } })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(sealing?.code).toBe(Code.FailedPrecondition);
    expect(sealing?.rawMessage).toMatch(/successor could not be written yet/);
    // A stream of seals does not become a stream of refused writes: at most one try per second.
    const refusedBefore = proxy.refused;
    const burstStarted = performance.now();
    for (let i = 0; i < 20; i++) {
      await fieldseal
        .client("bot")
        .encryptFields({ scope, fields: { credit_card: { kind: { case: "stringValue", value: card } } } })
        .catch(() => undefined);
    }
    const burstMs = performance.now() - burstStarted;
    expect(proxy.refused - refusedBefore).toBeLessThanOrEqual(1 + Math.ceil(burstMs / 1000));
    const untouched = await sm.send(
      new GetSecretValueCommand({ SecretId: `${secretPrefix}cognigy`, VersionStage: "AWSCURRENT" }),
    );
    expect(untouched.SecretString).toBe(tutorialSecret);

    // The operator grants the write: the next read adopts, and new values go under a fresh version.
    proxy.refuseWrites = false;
    let version = 0;
    for (let i = 0; i < 50 && version === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      version = await fieldseal
        .client("bot")
        .encryptFields({ scope, fields: { credit_card: { kind: { case: "stringValue", value: card } } } })
        .then(
          (r) => r.keyVersion,
          () => 0,
        );
    }
    expect(version).toBe(2);
    // The operator was told why, without key material.
    expect(fieldseal.logs()).toContainEqual(
      expect.objectContaining({
        level: "warn",
        msg: expect.stringContaining("tutorial key not adopted"),
        keyring: "cognigy",
        code: "store_unavailable",
      }),
    );
    const output = fieldseal.output();
    expect(output).not.toContain(card);
    expect(output).not.toContain(key.toString("base64"));
  });
});

describe("adopting a tutorial key on one local store from several real processes at once", () => {
  const procs: FieldsealProcess[] = [];
  let shared: string | undefined;
  afterAll(async () => {
    await Promise.allSettled(procs.map((p) => p.stop()));
    if (shared !== undefined) rmSync(shared, { recursive: true, force: true });
  });

  it("writes one fresh primary that every process seals under and every process opens", async () => {
    shared = mkdtempSync(join(tmpdir(), "fieldseal-adopt-procs-"));
    const key = randomBytes(32);
    const seed = new LocalFileKeyStore(join(shared, "keys"));
    expect((await seed.compareAndSwap(0, tutorialKeyring("cognigy", key, "v1"))).ok).toBe(true);
    await seed.close();
    const env = {
      FIELDSEAL_DATA_DIR: shared,
      FIELDSEAL_DEFAULT_KEYRING: "cognigy",
      FIELDSEAL_LEGACY_KEYRING: "cognigy",
      FIELDSEAL_LOG_LEVEL: "warn",
    };
    const started = await Promise.all(
      Array.from({ length: 3 }, () =>
        startFieldsealProcess({ principals: [{ name: "admin", scopes: ["admin"] }], env }),
      ),
    );
    procs.push(...started);
    const clients = started.map((p) =>
      createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: p.url,
          httpVersion: "1.1",
          interceptors: [bearer(p.tokens.admin ?? "")],
        }),
      ),
    );
    // Every process reads the tutorial keyring for the first time at once.
    const described = await Promise.all(clients.map((c) => c.describeKey({ keyring: "cognigy" })));
    for (const d of described) {
      expect(d.key?.primaryVersion).toBe(2);
      expect(d.key?.versions.map((v) => v.version)).toEqual([1, 2]);
    }
    const stored = await new LocalFileKeyStore(join(shared, "keys")).load("cognigy");
    expectAdopted(stored, key, "v1");
    // One v2 for all: what each process seals, every other process opens; the tutorial blob opens too.
    const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-procs" } });
    const blob = tutorialSeal(key, "v1", "credit_card", "4111111111111111");
    for (const [i, client] of clients.entries()) {
      const { sealed, keyVersion } = await client.encryptFields({
        scope,
        fields: { credit_card: { kind: { case: "stringValue", value: `card-${i}` } } },
      });
      expect(keyVersion).toBe(2);
      const other = clients[(i + 1) % clients.length];
      const opened = await other?.decryptField({
        scope,
        field: "credit_card",
        sealed: sealed.credit_card ?? "",
      });
      expect(opened?.value?.kind).toEqual({ case: "stringValue", value: `card-${i}` });
      const legacy = await client.decryptField({ scope, field: "credit_card", sealed: blob });
      expect(legacy).toMatchObject({ legacy: true, keyVersion: 1 });
    }
  });
});

describe("two keyrings mapped to one tutorial secret (real process, moto)", () => {
  it("refuses to start, naming both: once one adopts the secret, the other could never load", async () => {
    const secretPrefix = `adopt-twice-${randomUUID()}/`;
    const started = startAwsReplica({
      awsEndpoint: endpoint,
      secretPrefix,
      config: { keyStore: { legacySecretIds: { cognigy: "session-key", cards: "session-key" } } },
    });
    // Should it start after all, stop it rather than leave it running.
    void started.then(
      (replica) => replica.stop(),
      () => undefined,
    );
    await expect(started).rejects.toThrow(/keyrings "cognigy" and "cards" name the same secret/);
  });
});

describe("a tutorial secret without a version label (real process, moto)", () => {
  const sm = motoClient(endpoint);
  const replicas: AwsReplica[] = [];
  afterAll(async () => {
    await stopAll(replicas);
    sm.destroy();
  });

  it("is adopted too: its key never seals, whatever label it lacks", async () => {
    const secretPrefix = `adopt-unlabelled-${randomUUID()}/`;
    const key = randomBytes(32);
    await sm.send(
      new CreateSecretCommand({
        Name: `${secretPrefix}cognigy`,
        SecretString: JSON.stringify({ key: key.toString("base64") }),
      }),
    );
    const fieldseal = await startAwsReplica({
      awsEndpoint: endpoint,
      secretPrefix,
      env: { FIELDSEAL_DEFAULT_KEYRING: "cognigy" },
    });
    replicas.push(fieldseal);
    const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-unlabelled" } });
    const sealed = await fieldseal.client("bot").encryptFields({
      scope,
      fields: { credit_card: { kind: { case: "stringValue", value: "4111111111111111" } } },
    });
    expect(sealed.keyVersion).toBe(2);
    const described = await fieldseal.client("admin").describeKey({ keyring: "cognigy" });
    expect(described.key?.primaryVersion).toBe(2);
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: `${secretPrefix}cognigy`, VersionStage: "AWSCURRENT" }),
    );
    const keyring = JSON.parse(stored.SecretString ?? "{}");
    expect(keyring.versions[0].material).toBe(key.toString("base64"));
    expect(keyring.versions[1].material).not.toBe(key.toString("base64"));
  });
});
