/**
 * Erasable keyrings through a real Fieldseal server (in this process, real sockets), on both scope-key
 * databases: SQLite in the data directory, and DynamoDB on moto.
 */

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { DynamoDbScopeKeyStore } from "../../src/scopes/dynamodb-store.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { FIELDSEAL_BIN } from "../support/fieldseal-process.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";

const TTL_MS = 300;
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });
const sessionScope = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const userScope = (id: string) => create(ScopeSchema, { id: { case: "userId", value: id } });

async function failure(
  call: Promise<unknown>,
): Promise<{ code: Code; reason: string | null; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  return { code: ce.code, reason: ce.metadata.get("fieldseal-reason"), message: ce.rawMessage };
}

const PRINCIPALS = [
  { name: "admin", scopes: ["admin"] },
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
  // Everything a key operator has short of erasure: rotate, retire, destroy, rewrap, push, every field.
  { name: "operator", scopes: ["rotate", "destroy", "rewrap", "push", "encrypt", "decrypt:*"] },
  { name: "dpo", scopes: ["forget"] },
];

for (const db of ["sqlite", "dynamodb"] as const) {
  describe(`erasable keyrings through the server (${db})`, () => {
    let fs: TestFieldseal;
    const table = `scopes-${randomUUID()}`;

    beforeAll(async () => {
      const env: Record<string, string> = {};
      if (db === "dynamodb") {
        // The SDK's default credential chain reads these; the endpoint is moto on loopback.
        process.env.AWS_ACCESS_KEY_ID = MOTO_CREDENTIALS.accessKeyId;
        process.env.AWS_SECRET_ACCESS_KEY = MOTO_CREDENTIALS.secretAccessKey;
        const store = new DynamoDbScopeKeyStore({
          table,
          endpoint: inject("motoEndpoint"),
          region: MOTO_REGION,
          credentials: MOTO_CREDENTIALS,
        });
        await store.createTable();
        await store.close();
        Object.assign(env, {
          FIELDSEAL_SCOPE_STORE: "dynamodb",
          FIELDSEAL_SCOPE_TABLE: table,
          FIELDSEAL_AWS_ENDPOINT: inject("motoEndpoint"),
          FIELDSEAL_AWS_REGION: MOTO_REGION,
        });
      }
      fs = await startTestFieldseal({
        principals: PRINCIPALS,
        settings: {
          keyrings: ["crm", "crm-reuse", "plain"],
          scopes: {
            erasableKeyrings: ["crm", "crm-reuse"],
            reuseAfterForget: ["crm-reuse"],
            cacheTtlMs: TTL_MS,
          },
        },
        env,
      });
    });
    afterAll(async () => {
      await fs?.close();
    });

    const seal = async (
      keyring: string,
      scope: ReturnType<typeof sessionScope>,
      value: string,
      field = "card",
    ) =>
      (await fs.client("bot").encryptFields({ keyring, scope, fields: { [field]: text(value) } })).sealed[
        field
      ] as string;
    const open = (scope: ReturnType<typeof sessionScope>, sealed: string, field = "card") =>
      fs.client("reader").decryptField({ scope, field, sealed });
    /** `fieldseal scopes rewrap-keys` as the operator runs it: a process on the server's data and database. */
    const rewrapKeys = (keyring: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        writeFileSync(join(fs.dataDir, "cli.json"), JSON.stringify({ principals: [] }), { mode: 0o600 });
        const child = spawn(
          process.execPath,
          [FIELDSEAL_BIN, "scopes", "rewrap-keys", "--keyring", keyring],
          {
            cwd: fs.dataDir,
            env: {
              PATH: process.env.PATH ?? "",
              HOME: fs.dataDir,
              FIELDSEAL_DATA_DIR: fs.dataDir,
              FIELDSEAL_CONFIG: join(fs.dataDir, "cli.json"),
              FIELDSEAL_KEYRINGS: "crm,crm-reuse,plain",
              FIELDSEAL_ERASABLE_KEYRINGS: "crm,crm-reuse",
              ...(db === "dynamodb"
                ? {
                    FIELDSEAL_SCOPE_STORE: "dynamodb",
                    FIELDSEAL_SCOPE_TABLE: table,
                    FIELDSEAL_AWS_ENDPOINT: inject("motoEndpoint"),
                    FIELDSEAL_AWS_REGION: MOTO_REGION,
                    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
                    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
                    AWS_EC2_METADATA_DISABLED: "true",
                  }
                : {}),
            },
          },
        );
        let stderr = "";
        child.stderr.on("data", (d) => {
          stderr += d;
        });
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.on("error", reject);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        });
      });

    it("seals scope-keyed fs1s values on an erasable keyring and fs1 values elsewhere; both open", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      const scoped = await seal("crm", scope, "4111111111111111");
      expect(scoped).toMatch(/^fs1s\.crm\.1\.1\.[A-Za-z0-9_-]+$/);
      const plain = await seal("plain", scope, "4111111111111111");
      expect(plain).toMatch(/^fs1\.plain\.1\./);
      expect((await open(scope, scoped)).value?.kind).toEqual({
        case: "stringValue",
        value: "4111111111111111",
      });
      expect((await open(scope, plain)).value?.kind).toEqual({
        case: "stringValue",
        value: "4111111111111111",
      });
      // Bound to scope and field like any value.
      expect(await failure(open(sessionScope("elsewhere"), scoped))).toMatchObject({
        reason: "envelope_tampered",
      });
    });

    it("says in DescribeKey which keyrings are erasable", async () => {
      const admin = fs.client("admin");
      expect((await admin.describeKey({ keyring: "crm" })).key).toMatchObject({
        erasable: true,
        reuseAfterForget: false,
      });
      expect((await admin.describeKey({ keyring: "crm-reuse" })).key).toMatchObject({
        erasable: true,
        reuseAfterForget: true,
      });
      expect((await admin.describeKey({ keyring: "plain" })).key).toMatchObject({ erasable: false });
    });

    it("forgets a scope: its values under every key version fail with scope_forgotten, other scopes open", async () => {
      const id = `u-${randomUUID()}`;
      const scope = userScope(id);
      const other = userScope(`u-${randomUUID()}`);
      const before: string[] = [await seal("crm", scope, "v1-a"), await seal("crm", other, "other-v1")];
      await fs.client("admin").rotateKey({ keyring: "crm" });
      before.push(await seal("crm", scope, "v2-a"), await seal("crm", scope, "v2-b", "ssn"));
      const otherV2 = await seal("crm", other, "other-v2");
      expect(before[2]).toMatch(/^fs1s\.crm\.2\.1\./);

      const forgotten = await fs.client("dpo").forgetScope({ keyring: "crm", scope });
      expect(forgotten.generation).toBe(1);
      expect(forgotten.forgottenAt).toBeDefined();

      for (const [sealed, field] of [
        [before[0], "card"],
        [before[2], "card"],
        [before[3], "ssn"],
      ] as const) {
        const f = await failure(open(scope, sealed as string, field));
        expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "scope_forgotten" });
        expect(f.message).not.toContain(id);
      }
      // DecryptFields reports it per item.
      const batch = await fs.client("reader").decryptFields({
        scope,
        items: [{ field: "card", sealed: before[0] as string }],
      });
      expect(batch.results[0]?.outcome).toMatchObject({
        case: "error",
        value: { code: "failed_precondition", reason: "scope_forgotten" },
      });
      expect((await open(other, before[1] as string)).value?.kind).toEqual({
        case: "stringValue",
        value: "other-v1",
      });
      expect((await open(other, otherV2)).value?.kind).toEqual({ case: "stringValue", value: "other-v2" });
      // The keyring does not allow a forgotten scope to seal again.
      expect(await failure(seal("crm", scope, "again"))).toMatchObject({
        code: Code.FailedPrecondition,
        reason: "scope_forgotten",
      });
      // Rewrapping cannot bring a forgotten value back either.
      const rewrap = await fs
        .client("operator")
        .rewrapFields({ scope, items: [{ field: "card", sealed: before[0] as string }] });
      expect(rewrap.results[0]?.outcome).toMatchObject({
        case: "error",
        value: { reason: "scope_forgotten" },
      });
      // Forgetting again changes nothing and succeeds.
      const again = await fs.client("admin").forgetScope({ keyring: "crm", scope });
      expect(again.generation).toBe(1);
      expect(again.forgottenAt).toEqual(forgotten.forgottenAt);
    });

    it("gives a forgotten scope a new data key when the keyring allows it; old values stay unopenable", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      const old = await seal("crm-reuse", scope, "before");
      expect((await fs.client("admin").forgetScope({ keyring: "crm-reuse", scope })).generation).toBe(1);
      const fresh = await seal("crm-reuse", scope, "after");
      expect(fresh).toMatch(/^fs1s\.crm-reuse\.1\.2\./);
      expect((await open(scope, fresh)).value?.kind).toEqual({ case: "stringValue", value: "after" });
      expect(await failure(open(scope, old))).toMatchObject({ reason: "scope_forgotten" });
      // A relabelled generation does not open the old value with the new key.
      const relabelled = old.replace(".1.1.", ".1.2.");
      expect(await failure(open(scope, relabelled))).toMatchObject({ reason: "envelope_tampered" });
      expect((await fs.client("admin").forgetScope({ keyring: "crm-reuse", scope })).generation).toBe(2);
      expect(await failure(open(scope, fresh))).toMatchObject({ reason: "scope_forgotten" });
    });

    it("keeps scopes openable when old key versions are retired and destroyed (data keys re-wrapped)", async () => {
      const admin = fs.client("admin");
      const active = sessionScope(`s-${randomUUID()}`);
      const dormant = sessionScope(`s-${randomUUID()}`);
      await admin.rotateKey({ keyring: "crm-reuse" });
      const primary = (await admin.describeKey({ keyring: "crm-reuse" })).key?.primaryVersion as number;
      await seal("crm-reuse", active, "first");
      await seal("crm-reuse", dormant, "dormant-first");
      // A scope that never seals again after the rotation: its key stays wrapped under the older version.
      const idle = sessionScope(`s-${randomUUID()}`);
      await seal("crm-reuse", idle, "idle-first");
      await admin.rotateKey({ keyring: "crm-reuse" });
      // Sealed under the new primary: the active scope's data key is re-wrapped under it on the way.
      const later = await seal("crm-reuse", active, "later");
      expect(later).toMatch(new RegExp(`^fs1s\\.crm-reuse\\.${primary + 1}\\.1\\.`));
      // Retiring the older versions retires their values, not the scope keys they wrap.
      await admin.retireKeyVersions({ keyring: "crm-reuse", minDecryptVersion: primary + 1 });
      // Past the cache bound, so the data keys are read and unwrapped again.
      await new Promise((r) => setTimeout(r, TTL_MS + 100));
      const dormantLater = await seal("crm-reuse", dormant, "dormant-later");
      expect((await open(dormant, dormantLater)).value?.kind).toEqual({
        case: "stringValue",
        value: "dormant-later",
      });
      // The idle scope (and scopes of earlier tests) sealed nothing since: their keys are still wrapped under the older versions,
      // and destroying those would erase them. Refused, naming the remedy; nothing destroyed.
      const refused = await failure(
        admin.destroyKeyVersions({ keyring: "crm-reuse", belowVersion: primary + 1 }),
      );
      expect(refused).toMatchObject({ code: Code.FailedPrecondition, reason: "failed_precondition" });
      expect(refused.message).toContain("fieldseal scopes rewrap-keys --keyring crm-reuse");
      expect(
        (await admin.describeKey({ keyring: "crm-reuse" })).key?.versions.filter((v) => v.destroyedAt),
      ).toEqual([]);
      expect((await rewrapKeys("crm-reuse")).code).toBe(0);
      // Destroying them now leaves the active scope working: its key is wrapped under the primary now.
      await admin.destroyKeyVersions({ keyring: "crm-reuse", belowVersion: primary + 1 });
      await new Promise((r) => setTimeout(r, TTL_MS + 100));
      expect((await open(active, later)).value?.kind).toEqual({ case: "stringValue", value: "later" });
      // And the idle scope, re-wrapped by the command, still seals and opens (its old value went with the
      // destroyed version, as any value does).
      const idleLater = await seal("crm-reuse", idle, "idle-later");
      expect(idleLater).toMatch(/^fs1s\.crm-reuse\.\d+\.1\./);
      expect((await open(idle, idleLater)).value?.kind).toEqual({ case: "stringValue", value: "idle-later" });
    });

    it("forgets a scope that never sealed, so it never seals (generation 0)", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      expect((await fs.client("dpo").forgetScope({ keyring: "crm", scope })).generation).toBe(0);
      expect(await failure(seal("crm", scope, "x"))).toMatchObject({ reason: "scope_forgotten" });
    });

    it("keeps a rewrapped scope-keyed value scope-keyed", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      const sealed = await seal("crm", scope, "keep me erasable");
      await fs.client("admin").rotateKey({ keyring: "crm" });
      const r = await fs.client("operator").rewrapFields({ scope, items: [{ field: "card", sealed }] });
      const out = r.results[0]?.outcome;
      expect(out?.case).toBe("sealed");
      expect(out?.value).toMatch(/^fs1s\.crm\.\d+\.1\./);
      await fs.client("admin").forgetScope({ keyring: "crm", scope });
      expect(await failure(open(scope, out?.value as string))).toMatchObject({ reason: "scope_forgotten" });
    });

    it("lets no one but forget and admin forget, audits every attempt, and names the scope only", async () => {
      const id = `s-${randomUUID()}`;
      const scope = sessionScope(id);
      await seal("crm", scope, "x");
      for (const who of ["operator", "bot", "reader"]) {
        expect(await failure(fs.client(who).forgetScope({ keyring: "crm", scope }))).toMatchObject({
          code: Code.PermissionDenied,
        });
        expect(fs.audit.events).toContainEqual(
          expect.objectContaining({ action: "forget", principal: who, outcome: "denied", scopeId: id }),
        );
      }
      await fs.client("dpo").forgetScope({ keyring: "crm", scope });
      const oks = fs.audit.events.filter(
        (e) => e.action === "forget" && e.outcome === "ok" && e.scopeId === id,
      );
      expect(oks).toEqual([
        expect.objectContaining({ principal: "dpo", keyring: "crm", scopeKind: "session", generation: 1 }),
      ]);
    });

    it("refuses malformed or misdirected forgets with specific errors", async () => {
      const dpo = fs.client("admin");
      expect(await failure(dpo.forgetScope({ keyring: "crm" }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "invalid_argument",
      });
      expect(await failure(dpo.forgetScope({ keyring: "crm", scope: sessionScope("a\0b") }))).toMatchObject({
        code: Code.InvalidArgument,
      });
      expect(await failure(dpo.forgetScope({ keyring: "Bad Name", scope: sessionScope("s") }))).toMatchObject(
        {
          code: Code.InvalidArgument,
        },
      );
      expect(await failure(dpo.forgetScope({ keyring: "plain", scope: sessionScope("s") }))).toMatchObject({
        code: Code.FailedPrecondition,
        reason: "failed_precondition",
      });
    });

    it("refuses malformed fs1s text with envelope_malformed", async () => {
      const scope = sessionScope("s-bad");
      for (const sealed of [
        "fs1s.crm.1.1",
        "fs1s.crm.1.0.AAAA",
        "fs1s.crm.1.1.!!!!",
        `fs1s.crm.1.1.${"A".repeat(40)}=`,
      ]) {
        expect(await failure(open(scope, sealed)), sealed).toMatchObject({
          code: Code.InvalidArgument,
          reason: "envelope_malformed",
        });
      }
    });

    it("answers every mutation of an fs1s value with a specific reason, never INTERNAL", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      const sealed = await seal("crm", scope, "4111111111111111");
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n\u00e9\u0000";
      // A fixed-seed generator: the same 300 mutations every run.
      let seed = 42;
      const next = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const items = Array.from({ length: 300 }, () => {
        const chars = [...sealed];
        for (let k = 0, edits = 1 + next(3); k < edits; k++) {
          const at = next(chars.length);
          const op = next(3);
          if (op === 0) chars[at] = alphabet[next(alphabet.length)] as string;
          else if (op === 1) chars.splice(at, 1);
          else chars.splice(at, 0, alphabet[next(alphabet.length)] as string);
        }
        return { field: "card", sealed: chars.join("") };
      });
      const batch = await fs.client("reader").decryptFields({ scope, items });
      const reasons = new Set<string>();
      for (const [i, r] of batch.results.entries()) {
        if (r.outcome.case === "value") {
          // Only an unchanged text can open (a mutation that undid itself).
          expect(items[i]?.sealed).toBe(sealed);
          continue;
        }
        expect(r.outcome.case).toBe("error");
        const reason = r.outcome.value?.reason as string;
        reasons.add(reason);
        expect(
          [
            "envelope_malformed",
            "envelope_tampered",
            "scope_forgotten",
            "keyring_not_found",
            "key_version_not_found",
          ],
          `${items[i]?.sealed}: ${reason} ${r.outcome.value?.message}`,
        ).toContain(reason);
        expect(r.outcome.value?.message).not.toContain("4111");
      }
      expect(reasons.has("envelope_malformed")).toBe(true);
      expect(reasons.has("envelope_tampered")).toBe(true);
    });

    it("keeps session and user scopes of one id apart, and odd ids work end to end", async () => {
      const id = `x-${randomUUID()}`;
      // The same id as a session and as a user, an id that spells the other kind's name, ids at the size
      // limit (256 bytes of UTF-8, multi-byte and astral characters) and with the separators of other formats.
      const scopes = [
        sessionScope(id),
        userScope(id),
        sessionScope(`user:${id}`),
        userScope(`session:${id}`),
        sessionScope("\u00e9".repeat(128)),
        userScope("\u{1F600}".repeat(64)),
        userScope(`a.b:c/d%00\n${id}`),
      ];
      const sealed = await Promise.all(scopes.map((s, i) => seal("crm", s, `v${i}`)));
      const reader = fs.client("reader");
      for (const [i, s] of scopes.entries()) {
        expect(
          (await reader.decryptField({ scope: s, field: "card", sealed: sealed[i] as string })).value?.kind,
        ).toEqual({ case: "stringValue", value: `v${i}` });
      }
      await fs.client("dpo").forgetScope({ keyring: "crm", scope: userScope(id) });
      for (const [i, s] of scopes.entries()) {
        const opened = reader.decryptField({ scope: s, field: "card", sealed: sealed[i] as string });
        if (i === 1) expect(await failure(opened)).toMatchObject({ reason: "scope_forgotten" });
        else
          expect((await opened).value?.kind, `scope ${i}`).toEqual({ case: "stringValue", value: `v${i}` });
      }
      // One byte over the limit is refused before anything is written or forgotten.
      for (const s of [sessionScope(`\u00e9`.repeat(128) + "a"), userScope("\u{1F600}".repeat(64) + "a")]) {
        expect(await failure(fs.client("dpo").forgetScope({ keyring: "crm", scope: s }))).toMatchObject({
          code: Code.InvalidArgument,
          reason: "invalid_argument",
        });
        expect(
          await failure(
            fs.client("bot").encryptFields({ keyring: "crm", scope: s, fields: { card: text("v") } }),
          ),
        ).toMatchObject({ code: Code.InvalidArgument, reason: "invalid_argument" });
      }
    });

    it("never writes plaintext, data keys or wrapped keys into logs or audit", async () => {
      const scope = sessionScope(`s-${randomUUID()}`);
      const secret = `PLAINTEXT-${randomUUID()}`;
      await seal("crm", scope, secret);
      await fs.client("admin").forgetScope({ keyring: "crm", scope });
      const everything = fs.logs.join("\n") + JSON.stringify(fs.audit.events);
      expect(everything).not.toContain(secret);
      if (db === "sqlite") {
        // Every wrapped key still in the database, in both spellings a log could use.
        const dbBytes = readFileSync(join(fs.dataDir, "scopes.db"));
        expect(dbBytes.length).toBeGreaterThan(0);
        expect(everything).not.toMatch(/[A-Za-z0-9+/]{80}/);
      }
    });
  });
}

