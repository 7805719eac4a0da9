import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, inject, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { grpcJsClient, unary } from "../support/grpc-js.js";

const endpoint = inject("motoEndpoint");
const REPLICAS = 3;
const WORKERS_PER_REPLICA = 3;
const ROTATIONS = 20;
/** Bounds every worker's loop even if the rotations never finished. */
const MAX_ROUNDS = 400;
/** Rounds each worker keeps sealing after the rotations, so values under the newest versions exist too. */
const ROUNDS_AFTER = 5;
const KEYRING = "replicated";

const scopeOf = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

interface SealedRecord {
  session: string;
  value: string;
  sealed: string;
  version: number;
  by: number;
}

describe("three Fieldseal processes on one Secrets Manager", () => {
  const replicas: AwsReplica[] = [];
  const grpcClients: ReturnType<typeof grpcJsClient>[] = [];
  afterAll(async () => {
    for (const c of grpcClients) c.close();
    await stopAll(replicas);
  });

  it("loses no version and opens every value everywhere when 20 rotations race a sealing load", async () => {
    const secretPrefix = `replicas-${randomUUID()}/`;
    replicas.push(
      ...(await Promise.all(
        Array.from({ length: REPLICAS }, () =>
          startAwsReplica({ awsEndpoint: endpoint, secretPrefix, env: { FIELDSEAL_KEYRINGS: KEYRING } }),
        ),
      )),
    );
    // Version 1 exists before the race starts; the race is about rotations, not creation.
    const created = await replicas[0]
      ?.client("bot")
      .encryptFields({ keyring: KEYRING, scope: scopeOf("setup"), fields: { pan: text("setup") } });
    expect(created?.keyVersion).toBe(1);

    const records: SealedRecord[] = [];
    const failures: string[] = [];
    let rotationsDone = false;
    let firstRound!: () => void;
    const warmedUp = new Promise<void>((r) => {
      firstRound = r;
    });
    let warm = 0;

    /** Seals and opens on one replica until the rotations are over, through Connect or grpc-js. */
    const worker = async (r: number, w: number): Promise<number> => {
      const replica = replicas[r];
      if (!replica) throw new Error("no replica");
      const session = `r${r}-w${w}`;
      const scope = scopeOf(session);
      const viaGrpc = w === 0;
      const grpcClient = viaGrpc ? grpcJsClient(FieldsealService, replica.address) : undefined;
      if (grpcClient) grpcClients.push(grpcClient);
      const bot = replica.client("bot");
      const reader = replica.client("reader");
      let after = 0;
      let rounds = 0;
      for (; rounds < MAX_ROUNDS && after < ROUNDS_AFTER; rounds++) {
        if (rotationsDone) after++;
        const value = `${session}-${rounds}`;
        try {
          const request = { keyring: KEYRING, scope, fields: { pan: text(value) } };
          const out = grpcClient
            ? await unary(grpcClient, FieldsealService.method.encryptFields, request, replica.tokens.bot)
            : await bot.encryptFields(request);
          const sealed = out.sealed.pan ?? "";
          const opened = grpcClient
            ? await unary(
                grpcClient,
                FieldsealService.method.decryptField,
                { scope, field: "pan", sealed },
                replica.tokens.reader,
              )
            : await reader.decryptField({ scope, field: "pan", sealed });
          if (opened.value?.kind.value !== value) failures.push(`${session}: opened another value`);
          records.push({ session, value, sealed, version: out.keyVersion, by: r });
        } catch (err) {
          failures.push(`${session} round ${rounds}: ${(err as Error).message}`);
        }
        if (rounds === 0 && ++warm === REPLICAS * WORKERS_PER_REPLICA) firstRound();
      }
      return rounds;
    };
    const load = replicas.flatMap((_, r) =>
      Array.from({ length: WORKERS_PER_REPLICA }, (_, w) => worker(r, w)),
    );

    await warmedUp;
    const rotations = await Promise.allSettled(
      Array.from({ length: ROTATIONS }, (_, i) =>
        replicas[i % REPLICAS]?.client("ops").rotateKey({ keyring: KEYRING }),
      ),
    );
    rotationsDone = true;
    const rounds = await Promise.all(load);

    expect(rotations.filter((r) => r.status === "rejected")).toEqual([]);
    expect(failures).toEqual([]);
    expect(rounds.every((n) => n < MAX_ROUNDS)).toBe(true);

    // Every replica reports the same contiguous versions 1..N, with N - 1 at most the rotations asked for:
    // concurrent rotations of one primary are adopted rather than repeated.
    const described = await Promise.all(
      replicas.map((p) => p.client("admin").describeKey({ keyring: KEYRING })),
    );
    const latest = described[0]?.key?.primaryVersion ?? 0;
    const all = Array.from({ length: latest }, (_, i) => i + 1);
    expect(latest).toBeGreaterThanOrEqual(2);
    expect(latest - 1).toBeLessThanOrEqual(ROTATIONS);
    for (const d of described) {
      expect(d.key?.versions.map((v) => v.version)).toEqual(all);
      expect(d.key?.primaryVersion).toBe(latest);
    }
    for (const r of rotations) {
      if (r.status !== "fulfilled") continue;
      const primary = r.value?.key?.primaryVersion ?? 0;
      expect(primary).toBeGreaterThanOrEqual(2);
      expect(primary).toBeLessThanOrEqual(latest);
    }

    // Each version after the first was created by exactly one replica's rotation, as its log says.
    const createdVersions = replicas
      .flatMap((p) => p.logs())
      .filter((line) => line.msg === "key rotated")
      .map((line) => {
        expect(line.reason).toBe("on_demand");
        return line.version as number;
      })
      .sort((a, b) => a - b);
    expect(createdVersions).toEqual(all.slice(1));

    // The load ran across the rotations: values exist under more than one version.
    expect(new Set(records.map((r) => r.version)).size).toBeGreaterThan(1);

    // Every value sealed anywhere opens on every replica.
    const bySession = Map.groupBy(records, (r) => r.session);
    for (const replica of replicas) {
      const reader = replica.client("reader");
      for (const [session, sealed] of bySession) {
        const out = await reader.decryptFields({
          scope: scopeOf(session),
          items: sealed.map((s) => ({ field: "pan", sealed: s.sealed })),
        });
        expect(out.results.map((res) => res.outcome.value)).toEqual(
          sealed.map((s) => ({ $typeName: "google.protobuf.Value", kind: text(s.value).kind })),
        );
        expect(out.results.map((res) => res.keyVersion)).toEqual(sealed.map((s) => s.version));
      }
    }
  }, 120_000);
});
