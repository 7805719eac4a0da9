/**
 * The least-privilege IAM policy of docs/keys.md, enforced by moto (INITIAL_NO_AUTH_ACTION_COUNT: the
 * first requests set up IAM, every later one is authorized against the caller's policies). A server on
 * the Secrets Manager store, with credentials of a user holding exactly the documented actions, starts,
 * seals, rotates, lists and opens; a user missing one of them fails. moto authorizes Secrets Manager
 * calls against the resource "*" only (moto/core/authorization.py passes no secret ARN), so the policy's
 * Resource is widened to "*" here: this proves the action list, not the prefix scoping.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { MOTO_CREDENTIALS, MOTO_REGION, type MotoServer, startMoto } from "../support/moto.js";

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
}

/** The JSON policy under "Least-privilege IAM policy" in docs/keys.md. */
function documentedPolicy(): { Version: string; Statement: Statement[] } {
  const doc = readFileSync(resolve(import.meta.dirname, "../../docs/keys.md"), "utf8");
  const section = doc.slice(doc.indexOf("### Least-privilege IAM policy"));
  const json = /```json\n([\s\S]*?)\n```/.exec(section)?.[1];
  if (json === undefined) throw new Error("docs/keys.md has no policy under Least-privilege IAM policy");
  return JSON.parse(json) as { Version: string; Statement: Statement[] };
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-iam" } });

describe("the documented IAM policy, enforced by moto", () => {
  let moto: MotoServer;
  const keys: Record<string, { accessKeyId: string; secretAccessKey: string }> = {};
  const servers: TestFieldseal[] = [];
  const policy = documentedPolicy();
  const withoutPut = {
    ...policy,
    Statement: policy.Statement.map((s) => ({
      ...s,
      Action: actionsOf(s).filter((a) => a !== "secretsmanager:PutSecretValue"),
    })),
  };

  /** An unsigned-credential IAM Query API call, allowed only in moto's first requests. */
  async function iam(params: Record<string, string>): Promise<string> {
    const res = await fetch(moto.endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `AWS4-HMAC-SHA256 Credential=${MOTO_CREDENTIALS.accessKeyId}/20260101/${MOTO_REGION}/iam/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: new URLSearchParams({ Version: "2010-05-08", ...params }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`IAM ${params.Action}: ${res.status} ${text}`);
    return text;
  }

  beforeAll(async () => {
    const users = { documented: policy, "without-put": withoutPut };
    moto = await startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: String(3 * Object.keys(users).length) });
    for (const [user, p] of Object.entries(users)) {
      await iam({ Action: "CreateUser", UserName: user });
      // moto checks Secrets Manager calls against the resource "*": widen Resource to match it.
      const wide = { ...p, Statement: p.Statement.map((s) => ({ ...s, Resource: "*" })) };
      await iam({
        Action: "PutUserPolicy",
        UserName: user,
        PolicyName: "fieldseal",
        PolicyDocument: JSON.stringify(wide),
      });
      const key = await iam({ Action: "CreateAccessKey", UserName: user });
      const accessKeyId = /<AccessKeyId>([^<]+)</.exec(key)?.[1];
      const secretAccessKey = /<SecretAccessKey>([^<]+)</.exec(key)?.[1];
      if (accessKeyId === undefined || secretAccessKey === undefined)
        throw new Error(`no access key: ${key}`);
      keys[user] = { accessKeyId, secretAccessKey };
    }
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) await s.close();
    await moto?.stop();
  });

  const start = async (user: string, prefix: string) => {
    const credentials = keys[user];
    if (credentials === undefined) throw new Error(`no user ${user}`);
    const fs = await startTestFieldseal({
      principals: [
        { name: "admin", scopes: ["admin"] },
        { name: "bot", scopes: ["encrypt"] },
        { name: "reader", scopes: ["decrypt:*"] },
      ],
      store: new SecretsManagerKeyStore({
        endpoint: moto.endpoint,
        region: MOTO_REGION,
        credentials,
        secretPrefix: prefix,
        maxAttempts: 1,
      }),
    });
    servers.push(fs);
    return fs;
  };

  it("is enforced after the set-up requests: a caller moto does not know is refused", async () => {
    await iam({ Action: "GetUser" }).then(
      () => expect.unreachable("moto should enforce IAM after the set-up requests"),
      (e: unknown) => expect(String(e)).toMatch(/403/),
    );
  });

  it("lets a server with exactly the documented actions start, seal, rotate, list and open", async () => {
    const fs = await start("documented", "fieldseal/");
    const sealed = await fs
      .client("bot")
      .encryptFields({ scope, fields: { pan: { kind: { case: "stringValue", value: "4111" } } } });
    const rotated = await fs.client("admin").rotateKey({ keyring: "default" });
    expect(rotated.key?.primaryVersion).toBe(2);
    expect((await fs.client("admin").listKeyrings({})).keyrings).toEqual(["default"]);
    const opened = await fs
      .client("reader")
      .decryptField({ scope, field: "pan", sealed: sealed.sealed.pan ?? "" });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: "4111" });
  });

  it("fails without secretsmanager:PutSecretValue (the policy is really checked)", async () => {
    // CreateSecret alone makes the first keyring; every later write is a PutSecretValue.
    const fs = await start("without-put", "fieldseal-noput/");
    const err = await fs
      .client("admin")
      .rotateKey({ keyring: "default" })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ConnectError);
    const ce = err as ConnectError;
    // The store cannot write: UNAVAILABLE, naming the call that failed (moto answers a denial in XML, so
    // the SDK reports a parse error where AWS would say AccessDeniedException).
    expect([ce.code, ce.metadata.get("fieldseal-reason")]).toEqual([Code.Unavailable, "store_unavailable"]);
    expect(ce.rawMessage).toContain("PutSecretValue failed");
  });
});