describe("erasable keyrings when the scope key database is unreachable", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    process.env.AWS_ACCESS_KEY_ID = MOTO_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = MOTO_CREDENTIALS.secretAccessKey;
    // A loopback port nothing listens on: every DynamoDB call is refused at once.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    fs = await startTestFieldseal({
      principals: PRINCIPALS,
      settings: { keyrings: ["crm", "plain"], scopes: { erasableKeyrings: ["crm"], cacheTtlMs: TTL_MS } },
      env: {
        FIELDSEAL_SCOPE_STORE: "dynamodb",
        FIELDSEAL_SCOPE_TABLE: "nowhere",
        FIELDSEAL_AWS_ENDPOINT: `http://127.0.0.1:${closed}`,
        FIELDSEAL_AWS_REGION: MOTO_REGION,
      },
    });
  });
  afterAll(async () => {
    await fs?.close();
  });

  it("answers UNAVAILABLE (store_unavailable) for erasable keyrings only, and audits the failed forget", async () => {
    const scope = sessionScope("s-down");
    const sealing = await failure(
      fs.client("bot").encryptFields({ keyring: "crm", scope, fields: { card: text("4111111111111111") } }),
    );
    expect(sealing).toMatchObject({ code: Code.Unavailable, reason: "store_unavailable" });
    expect(sealing.message).not.toContain("4111");
    const plain = await fs
      .client("bot")
      .encryptFields({ keyring: "plain", scope, fields: { card: text("x") } });
    expect(plain.sealed.card).toMatch(/^fs1\./);
    expect(await failure(fs.client("admin").forgetScope({ keyring: "crm", scope }))).toMatchObject({
      code: Code.Unavailable,
      reason: "store_unavailable",
    });
    expect(fs.audit.events).toContainEqual(
      expect.objectContaining({
        action: "forget",
        outcome: "error",
        code: "store_unavailable",
        scopeId: "s-down",
      }),
    );
    expect(fs.logs.join("\n")).not.toContain("4111111111111111");
  });
});
