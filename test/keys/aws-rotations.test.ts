import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";

const endpoint = inject("motoEndpoint");
const ROTATIONS = 150;
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "rotations-session" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

describe("Fieldseal processes on Secrets Manager: many rotations", () => {
  const started: AwsReplica[] = [];
  afterAll(() => stopAll(started));

  it(`keeps every version opening after ${ROTATIONS} rotations through RotateKey, here and on a fresh replica`, async () => {
    const secretPrefix = `rot-${randomUUID()}/`;
    const first = await startAwsReplica({
      awsEndpoint: endpoint,
      secretPrefix,
      env: { FIELDSEAL_KEYRINGS: "cards" },
    });
    started.push(first);
    const bot = first.client("bot");
    const ops = first.client("ops");

    // sealed[i] was sealed under version i + 1 and holds "value-<i + 1>".
    const sealed: string[] = [];
    const initial = await bot.encryptFields({ keyring: "cards", scope, fields: { pan: text("value-1") } });
    expect(initial.keyVersion).toBe(1);
    sealed.push(initial.sealed.pan ?? "");
    for (let version = 2; version <= ROTATIONS + 1; version++) {
      const rotated = await ops.rotateKey({ keyring: "cards" });
      expect(rotated.key?.primaryVersion).toBe(version);
      expect(rotated.key?.store).toBe("aws");
      const out = await bot.encryptFields({
        keyring: "cards",
        scope,
        fields: { pan: text(`value-${version}`) },
      });
      expect(out.keyVersion).toBe(version);
      sealed.push(out.sealed.pan ?? "");
    }

    const fresh = await startAwsReplica({ awsEndpoint: endpoint, secretPrefix });
    started.push(fresh);
    const described = await fresh.client("admin").describeKey({ keyring: "cards" });
    expect(described.key?.versions.map((v) => v.version)).toEqual(
      Array.from({ length: ROTATIONS + 1 }, (_, i) => i + 1),
    );
    expect(described.key?.primaryVersion).toBe(ROTATIONS + 1);

    for (const replica of [first, fresh]) {
      const reader = replica.client("reader");
      for (const [i, value] of sealed.entries()) {
        const opened = await reader.decryptField({ scope, field: "pan", sealed: value });
        expect(opened.keyVersion).toBe(i + 1);
        expect(opened.value?.kind).toEqual({ case: "stringValue", value: `value-${i + 1}` });
      }
    }
  }, 240_000);
});
