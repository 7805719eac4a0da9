import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { type MotoServer, startMoto } from "../support/moto.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const KEYRING = "outage";
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "outage-session" } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });
/** Bounds the background load even if the test body never stops it. */
const MAX_LOAD_ROUNDS = 2_000;

describe("a Fieldseal process when Secrets Manager becomes unreachable", () => {
  let moto: MotoServer | undefined;
  let proxy: TcpProxy | undefined;
  const replicas: AwsReplica[] = [];
  afterAll(async () => {
    await stopAll(replicas);
    await proxy?.close();
    await moto?.stop();
  });

  it("keeps serving cached keys, refuses an uncached version with UNAVAILABLE, and heals without a restart", async () => {
    // A moto of its own: this test takes it away from the replica under test, behind a proxy it can cut.
    moto = await startMoto();
    proxy = await startTcpProxy(Number(new URL(moto.endpoint).port));
    const secretPrefix = `outage-${randomUUID()}/`;
    // The replica under test re-reads the primary rarely, so it cannot learn version 2 before the outage.
    const [cut, other] = await Promise.all([
      startAwsReplica({
        awsEndpoint: proxy.url,
        secretPrefix,
        primaryRefreshMs: 600_000,
        env: { FIELDSEAL_KEYRINGS: KEYRING },
      }),
      startAwsReplica({ awsEndpoint: moto.endpoint, secretPrefix, env: { FIELDSEAL_KEYRINGS: KEYRING } }),
    ]);
    if (!cut || !other) throw new Error("replicas did not start");
    replicas.push(cut, other);

    const bot = cut.client("bot");
    const reader = cut.client("reader");
    const before = await bot.encryptFields({ keyring: KEYRING, scope, fields: { pan: text("before") } });
    expect(before.keyVersion).toBe(1);
    // The other replica rotates and seals under version 2, which the replica under test has never seen.
    await other.client("ops").rotateKey({ keyring: KEYRING });
    const unseen = await other
      .client("bot")
      .encryptFields({ keyring: KEYRING, scope, fields: { pan: text("sealed-elsewhere") } });
    expect(unseen.keyVersion).toBe(2);
    const unseenSealed = unseen.sealed.pan ?? "";

    // Light load on the replica under test for the whole outage and recovery.
    const failures: string[] = [];
    let rounds = 0;
    let stopLoad = false;
    const load = (async () => {
      for (; rounds < MAX_LOAD_ROUNDS && !stopLoad; rounds++) {
        try {
          const out = await bot.encryptFields({
            keyring: KEYRING,
            scope,
            fields: { pan: text(`load-${rounds}`) },
          });
          const opened = await reader.decryptField({ scope, field: "pan", sealed: out.sealed.pan ?? "" });
          if (opened.value?.kind.value !== `load-${rounds}`) failures.push(`round ${rounds}: wrong value`);
        } catch (err) {
          failures.push(`round ${rounds}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    try {
      proxy.cut();
      const roundsAtCut = rounds;
      // Cached keys keep working: the version it seals under, and values sealed before the outage.
      const during = await bot.encryptFields({ keyring: KEYRING, scope, fields: { pan: text("during") } });
      expect(during.keyVersion).toBe(1);
      const reopened = await reader.decryptField({ scope, field: "pan", sealed: before.sealed.pan ?? "" });
      expect(reopened.value?.kind).toEqual(text("before").kind);

      // A version it never cached needs the store, which is gone: UNAVAILABLE, saying why.
      const refused = await reader.decryptField({ scope, field: "pan", sealed: unseenSealed }).then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      expect(refused?.code).toBe(Code.Unavailable);
      expect(refused?.rawMessage).toMatch(
        /keyring "outage" version 2 is not cached and the key store \(aws\) is unavailable/,
      );
      expect(refused?.rawMessage).not.toContain("sealed-elsewhere");
      // The failed store call is logged for operators: action, keyring and code, nothing else.
      const warned = cut.logs().filter((l) => l.msg === "key store call failed");
      expect(warned).toContainEqual(
        expect.objectContaining({ level: "warn", op: "load", keyring: KEYRING, code: "store_unavailable" }),
      );
      // The load kept going through the outage.
      const deadline = Date.now() + 10_000;
      while (rounds < roundsAtCut + 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(rounds).toBeGreaterThanOrEqual(roundsAtCut + 5);
    } finally {
      proxy.restore();
    }

    // Back without a restart: the uncached version opens, and rotation works.
    const healed = await reader.decryptField({ scope, field: "pan", sealed: unseenSealed });
    expect(healed.keyVersion).toBe(2);
    expect(healed.value?.kind).toEqual(text("sealed-elsewhere").kind);
    const rotated = await cut.client("ops").rotateKey({ keyring: KEYRING });
    expect(rotated.key?.primaryVersion).toBe(3);
    const after = await bot.encryptFields({ keyring: KEYRING, scope, fields: { pan: text("after") } });
    expect(after.keyVersion).toBe(3);

    stopLoad = true;
    await load;
    expect(failures).toEqual([]);
    expect(cut.output()).not.toContain("sealed-elsewhere");
  }, 120_000);
});
