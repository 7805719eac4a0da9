import { randomBytes, randomUUID } from "node:crypto";
import { CreateSecretCommand, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, inject, it } from "vitest";
import { KeyVersionState, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { motoClient } from "../support/moto.js";
import { tutorialSeal } from "../support/tutorial-blob.js";

const endpoint = inject("motoEndpoint");
const KEYRING = "cognigy";
const CARD = "4111111111111111";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "tutorial-session" } });

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

  it("is adopted at once: the tutorial version only opens, a fresh version seals; blobs need the legacy permission", async () => {
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
    const blob = tutorialSeal(key, "v1", "credit_card", CARD);

    // The first read adopts: v1 (the tutorial key, with its label) is decrypt-only, v2 is a new primary.
    const adopted = await fieldseal.client("admin").describeKey({ keyring: KEYRING });
    expect(adopted.key?.primaryVersion).toBe(2);
    expect(adopted.key?.versions.map((v) => [v.version, v.legacyLabel, v.state])).toEqual([
      [1, "v1", KeyVersionState.DECRYPT_ONLY],
      [2, "", KeyVersionState.PRIMARY],
    ]);
    // ...and the secret already holds the whole keyring, version 1 being the tutorial's key byte for byte.
    const stored = await sm.send(
      new GetSecretValueCommand({ SecretId: secretName, VersionStage: "AWSCURRENT" }),
    );
    const keyring = JSON.parse(stored.SecretString ?? "{}");
    expect(keyring.format).toBe("fieldseal-keyring/1");
    expect(keyring.primary).toBe(2);
    const materials = keyring.versions.map((v: { material: string }) => v.material);
    expect(materials[0]).toBe(key.toString("base64"));
    expect(materials).toHaveLength(2);
    expect(materials[1]).not.toBe(materials[0]);

    // New values are sealed under the fresh version, never under the key the tutorial's code still holds.
    const fresh = await fieldseal.client("bot").encryptFields({
      scope,
      keyring: KEYRING,
      fields: { credit_card: { kind: { case: "stringValue", value: CARD } } },
    });
    expect(fresh.keyVersion).toBe(2);
    expect(fresh.sealed.credit_card?.startsWith(`fs1.${KEYRING}.2.`)).toBe(true);

    // A field grant (even decrypt:*) does not open an unbound blob; the legacy permission does.
    await expect(
      fieldseal.client("reader").decryptField({ scope, field: "credit_card", sealed: blob }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
    const opened = await fieldseal
      .client("migrator")
      .decryptField({ scope, field: "credit_card", sealed: blob });
    expect(opened).toMatchObject({ legacy: true, keyring: KEYRING, keyVersion: 1 });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });

    const denied = await fieldseal.client("ops").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: blob }],
    });
    expect(denied.results[0]?.outcome).toMatchObject({
      case: "error",
      value: { reason: "permission_denied" },
    });
    const rewrapped = await fieldseal.client("migrator").rewrapFields({
      scope,
      items: [{ field: "credit_card", sealed: blob }],
    });
    const result = rewrapped.results[0];
    expect(result?.outcome.case).toBe("sealed");
    const envelope = String(result?.outcome.value);
    expect(envelope.startsWith(`fs1.${KEYRING}.2.`)).toBe(true);
    expect(result).toMatchObject({ fromKeyVersion: 1, toKeyVersion: 2 });

    // The tutorial version still opens old blobs after a rotation; the rewrapped value needs no legacy grant.
    const rotated = await fieldseal.client("ops").rotateKey({ keyring: KEYRING });
    expect(rotated.key?.primaryVersion).toBe(3);
    expect(rotated.key?.versions.map((v) => v.legacyLabel)).toEqual(["v1", "", ""]);
    const again = await fieldseal
      .client("migrator")
      .decryptField({ scope, field: "credit_card", sealed: blob });
    expect(again).toMatchObject({ legacy: true, keyVersion: 1 });
    const bound = await fieldseal
      .client("reader")
      .decryptField({ scope, field: "credit_card", sealed: envelope });
    expect(bound).toMatchObject({ legacy: false, keyVersion: 2 });
    expect(bound.value?.kind).toEqual({ case: "stringValue", value: CARD });

    const lines = fieldseal.output().split("\n");
    expect(
      lines.some((l) => l.includes('"legacy":true') && l.includes('"fieldLabel":"unauthenticated"')),
    ).toBe(true);
    expect(lines.some((l) => l.includes("tutorial key adopted"))).toBe(true);
    expect(fieldseal.output()).not.toContain(CARD);
  }, 60_000);
});
