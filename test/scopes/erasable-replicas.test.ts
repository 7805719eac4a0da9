/**
 * Forgetting is final and cluster-wide: two real `fieldseal serve` processes share one scope-key database
 * (the SQLite file in a shared data directory, or one DynamoDB table on moto) and one key store.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { DynamoDbScopeKeyStore } from "../../src/scopes/dynamodb-store.js";
import { PROCESS_PRINCIPALS } from "../support/aws-replica.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";

/** The scope-key cache bound every replica runs with; ForgetScope answers after it. */
const TTL_MS = 400;
// A cap only: the load runs until told to stop (twice the bound after the forget answered), however fast calls are.
const LOAD_CALLS = 3_000;

type Client = ReturnType<typeof createClient<typeof FieldsealService>>;
interface Replica {
  readonly proc: FieldsealProcess;
  client(principal: string): Client;
}

const scopeOf = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

function replicaOf(proc: FieldsealProcess): Replica {
  return {
    proc,
    client: (principal) =>
      createClient(
        FieldsealService,
        createConnectTransport({
          baseUrl: proc.url,
          httpVersion: "1.1",
          interceptors: [bearer(proc.tokens[principal])],
        }),
      ),
  };
}

/** What opening `sealed` on `replica` gives: the string, or the error's reason. */
async function openOn(replica: Replica, scopeId: string, field: string, sealed: string): Promise<string> {
  try {
    const r = await replica.client("reader").decryptField({ scope: scopeOf(scopeId), field, sealed });
    return `value:${r.value?.kind.value as string}`;
  } catch (err) {
    return `error:${ConnectError.from(err).metadata.get("fieldseal-reason") ?? "none"}`;
  }
}

const generationOf = (sealed: string) => Number(sealed.split(".")[3]);

