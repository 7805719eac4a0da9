import { randomBytes, randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FieldsealError, isFieldsealError } from "../../src/errors.js";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { SecretsManagerKeyStore, versionToken } from "../../src/keys/secrets-manager-store.js";
import type { KeyringState, KeyVersion } from "../../src/keys/types.js";
import { freePort, MOTO_CREDENTIALS, MOTO_REGION, motoClient } from "../support/moto.js";

const endpoint = inject("motoEndpoint");

function newKey(version: number, material: Uint8Array = new Uint8Array(randomBytes(32))): KeyVersion {
  return { version, material, createdAt: "2025-01-01T00:00:00.000Z", sealsReserved: 0 };
}

function firstState(name: string, material?: Uint8Array): KeyringState {
  return { name, revision: 1, primary: 1, minDecryptVersion: 1, versions: [newKey(1, material)] };
}

/** The state after one rotation: a new version appended and made primary. */
function rotated(state: KeyringState): KeyringState {
  const version = state.versions.length + 1;
  return {
    ...state,
    revision: state.revision + 1,
    primary: version,
    versions: [...state.versions, newKey(version)],
  };
}

function bytes(material: Uint8Array): string {
  return Buffer.from(material).toString("hex");
}

describe("SecretsManagerKeyStore on moto", () => {
  let prefix: string;
  let store: SecretsManagerKeyStore;
  let client: SecretsManagerClient;
  const calls: { op: string; ok: boolean }[] = [];

  function makeStore(options: Partial<ConstructorParameters<typeof SecretsManagerKeyStore>[0]> = {}) {
    return new SecretsManagerKeyStore({
      endpoint,
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
      secretPrefix: prefix,
      onStoreCall: (e) => calls.push({ op: e.op, ok: e.ok }),
      ...options,
    });
  }

  beforeAll(() => {
    client = motoClient(endpoint);
    prefix = `t-${randomUUID()}/`;
    store = makeStore();
  });
  afterAll(async () => {
    await store.close();
    client.destroy();
  });

  it("reads a missing keyring as undefined", async () => {
    expect(await store.load("absent")).toBeUndefined();
  });

  it("creates a keyring and reads it back byte for byte", async () => {
    const state = firstState("created");
    const result = await store.compareAndSwap(0, state);
    expect(result).toEqual({ ok: true, state });
    const loaded = await store.load("created");
    expect(loaded?.revision).toBe(1);
    expect(bytes(loaded?.versions[0]?.material ?? new Uint8Array())).toBe(
      bytes(state.versions[0]?.material ?? new Uint8Array()),
    );
    expect(calls.some((c) => c.op === "CreateSecret" && c.ok)).toBe(true);
  });

  it("refuses to create a keyring that exists and returns the stored one", async () => {
    const state = firstState("twice");
    expect((await store.compareAndSwap(0, state)).ok).toBe(true);
    const second = await store.compareAndSwap(0, firstState("twice"));
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.current?.versions[0]?.material).toEqual(state.versions[0]?.material);
  });

  it("fails a stale compare-and-swap and returns the current state", async () => {
    const v1 = firstState("stale");
    await store.compareAndSwap(0, v1);
    const v2 = rotated(v1);
    expect((await store.compareAndSwap(1, v2)).ok).toBe(true);
    const result = await store.compareAndSwap(1, rotated(v1));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.current?.revision).toBe(2);
      expect(result.current?.versions[1]?.material).toEqual(v2.versions[1]?.material);
    }
  });

  it("repeating a write that already landed is a success", async () => {
    const v1 = firstState("retried");
    await store.compareAndSwap(0, v1);
    const v2 = rotated(v1);
    expect((await store.compareAndSwap(1, v2)).ok).toBe(true);
    expect((await store.compareAndSwap(1, v2)).ok).toBe(true);
    expect((await store.load("retried"))?.revision).toBe(2);
  });

  it("lets only one of two replicas win an identical seal-block reservation", async () => {
    const v1 = firstState("reserve-twice");
    await store.compareAndSwap(0, v1);
    const other = makeStore();
    try {
      // Both replicas read revision 1 and reserve the same block: equal states, separate objects.
      const reserve = (): KeyringState => ({
        ...v1,
        revision: 2,
        versions: v1.versions.map((v) => ({ ...v, sealsReserved: v.sealsReserved + 65_536 })),
      });
      const results = [await store.compareAndSwap(1, reserve()), await other.compareAndSwap(1, reserve())];
      expect(results.map((r) => r.ok)).toEqual([true, false]);
      expect((await store.load("reserve-twice"))?.versions[0]?.sealsReserved).toBe(65_536);
    } finally {
      await other.close();
    }
  });

  it("lets exactly one of many racing writers of the same revision win, and stores the winner", async () => {
    const v1 = firstState("race");
    await store.compareAndSwap(0, v1);
    const writers = Array.from({ length: 8 }, () => makeStore());
    const candidates = writers.map(() => rotated(v1));
    const results = await Promise.all(
      writers.map((w, i) => w.compareAndSwap(1, candidates[i] as KeyringState)),
    );
    await Promise.all(writers.map((w) => w.close()));
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    expect(winners).toHaveLength(1);
    const winner = candidates[winners[0] as number] as KeyringState;
    const stored = await store.load("race");
    expect(stored?.revision).toBe(2);
    expect(bytes(stored?.versions[1]?.material ?? new Uint8Array())).toBe(
      bytes(winner.versions[1]?.material ?? new Uint8Array()),
    );
    for (const r of results) {
      if (!r.ok) expect(r.current?.revision).toBe(2);
    }
  });

  it("lets exactly one of many racing creators win", async () => {
    const writers = Array.from({ length: 6 }, () => makeStore());
    const candidates = writers.map(() => firstState("create-race"));
    const results = await Promise.all(
      writers.map((w, i) => w.compareAndSwap(0, candidates[i] as KeyringState)),
    );
    await Promise.all(writers.map((w) => w.close()));
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    expect(winners).toHaveLength(1);
    const stored = await store.load("create-race");
    expect(stored?.versions[0]?.material).toEqual(candidates[winners[0] as number]?.versions[0]?.material);
  });

  it("counts a write as won when a colliding writer promoted it and a later write replaced it", async () => {
    const v1 = firstState("promoted-for-us");
    await store.compareAndSwap(0, v1);
    const other = makeStore();
    const sdk = motoClient(endpoint);
    let interleaved = false;
    // A real client with a pause point: between our PutSecretValue and our AWSCURRENT move, another writer
    // of revision 2 collides with our pending version and promotes it, then writes revision 3 on top.
    sdk.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === "PutSecretValueCommand" && !interleaved) {
          interleaved = true;
          const collided = await other.compareAndSwap(1, rotated(v1));
          if (collided.ok || collided.current === undefined) throw new Error("the other writer should lose");
          expect(collided.current.revision).toBe(2);
          expect((await other.compareAndSwap(2, rotated(collided.current))).ok).toBe(true);
        }
        return out;
      },
      { step: "initialize", name: "interleaveAfterPut" },
    );
    const mine = makeStore({ client: sdk });
    try {
      const next = rotated(v1);
      const result = await mine.compareAndSwap(1, next);
      expect(interleaved).toBe(true);
      expect(result.ok).toBe(true);
      const stored = await store.load("promoted-for-us");
      expect(stored?.revision).toBe(3);
      expect(bytes(stored?.versions[1]?.material ?? new Uint8Array())).toBe(
        bytes(next.versions[1]?.material ?? new Uint8Array()),
      );
    } finally {
      await Promise.all([mine.close(), other.close()]);
      sdk.destroy();
    }
  });

  it("completes a write that a crashed writer stored but never promoted", async () => {
    const v1 = firstState("crashed");
    await store.compareAndSwap(0, v1);
    const orphan = rotated(v1);
    // What a writer leaves behind when it dies between PutSecretValue and the AWSCURRENT move.
    await client.send(
      new PutSecretValueCommand({
        SecretId: `${prefix}crashed`,
        SecretString: encodeKeyring(orphan),
        ClientRequestToken: versionToken("crashed", 2),
        VersionStages: ["FIELDSEAL_PENDING"],
      }),
    );
    expect((await store.load("crashed"))?.revision).toBe(1);
    const result = await store.compareAndSwap(1, rotated(v1));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.current?.versions[1]?.material).toEqual(orphan.versions[1]?.material);
    const next = rotated(orphan);
    expect((await store.compareAndSwap(2, next)).ok).toBe(true);
  });

  it("keeps every version byte-exact across 150 rotations", async () => {
    let state = firstState("long");
    expect((await store.compareAndSwap(0, state)).ok).toBe(true);
    for (let i = 0; i < 150; i++) {
      const next = rotated(state);
      const result = await store.compareAndSwap(state.revision, next);
      expect(result.ok).toBe(true);
      state = next;
    }
    const loaded = await store.load("long");
    expect(loaded?.revision).toBe(151);
    expect(loaded?.primary).toBe(151);
    expect(loaded?.versions.map((v) => bytes(v.material))).toEqual(
      state.versions.map((v) => bytes(v.material)),
    );
  });

  it("round-trips material that is not valid UTF-8", async () => {
    const material = new Uint8Array(32).fill(0xff);
    material.set([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0x00], 0);
    await store.compareAndSwap(0, firstState("binary", material));
    const loaded = await store.load("binary");
    expect(bytes(loaded?.versions[0]?.material ?? new Uint8Array())).toBe(bytes(material));
  });

  it("lists keyrings under its prefix only, sorted and without the prefix", async () => {
    const listPrefix = `l-${randomUUID()}/`;
    const listing = makeStore({ secretPrefix: listPrefix });
    for (const name of ["charlie", "alpha", "bravo"]) await listing.compareAndSwap(0, firstState(name));
    await client.send(new CreateSecretCommand({ Name: `other-${randomUUID()}`, SecretString: "{}" }));
    expect(await listing.list()).toEqual(["alpha", "bravo", "charlie"]);
    await listing.close();
  });

  it("refuses a keyring too large for one secret", async () => {
    let state = firstState("huge");
    const versions = Array.from({ length: 600 }, (_, i) => newKey(i + 1));
    state = { ...state, primary: 600, versions };
    const error = await store.compareAndSwap(0, state).catch((e: unknown) => e);
    expect(isFieldsealError(error, "too_large")).toBe(true);
    expect((error as FieldsealError).message).toContain("65536");
    expect(await store.load("huge")).toBeUndefined();
  });

  it("reports malformed stored data as internal without quoting it", async () => {
    await client.send(
      new CreateSecretCommand({ Name: `${prefix}garbled`, SecretString: "not json SECRETBYTES" }),
    );
    const error = await store.load("garbled").catch((e: unknown) => e);
    expect(isFieldsealError(error, "internal")).toBe(true);
    expect((error as Error).message).toContain("garbled");
    expect((error as Error).message).not.toContain("SECRETBYTES");
  });

  it("fails fast with store_unavailable when the endpoint is unreachable", async () => {
    const port = await freePort();
    const down = makeStore({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 2, requestTimeoutMs: 1_000 });
    const error = await down.load("anything").catch((e: unknown) => e);
    await down.close();
    expect(isFieldsealError(error, "store_unavailable")).toBe(true);
    expect((error as Error).message).toContain("anything");
    expect((error as Error).message).toContain("GetSecretValue");
  });
});

