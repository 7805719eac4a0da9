import { randomBytes, randomUUID } from "node:crypto";
import { CreateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { describe, expect, inject, it } from "vitest";
import { isFieldsealError } from "../../src/errors.js";
import { createRotationHandler, type RotationEvent } from "../../src/keys/secrets-manager-rotation.js";
import { SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import type { KeyringState } from "../../src/keys/types.js";
import { MOTO_CREDENTIALS, MOTO_REGION, motoClient } from "../support/moto.js";

const endpoint = inject("motoEndpoint");

function firstState(name: string): KeyringState {
  return {
    name,
    revision: 1,
    primary: 1,
    minDecryptVersion: 1,
    versions: [
      {
        version: 1,
        material: new Uint8Array(randomBytes(32)),
        createdAt: "2025-01-01T00:00:00.000Z",
        sealsReserved: 0,
      },
    ],
  };
}

async function setup() {
  const client = motoClient(endpoint);
  const prefix = `r-${randomUUID()}/`;
  const store = new SecretsManagerKeyStore({ client, secretPrefix: prefix });
  const handler = createRotationHandler({ client, secretPrefix: prefix });
  const steps = (secretId: string, token: string) => (Step: RotationEvent["Step"]) =>
    handler({ Step, SecretId: secretId, ClientRequestToken: token });
  return { client, prefix, store, steps, close: () => client.destroy() };
}

describe("Secrets Manager scheduled rotation", () => {
  it("appends a primary version through the four steps and keeps every old one", async () => {
    const { prefix, store, steps, close } = await setup();
    const v1 = firstState("sched");
    await store.compareAndSwap(0, v1);
    const run = steps(`${prefix}sched`, randomUUID());
    await run("createSecret");
    await run("createSecret");
    expect((await store.load("sched"))?.revision).toBe(1);
    await run("setSecret");
    await run("testSecret");
    await run("finishSecret");
    await run("finishSecret");
    const after = await store.load("sched");
    expect(after?.revision).toBe(2);
    expect(after?.primary).toBe(2);
    expect(after?.versions).toHaveLength(2);
    expect(after?.versions[0]?.material).toEqual(v1.versions[0]?.material);
    expect(after?.versions[1]?.material).toHaveLength(32);
    close();
  });

  it("refuses to finish when the keyring changed after createSecret", async () => {
    const { prefix, store, steps, close } = await setup();
    const v1 = firstState("moved");
    await store.compareAndSwap(0, v1);
    const run = steps(`${prefix}moved`, randomUUID());
    await run("createSecret");
    const loaded = (await store.load("moved")) as KeyringState;
    const v2: KeyringState = {
      ...loaded,
      revision: 2,
      primary: 2,
      versions: [
        ...loaded.versions,
        {
          version: 2,
          material: new Uint8Array(randomBytes(32)),
          createdAt: "2025-01-02T00:00:00.000Z",
          sealsReserved: 0,
        },
      ],
    };
    expect((await store.compareAndSwap(1, v2)).ok).toBe(true);
    const error = await run("finishSecret").catch((e: unknown) => e);
    expect(isFieldsealError(error, "conflict")).toBe(true);
    const after = await store.load("moved");
    expect(after?.revision).toBe(2);
    expect(after?.versions[1]?.material).toEqual(v2.versions[1]?.material);
    close();
  });

  it("rotates the tutorial's secret into a keyring that keeps its key as version 1", async () => {
    const { client, store, close } = await setup();
    const secretName = `cognigy-session-key-${randomUUID()}`;
    const material = randomBytes(32);
    await client.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: material.toString("base64"), version: "v1" }),
      }),
    );
    const handler = createRotationHandler({ client, keyringNameFor: () => "cognigy" });
    const token = randomUUID();
    for (const Step of ["createSecret", "setSecret", "testSecret", "finishSecret"] as const) {
      await handler({ Step, SecretId: secretName, ClientRequestToken: token });
    }
    const legacy = new SecretsManagerKeyStore({
      endpoint,
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
      legacySecretIds: { cognigy: secretName },
    });
    const after = await legacy.load("cognigy");
    expect(after?.revision).toBe(2);
    expect(Buffer.from(after?.versions[0]?.material ?? []).equals(material)).toBe(true);
    expect(after?.versions[0]?.legacyLabel).toBe("v1");
    await legacy.close();
    await store.close();
    close();
  });
});
