/**
 * The canary: a recognisable plaintext sealed and opened through every path (Connect over HTTP/1.1 and
 * HTTP/2, gRPC, gRPC-Web, grpc-js, batch calls, rewrap, the Cognigy webhook with its push, the CLI, and
 * error paths that carry it), then searched for in every log line, audit event, metrics scrape and error
 * message. Key material is searched for the same way, from the keyring files themselves.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { grpcJsClient, unary } from "../support/grpc-js.js";

const CANARY = "CANARY-4111-1111-1111-1111";
const run = promisify(execFile);
const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

let fs: TestFieldseal;
let simulator: CognigySimulator;
/** Every message a caller was shown: RPC errors, webhook bodies, CLI output. */
const shown: string[] = [];

async function capture<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    const e = ConnectError.from(err);
    shown.push(e.message, JSON.stringify([...e.metadata.entries()]));
    return undefined;
  }
}

beforeAll(async () => {
  simulator = await startCognigySimulator();
  fs = await startTestFieldseal({
    principals: [
      { name: "admin", scopes: ["admin"] },
      { name: "bot", scopes: ["encrypt", "push"] },
      { name: "billing", scopes: ["decrypt:credit_card"] },
    ],
    settings: {
      cognigy: { baseUrl: simulator.url, apiKey: simulator.apiKey, pushEnabled: true },
      // Masks, blind indexes and an erasable keyring: the canary goes through them too.
      fields: { pan: { format: "card" }, email: { format: "email" } },
      keyrings: ["crm"],
      scopes: { erasableKeyrings: ["crm"], cacheTtlMs: 100 },
    },
  });
});
afterAll(async () => {
  await fs?.close();
  await simulator?.close();
});