describe("SecretsManagerKeyStore reading the tutorial's secret", () => {
  it("adopts the tutorial key as version 1 and keeps it through the first rotation", async () => {
    const client = motoClient(endpoint);
    const secretName = `cognigy-session-key-${randomUUID()}`;
    const material = new Uint8Array(randomBytes(32));
    material[0] = 0xff;
    await client.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: Buffer.from(material).toString("base64"), version: "v1-2024" }),
      }),
    );
    const store = new SecretsManagerKeyStore({
      endpoint,
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
      legacySecretIds: { cognigy: secretName },
    });
    const loaded = await store.load("cognigy");
    expect(loaded).toMatchObject({ name: "cognigy", revision: 1, primary: 1, minDecryptVersion: 1 });
    expect(loaded?.versions[0]?.legacyLabel).toBe("v1-2024");
    expect(bytes(loaded?.versions[0]?.material ?? new Uint8Array())).toBe(bytes(material));
    expect(await store.list()).toContain("cognigy");

    const next = rotated(loaded as KeyringState);
    expect((await store.compareAndSwap(1, next)).ok).toBe(true);
    const after = await store.load("cognigy");
    expect(after?.revision).toBe(2);
    expect(after?.versions[0]?.legacyLabel).toBe("v1-2024");
    expect(bytes(after?.versions[0]?.material ?? new Uint8Array())).toBe(bytes(material));
    expect(after?.versions[1]?.material).toEqual(next.versions[1]?.material);
    await store.close();
    client.destroy();
  });

  it("rejects a tutorial key that is not 32 bytes without echoing it", async () => {
    const client = motoClient(endpoint);
    const secretName = `short-key-${randomUUID()}`;
    const shortKey = Buffer.from("sixteen byte key").toString("base64");
    await client.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: shortKey, version: "v1" }),
      }),
    );
    const store = new SecretsManagerKeyStore({
      endpoint,
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
      legacySecretIds: { short: secretName },
    });
    const error = await store.load("short").catch((e: unknown) => e);
    expect(isFieldsealError(error, "internal")).toBe(true);
    expect((error as Error).message).toContain("16 bytes");
    expect((error as Error).message).not.toContain(shortKey);
    await store.close();
    client.destroy();
  });
});
