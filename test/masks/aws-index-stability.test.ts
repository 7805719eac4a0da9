import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";

const endpoint = inject("motoEndpoint");
const KEYRING = "lookups";
const CARD = "4111 1111 1111 1111";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s1" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

describe("blind indexes on Secrets Manager", () => {
  const replicas: AwsReplica[] = [];
  afterAll(async () => {
    await stopAll(replicas);
  });

  it("are the same on every replica and after a restart, for every version", async () => {
    const secretPrefix = `index-stability-${randomUUID()}/`;
    const start = async () => {
      const r = await startAwsReplica({
        awsEndpoint: endpoint,
        secretPrefix,
        env: { FIELDSEAL_KEYRINGS: KEYRING },
        config: { fields: { card: { format: "card" } } },
      });
      replicas.push(r);
      return r;
    };
    const [a, b] = [await start(), await start()];
    if (a === undefined || b === undefined) throw new Error("no replicas");

    const sealed = await a.client("admin").encryptFields({
      keyring: KEYRING,
      scope,
      fields: { card: text(CARD) },
      indexFields: ["card"],
    });
    const v1 = sealed.indexes.card;
    expect(v1).toMatch(new RegExp(`^fx1\\.${KEYRING}\\.1\\.[A-Za-z0-9_-]{22}$`));
    const onB = await b
      .client("admin")
      .computeIndex({ keyring: KEYRING, field: "card", value: "4111111111111111" });
    expect(onB.indexes).toEqual([v1]);

    await b.client("admin").rotateKey({ keyring: KEYRING });
    // Replicas re-read the primary every 200 ms; wait (bounded) until A indexes under version 2 too.
    let allOnA: string[] = [];
    for (let i = 0; i < 100; i++) {
      allOnA = (
        await a
          .client("admin")
          .computeIndex({ keyring: KEYRING, field: "card", value: CARD, allVersions: true })
      ).indexes;
      if (allOnA.length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(allOnA).toHaveLength(2);
    expect(allOnA[1]).toBe(v1);
    const allOnB = await b
      .client("admin")
      .computeIndex({ keyring: KEYRING, field: "card", value: CARD, allVersions: true });
    expect(allOnB.indexes).toEqual(allOnA);

    // A restarted process (a fresh key cache, the material read back from Secrets Manager) agrees.
    await a.stop();
    const c = await start();
    const allOnC = await c
      .client("admin")
      .computeIndex({ keyring: KEYRING, field: "card", value: CARD, allVersions: true });
    expect(allOnC.indexes).toEqual(allOnA);
  }, 90_000);
});