describe("a canary plaintext", () => {
  it("travels every path and never reaches a log, an audit event, a metric or an error", async () => {
    const transports: Transport[] = [
      createConnectTransport({
        baseUrl: fs.url,
        httpVersion: "1.1",
        interceptors: [bearer(fs.tokens.admin)],
      }),
      createConnectTransport({ baseUrl: fs.url, httpVersion: "2", interceptors: [bearer(fs.tokens.admin)] }),
      createGrpcTransport({ baseUrl: fs.url, interceptors: [bearer(fs.tokens.admin)] }),
      createGrpcWebTransport({
        baseUrl: fs.url,
        httpVersion: "1.1",
        interceptors: [bearer(fs.tokens.admin)],
      }),
    ];
    for (const [i, transport] of transports.entries()) {
      const client = createClient(FieldsealService, transport);
      const scope = session(`canary-${i}`);
      const sealed = await client.encryptFields({
        scope,
        fields: {
          credit_card: text(CANARY),
          note: { kind: { case: "structValue", value: { fields: { pan: text(CANARY) } } } },
        },
      });
      const card = sealed.sealed.credit_card ?? "";
      expect(card).not.toContain(CANARY);
      const opened = await client.decryptField({ scope, field: "credit_card", sealed: card });
      expect(opened.value?.kind).toEqual({ case: "stringValue", value: CANARY });
      await client.decryptFields({
        scope,
        items: [
          { field: "credit_card", sealed: card },
          { field: "credit_card", sealed: `${card.slice(0, -4)}AAAA` },
          { field: "note", sealed: CANARY },
        ],
      });
      await client.rewrapFields({ scope, items: [{ field: "credit_card", sealed: card }] });
      // Error paths that carry the canary in the request.
      await capture(client.decryptField({ scope: session("elsewhere"), field: "credit_card", sealed: card }));
      await capture(client.decryptField({ scope, field: "credit_card", sealed: CANARY }));
      await capture(client.decryptField({ scope, field: "credit_card", sealed: `fs1.default.1.${CANARY}` }));
      await capture(client.encryptFields({ scope, fields: { credit_card: text(CANARY.repeat(5000)) } }));
      // Blind indexes, masks and an erasable scope, with their error paths.
      const index = await client.computeIndex({ field: "credit_card", value: CANARY, allVersions: true });
      expect(index.indexes[0]).toMatch(/^fx1\.default\.1\./);
      expect(await capture(client.computeIndex({ field: "pan", value: CANARY }))).toBeUndefined();
      await capture(client.computeIndex({ field: "email", value: CANARY }));
      await capture(client.computeIndex({ keyring: "nowhere", field: "pan", value: CANARY }));
      await capture(client.encryptFields({ scope, fields: { pan: text(CANARY) }, indexFields: ["pan"] }));
      await capture(
        client.encryptFields({ scope, fields: { credit_card: text(CANARY) }, indexFields: ["nope"] }),
      );
      const user = create(ScopeSchema, { id: { case: "userId", value: `canary-user-${i}` } });
      const erasable = await client.encryptFields({
        keyring: "crm",
        scope: user,
        fields: {
          credit_card: text(CANARY),
          pan: text("4111111111111111"),
          email: text("canary@example.com"),
        },
        indexFields: ["credit_card", "pan"],
      });
      expect(JSON.stringify(erasable)).not.toContain("CANARY");
      const erased = erasable.sealed.credit_card ?? "";
      const back = await client.decryptField({ scope: user, field: "credit_card", sealed: erased });
      expect(back.value?.kind).toEqual({ case: "stringValue", value: CANARY });
      await client.forgetScope({ keyring: "crm", scope: user });
      expect(
        await capture(client.decryptField({ scope: user, field: "credit_card", sealed: erased })),
        "a forgotten scope's value never opens",
      ).toBeUndefined();
      await capture(
        client.encryptFields({ keyring: "crm", scope: user, fields: { credit_card: text(CANARY) } }),
      );
    }
    // A caller without the right to the field, and one without credentials.
    const billing = createClient(
      FieldsealService,
      createConnectTransport({
        baseUrl: fs.url,
        httpVersion: "1.1",
        interceptors: [bearer(fs.tokens.billing)],
      }),
    );
    const noteSealed = await fs
      .client("admin")
      .encryptFields({ scope: session("s"), fields: { ssn: text(CANARY) } });
    await capture(
      billing.decryptField({ scope: session("s"), field: "ssn", sealed: noteSealed.sealed.ssn ?? "" }),
    );
    await capture(fs.client("nobody").encryptFields({ scope: session("s"), fields: { f: text(CANARY) } }));

    // A real gRPC client.
    const grpcClient = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
    try {
      const r = await unary(
        grpcClient,
        FieldsealService.method.encryptFields,
        { scope: session("g"), fields: { credit_card: text(CANARY) } },
        fs.tokens.bot,
      );
      await unary(
        grpcClient,
        FieldsealService.method.decryptField,
        { scope: session("g"), field: "credit_card", sealed: r.sealed.credit_card ?? "" },
        fs.tokens.billing,
      );
      await unary(
        grpcClient,
        FieldsealService.method.decryptField,
        { scope: session("h"), field: "credit_card", sealed: r.sealed.credit_card ?? "" },
        fs.tokens.billing,
      ).catch((e: Error) => shown.push(e.message));
    } finally {
      grpcClient.close();
    }

    // The webhook: a good call that pushes, and bad ones that carry the canary.
    const webhook = (body: string, headers: Record<string, string>) =>
      fetch(`${fs.url}/webhooks/cognigy`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${fs.tokens.bot}`, ...headers },
        body,
      }).then(async (res) => {
        const answer = await res.text();
        // Every answer, 200s included: a refusal or a failed push is a 200 the flow may store.
        shown.push(answer);
        return { status: res.status, answer };
      });
    const good = await webhook(
      JSON.stringify({ sessionId: "wh-1", userId: "u", variables: { credit_card: CANARY, language: "en" } }),
      {
        "x-sensitive-metadata": "field:credit_card",
      },
    );
    expect(good.status).toBe(200);
    expect(JSON.parse(good.answer)).toMatchObject({ status: "sealed", pushed: { httpStatus: 200 } });
    expect(good.answer).not.toContain(CANARY);
    expect(JSON.stringify([...simulator.contexts.values()])).not.toContain(CANARY);
    for (const [body, headers] of [
      [
        `{"sessionId": "wh-2", "variables": {"credit_card": "${CANARY}"`,
        { "x-sensitive-metadata": "field:credit_card" },
      ],
      [
        JSON.stringify({ sessionId: "wh-3", variables: { credit_card: CANARY } }),
        { "x-sensitive-metadata": "field:ssn" },
      ],
      [
        JSON.stringify({ sessionId: "wh-4", variables: { credit_card: CANARY } }),
        { "x-sensitive-metadata": `${CANARY}` },
      ],
      [
        JSON.stringify({ variables: { credit_card: CANARY } }),
        { "x-sensitive-metadata": "field:credit_card" },
      ],
      [
        JSON.stringify({ sessionId: "wh-5", variables: { credit_card: CANARY } }),
        { "x-sensitive-metadata": "field:credit_card", authorization: "Bearer nope" },
      ],
    ] as const) {
      const r = await webhook(body, headers);
      // Refused: as a problem document, or (a flagged field missing) as 200 with status "refused".
      if (r.status === 200) expect(JSON.parse(r.answer).status).toBe("refused");
      else expect(r.status).toBeGreaterThanOrEqual(400);
    }

    // The CLI, on the same data directory and keys, including an error.
    const env = {
      ...process.env,
      FIELDSEAL_DATA_DIR: fs.dataDir,
    };
    const cliSealed = await run(
      process.execPath,
      ["bin/fieldseal.js", "seal", "--field", "credit_card", "--session", "c", CANARY],
      { env },
    );
    shown.push(cliSealed.stderr);
    expect(cliSealed.stdout).not.toContain(CANARY);
    const cliWrong = await run(
      process.execPath,
      ["bin/fieldseal.js", "open", "--field", "ssn", "--session", "c", cliSealed.stdout.trim()],
      { env },
    ).catch((e: { stdout: string; stderr: string }) => e);
    shown.push(cliWrong.stdout, cliWrong.stderr);

    const metrics = await (await fetch(`${fs.url}/metrics`)).text();
    const audit = JSON.stringify(fs.audit.events);
    const logs = fs.logs.join("");
    expect(fs.logs.length).toBeGreaterThan(10);
    expect(fs.audit.events.length).toBeGreaterThan(10);
    const actions = new Set(fs.audit.events.map((e) => (e as { action?: string }).action));
    expect([...actions]).toEqual(expect.arrayContaining(["index", "forget", "encrypt", "decrypt"]));
    expect(shown.length).toBeGreaterThan(15);
    for (const [where, textOf] of [
      ["logs", logs],
      ["audit", audit],
      ["metrics", metrics],
      ["errors", shown.join("\n")],
    ] as const) {
      expect(textOf, where).not.toContain(CANARY);
      expect(textOf, where).not.toContain("CANARY");
    }

    // Key material, from the keyring files, in any of its spellings.
    const keyDir = join(fs.dataDir, "keys");
    const keys: string[] = [];
    for (const file of readdirSync(keyDir).filter((f) => f.endsWith(".json"))) {
      const state = JSON.parse(readFileSync(join(keyDir, file), "utf8")) as {
        versions: { material: string }[];
      };
      for (const v of state.versions) keys.push(v.material);
    }
    expect(keys.length).toBeGreaterThanOrEqual(1);
    const everything = [logs, audit, metrics, shown.join("\n")].join("\n");
    for (const key of keys) {
      const bytes = Buffer.from(key, "base64");
      for (const spelling of [key, bytes.toString("base64url"), bytes.toString("hex")]) {
        expect(everything).not.toContain(spelling);
      }
    }
  });
});
