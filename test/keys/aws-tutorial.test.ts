import { createCipheriv, randomBytes, randomUUID } from "node:crypto";
import { CreateSecretCommand, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { motoClient } from "../support/moto.js";

const endpoint = inject("motoEndpoint");
const KEYRING = "cognigy";
const CARD = "4111111111111111";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "tutorial-session" } });

/** What the tutorial's code does: AES-256-GCM with a random nonce, no associated data, then base64 JSON. */
function tutorialSeal(key: Buffer, label: string, field: string, value: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final(), cipher.getAuthTag()]);
  const blob = {
    nonce: nonce.toString("base64"),
    ciphertext: ciphertext.toString("base64"),
    key_version: label,
    encrypted_at: "2025-03-01T12:00:00+00:00",
    original_field: field,
  };
  return Buffer.from(JSON.stringify(blob)).toString("base64");
}

describe.each([
  { where: "under the keyring's own secret name", legacySecretName: false },
  { where: "in a secret mapped by keyStore.legacySecretIds", legacySecretName: true },
])("a tutorial secret $where", ({ legacySecretName }) => {
  const replicas: AwsReplica[] = [];
  const sm = motoClient(endpoint);
  afterAll(async () => {
    await stopAll(replicas);
    sm.destroy();
  });

  it("is adopted: tutorial blobs open, rewrap to fs1, and keep opening after a rotation", async () => {
    const secretPrefix = `tutorial-${randomUUID()}/`;
    const secretName = legacySecretName
      ? `${secretPrefix}legacy/cognigy-session-key`
      : secretPrefix + KEYRING;
    const key = randomBytes(32);
    await sm.send(
      new CreateSecretCommand({
        Name: secretName,
        SecretString: JSON.stringify({ key: key.toString("base64"), version: "v1" }),
      }),
    );
    const fieldseal = await startAwsReplica({
      awsEndpoint: endpoint,
      secretPrefix,
      env: { FIELDSEAL_LEGACY_KEYRING: KEYRING },
      ...(legacySecretName ? { config: { keyStore: { legacySecretIds: { [KEYRING]: secretName } } } } : {}),
    });
    replicas.push(fieldseal);
    const reader = fieldseal.client("reader");
    const blob = tutorialSeal(key, "v1", "credit_card", CARD);

    const opened = await reader.decryptField({ scope, field: "credit_card", sealed: blob });
    expect(opened).toMatchObject({ legacy: true, keyring: KEYRING, keyVersion: 1 });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
    const adopted = await fieldseal.client("admin").describeKey({ keyring: KEYRING });
    expect(adopted.key?.versions.map((v) => [v.version, v.legacyLabel])).toEqual([[1, "v1"]]);

    const rewrapped = await fieldseal.client("ops").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: blob }],
    });
    const result = rewrapped.results[0];
    expect(result?.outcome.case).toBe("sealed");
    const envelope = String(result?.outcome.value);
    expect(envelope.startsWith(`fs1.${KEYRING}.1.`)).toBe(true);
    expect(result).toMatchObject({ fromKeyVersion: 1, toKeyVersion: 1 });

    const rotated = await fieldseal.client("ops").rotateKey({ keyring: KEYRING });
    expect(rotated.key?.primaryVersion).toBe(2);
    expect(rotated.key?.versions.map((v) => v.legacyLabel)).toEqual(["v1", ""]);

    for (const sealed of [blob, envelope]) {
      const again = await reader.decryptField({ scope, field: "credit_card", sealed });
      expect(again.value?.kind).toEqual({ case: "stringValue", value: CARD });
      expect(again.keyVersion).toBe(1);
      expect(again.legacy).toBe(sealed === blob);
    }
    // The secret now holds the whole keyring, version 1 being the tutorial's key byte for byte.
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: secretName, VersionStage: "AWSCURRENT" }),
    );
    const keyring = JSON.parse(stored.SecretString ?? "{}");
    expect(keyring.format).toBe("fieldseal-keyring/1");
    expect(keyring.versions.map((v: { material: string }) => v.material)[0]).toBe(key.toString("base64"));
    expect(keyring.versions).toHaveLength(2);
    expect(fieldseal.output()).not.toContain(CARD);
  }, 60_000);
});