for (const db of ["sqlite", "dynamodb"] as const) {
  describe(`two replicas on one ${db} scope-key database`, () => {
    const replicas: Replica[] = [];
    const shared = mkdtempSync(join(tmpdir(), "fieldseal-replicas-"));

    beforeAll(async () => {
      const common = {
        FIELDSEAL_ERASABLE_KEYRINGS: "crm,crm-reuse",
        FIELDSEAL_REUSE_AFTER_FORGET: "crm-reuse",
        FIELDSEAL_KEYRINGS: "crm,crm-reuse",
        FIELDSEAL_SCOPE_KEY_TTL_MS: String(TTL_MS),
        FIELDSEAL_SHUTDOWN_GRACE_MS: "2000",
      };
      let env: Record<string, string>;
      if (db === "sqlite") {
        // One data directory: the keyring files and scopes.db are shared by both processes.
        env = { ...common, FIELDSEAL_DATA_DIR: shared };
      } else {
        const table = `scopes-${randomUUID()}`;
        const store = new DynamoDbScopeKeyStore({
          table,
          endpoint: inject("motoEndpoint"),
          region: MOTO_REGION,
          credentials: MOTO_CREDENTIALS,
        });
        await store.createTable();
        await store.close();
        env = {
          ...common,
          FIELDSEAL_KEY_STORE: "aws",
          FIELDSEAL_AWS_ENDPOINT: inject("motoEndpoint"),
          FIELDSEAL_AWS_REGION: MOTO_REGION,
          FIELDSEAL_AWS_SECRET_PREFIX: `replicas-${randomUUID()}/`,
          FIELDSEAL_PRIMARY_REFRESH_MS: "200",
          FIELDSEAL_SCOPE_TABLE: table,
          AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
          AWS_EC2_METADATA_DISABLED: "true",
        };
      }
      // One after the other: the first creates the keyrings, the second finds them.
      for (let i = 0; i < 2; i++) {
        replicas.push(
          replicaOf(
            await startFieldsealProcess({ principals: PROCESS_PRINCIPALS, env, startTimeoutMs: 30_000 }),
          ),
        );
      }
    });
    afterAll(async () => {
      await Promise.allSettled(replicas.map((r) => r.proc.stop()));
      rmSync(shared, { recursive: true, force: true });
    });

    it("converges when both replicas create a scope's first data key at once", async () => {
      const [a, b] = replicas as [Replica, Replica];
      const ids = Array.from({ length: 20 }, () => `race-${randomUUID()}`);
      const pairs = await Promise.all(
        ids.map(async (id) => {
          const [fromA, fromB] = await Promise.all(
            [a, b].map(
              async (r, i) =>
                (
                  await r
                    .client("bot")
                    .encryptFields({ keyring: "crm", scope: scopeOf(id), fields: { f: text(`v${i}`) } })
                ).sealed.f as string,
            ),
          );
          return { id, fromA: fromA as string, fromB: fromB as string };
        }),
      );
      for (const { id, fromA, fromB } of pairs) {
        expect(generationOf(fromA)).toBe(1);
        expect(generationOf(fromB)).toBe(1);
        // Each replica opens what the other sealed: they hold one data key for the scope.
        expect(await openOn(b, id, "f", fromA)).toBe("value:v0");
        expect(await openOn(a, id, "f", fromB)).toBe("value:v1");
      }
    });

    for (const keyring of ["crm-reuse", "crm"] as const) {
      it(`forgets under load from both replicas (${keyring}): nothing of the old key opens anywhere, nothing sealed after is lost`, async () => {
        const [a, b] = replicas as [Replica, Replica];
        const target = `load-${randomUUID()}`;
        const control = `control-${randomUUID()}`;
        // Values of the target scope sealed under generation 1 before the load, on both replicas.
        const early = await Promise.all(
          [a, b].map(
            async (r, i) =>
              (
                await r
                  .client("bot")
                  .encryptFields({ keyring, scope: scopeOf(target), fields: { f: text(`early${i}`) } })
              ).sealed.f as string,
          ),
        );
        interface Sealing {
          readonly scope: string;
          readonly value: string;
          readonly started: number;
          readonly sealed?: string;
          readonly reason?: string;
        }
        const results: Sealing[] = [];
        let forgetAnswered = Number.POSITIVE_INFINITY;
        let stop = false;
        const load = async (r: Replica, tag: string) => {
          for (let i = 0; i < LOAD_CALLS && !stop; i++) {
            const scope = i % 5 === 0 ? control : target;
            const value = `${tag}-${i}`;
            const started = performance.now();
            try {
              const out = await r
                .client("bot")
                .encryptFields({ keyring, scope: scopeOf(scope), fields: { f: text(value) } });
              results.push({ scope, value, started, sealed: out.sealed.f as string });
            } catch (err) {
              results.push({
                scope,
                value,
                started,
                reason: ConnectError.from(err).metadata.get("fieldseal-reason") ?? "",
              });
            }
          }
        };
        const loaders = [load(a, "a"), load(b, "b")];
        await new Promise((r) => setTimeout(r, 150));
        const forgotten = await a.client("admin").forgetScope({ keyring, scope: scopeOf(target) });
        forgetAnswered = performance.now();
        expect(forgotten.generation).toBe(1);
        // Keep loading for twice the bound after the answer, then stop (each loader is also bounded in calls).
        await new Promise((r) => setTimeout(r, 2 * TTL_MS));
        stop = true;
        await Promise.all(loaders);

        const after = results.filter((s) => s.scope === target && s.started > forgetAnswered);
        expect(after.length).toBeGreaterThan(0);
        for (const s of after) {
          if (keyring === "crm-reuse")
            expect(s.sealed !== undefined && generationOf(s.sealed), s.value).toBe(2);
          else expect(s.reason, s.value).toBe("scope_forgotten");
        }
        for (const s of results.filter((x) => x.scope === control)) expect(s.sealed, s.value).toBeDefined();

        // On both replicas: every generation-1 value of the target fails, every generation-2 value and every
        // control value opens to what was sealed.
        const sealedTarget = results.filter((s) => s.scope === target && s.sealed !== undefined);
        const oldOnes = [
          ...early,
          ...sealedTarget
            .filter((s) => generationOf(s.sealed as string) === 1)
            .map((s) => s.sealed as string),
        ];
        const newOnes = sealedTarget.filter((s) => generationOf(s.sealed as string) === 2);
        expect(oldOnes.length).toBeGreaterThan(2);
        for (const r of [a, b]) {
          for (const sealed of oldOnes)
            expect(await openOn(r, target, "f", sealed)).toBe("error:scope_forgotten");
          for (const s of newOnes)
            expect(await openOn(r, target, "f", s.sealed as string)).toBe(`value:${s.value}`);
          for (const s of results.filter((x) => x.scope === control).slice(0, 40)) {
            expect(await openOn(r, control, "f", s.sealed as string)).toBe(`value:${s.value}`);
          }
        }
        if (keyring === "crm-reuse") expect(newOnes.length).toBeGreaterThan(0);
        // The forgetting replica wrote one audit line for it (audit lines go to stdout).
        const lines = a.proc
          .stdout()
          .split("\n")
          .filter((l) => l.includes('"action":"forget"') && l.includes(target));
        expect(lines).toHaveLength(1);
        expect(JSON.parse(lines[0] as string)).toMatchObject({
          outcome: "ok",
          principal: "admin",
          generation: 1,
        });
      });
    }

    it("a replica stopped (SIGSTOP) across a forget opens and seals nothing with the old key once continued", async () => {
      const [a, b] = replicas as [Replica, Replica];
      const id = `paused-${randomUUID()}`;
      const sealed = (
        await a.client("bot").encryptFields({ keyring: "crm", scope: scopeOf(id), fields: { f: text("x") } })
      ).sealed.f as string;
      // b holds the scope's key in its cache.
      expect(await openOn(b, id, "f", sealed)).toBe("value:x");
      b.proc.child.kill("SIGSTOP");
      try {
        await a.client("admin").forgetScope({ keyring: "crm", scope: scopeOf(id) });
        // Sent while b is stopped: b reads them only once continued, after the forget has answered.
        const opening = openOn(b, id, "f", sealed);
        const sealing = b
          .client("bot")
          .encryptFields({ keyring: "crm", scope: scopeOf(id), fields: { f: text("y") } })
          .then(
            () => "sealed",
            (err) => ConnectError.from(err).metadata.get("fieldseal-reason"),
          );
        await new Promise((r) => setTimeout(r, 50));
        b.proc.child.kill("SIGCONT");
        expect(await opening).toBe("error:scope_forgotten");
        expect(await sealing).toBe("scope_forgotten");
      } finally {
        b.proc.child.kill("SIGCONT");
      }
    });

    it("leaves no half-written scope key when a replica is killed while creating keys", async () => {
      const [a, b] = replicas as [Replica, Replica];
      const ids = Array.from({ length: 60 }, () => `kill-${randomUUID()}`);
      const sealedByB = new Map<string, string>();
      const burst = ids.map(async (id) => {
        try {
          const out = await b
            .client("bot")
            .encryptFields({ keyring: "crm", scope: scopeOf(id), fields: { f: text(id) } });
          sealedByB.set(id, out.sealed.f as string);
        } catch {
          // Cut off by the kill.
        }
      });
      await new Promise((r) => setTimeout(r, 30));
      b.proc.child.kill("SIGKILL");
      await Promise.all(burst);
      await b.proc.exited;
      // Every scope of the burst works on the survivor: a key B wrote is whole, or there is none yet.
      for (const id of ids) {
        const out = await a
          .client("bot")
          .encryptFields({ keyring: "crm", scope: scopeOf(id), fields: { f: text("a") } });
        expect(generationOf(out.sealed.f as string)).toBe(1);
        const byB = sealedByB.get(id);
        if (byB !== undefined) expect(await openOn(a, id, "f", byB)).toBe(`value:${id}`);
      }
      if (db === "sqlite") {
        const check = new DatabaseSync(join(shared, "scopes.db"), { readOnly: true });
        expect(check.prepare("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
        const bad = check
          .prepare("SELECT COUNT(*) AS n FROM scope_keys WHERE state = 'live' AND length(wrapped) <> 60")
          .get() as { n: number };
        expect(bad.n).toBe(0);
        check.close();
      }
    });
  });
}
