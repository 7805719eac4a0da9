/**
 * What starting a replica costs in Secrets Manager writes, measured on real `fieldseal serve` processes on
 * moto: idle restarts, a crash loop under load, and an encrypt-only caller sealing 1,000-field batches at
 * full speed. Each Fieldseal write is one new secret version, counted with ListSecretVersionIds.
 */
import { randomUUID } from "node:crypto";
import { ListSecretVersionIdsCommand } from "@aws-sdk/client-secrets-manager";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { motoClient } from "../support/moto.js";

const endpoint = inject("motoEndpoint");
const KEYRING = "restarts";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "restart-session" } });
const fields = (n: number) =>
  Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`f${i}`, { kind: { case: "stringValue" as const, value: "4111" } }]),
  );

describe("Secrets Manager writes per replica start", () => {
  const sm = motoClient(endpoint);
  const running: AwsReplica[] = [];
  afterAll(async () => {
    await stopAll(running);
    sm.destroy();
  });

  const start = async (secretPrefix: string) => {
    const replica = await startAwsReplica({
      awsEndpoint: endpoint,
      secretPrefix,
      env: { FIELDSEAL_KEYRINGS: KEYRING },
    });
    running.push(replica);
    return replica;
  };
  const stop = async (replica: AwsReplica, how: "SIGTERM" | "SIGKILL") => {
    if (how === "SIGKILL") process.kill(replica.pid, "SIGKILL");
    await replica.stop();
    running.splice(running.indexOf(replica), 1);
  };
  const versions = async (secretPrefix: string) => {
    const out = await sm.send(
      new ListSecretVersionIdsCommand({ SecretId: `${secretPrefix}${KEYRING}`, IncludeDeprecated: true }),
    );
    return out.Versions?.length ?? 0;
  };

  it("an idle start writes nothing; a start that seals writes at most two; full-speed batches stay few", async () => {
    const secretPrefix = `restarts-${randomUUID()}/`;
    const first = await start(secretPrefix);
    await stop(first, "SIGTERM");
    const created = await versions(secretPrefix);
    expect(created).toBe(1);

    // Idle restarts (a crash loop before any traffic): no write at all.
    for (let i = 0; i < 3; i++) await stop(await start(secretPrefix), i % 2 === 0 ? "SIGKILL" : "SIGTERM");
    expect(await versions(secretPrefix)).toBe(created);

    // A crash loop under load: each start seals a 1,000-field batch, then the process is killed.
    const STARTS = 3;
    const before = await versions(secretPrefix);
    for (let i = 0; i < STARTS; i++) {
      const replica = await start(secretPrefix);
      await replica.client("bot").encryptFields({ keyring: KEYRING, scope, fields: fields(1_000) });
      await stop(replica, "SIGKILL");
    }
    const perStart = ((await versions(secretPrefix)) - before) / STARTS;
    console.info(`crash loop under load: ${perStart.toFixed(2)} secret versions per start`);
    expect(perStart).toBeLessThanOrEqual(2);

    // An encrypt-only caller at full speed with 1,000-field batches, for a bounded count and time.
    const replica = await start(secretPrefix);
    const client = replica.client("bot");
    const burstBefore = await versions(secretPrefix);
    const deadline = Date.now() + 8_000;
    let seals = 0;
    for (let i = 0; i < 2_000 && Date.now() < deadline; i++) {
      await Promise.all(
        Array.from({ length: 4 }, () =>
          client.encryptFields({ keyring: KEYRING, scope, fields: fields(1_000) }),
        ),
      );
      seals += 4_000;
    }
    const burstWrites = (await versions(secretPrefix)) - burstBefore;
    console.info(`full-speed 1,000-field batches: ${seals} seals, ${burstWrites} secret versions written`);
    expect(seals).toBeGreaterThan(0);
    // Blocks grow at most 64-fold over the seals taken since the last reservation: a handful of writes.
    expect(burstWrites).toBeLessThanOrEqual(6);
    await stop(replica, "SIGTERM");
  }, 90_000);
});
