/**
 * A running server (a real process, local key store) whose key directory is overwritten with a keyring of
 * the same name from another history (a backup restored from elsewhere, a copy from another host): the server
 * refuses the new state and says so in its log, keeps the material it knows, and every value it sealed keeps
 * opening.
 */
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { encodeKeyring } from "../../src/keys/keyring-codec.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { keyringState } from "./key-store-contract.js";

const SCOPE = { id: { case: "sessionId", value: "s-1" } } as const;

describe("a running server whose keyring is replaced on disk by one from another history", () => {
  let server: FieldsealProcess;
  let bot: ReturnType<typeof createClient<typeof FieldsealService>>;
  let billing: ReturnType<typeof createClient<typeof FieldsealService>>;
  let admin: ReturnType<typeof createClient<typeof FieldsealService>>;

  beforeAll(async () => {
    server = await startFieldsealProcess();
    const client = (token: string | undefined) =>
      createClient(
        FieldsealService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(token)] }),
      );
    bot = client(server.tokens.bot);
    billing = client(server.tokens.billing);
    admin = client(server.tokens.admin);
  });
  afterAll(async () => {
    await server?.stop();
  });

  const seal = async (value: string) => {
    const out = await bot.encryptFields({
      scope: SCOPE,
      fields: { credit_card: { kind: { case: "stringValue", value } } },
    });
    return { sealed: out.sealed.credit_card as string, version: out.keyVersion };
  };
  const open = async (sealed: string) =>
    (await billing.decryptField({ scope: SCOPE, field: "credit_card", sealed })).value?.kind;

  it("refuses the foreign state, logs it, keeps sealing under the known material, and every value opens", async () => {
    const before = await seal("4111111111111111");
    expect(before.version).toBe(1);
    const keys = join(server.dataDir, "keys");
    const newest = Math.max(
      ...(await readdir(keys)).map((f) => Number(/^default\.([0-9]+)\.json$/.exec(f)?.[1] ?? 0)),
    );
    const foreign = keyringState("default", newest + 1, 2);
    await writeFile(join(keys, `default.${newest + 1}.json`), encodeKeyring(foreign), { mode: 0o600 });
    // Past the server's revision check interval (250 ms), generously.
    await sleep(600);
    const after = await seal("5500000000000004");
    expect(after.version).toBe(1);
    expect(await open(before.sealed)).toEqual({ case: "stringValue", value: "4111111111111111" });
    expect(await open(after.sealed)).toEqual({ case: "stringValue", value: "5500000000000004" });
    await expect(admin.describeKey({ keyring: "default" })).rejects.toThrow(/refused/);
    expect(server.stderr()).not.toContain("[redacted]");
    const deadline = Date.now() + 10_000;
    // Why and which version, not "[redacted]": the detail names versions and rules, never material.
    const refused =
      /"msg":"key store state refused","keyring":"default","reason":"material","error":"[^"]*change the material of version 1/;
    while (!refused.test(server.stderr())) {
      if (Date.now() > deadline) throw new Error(`not logged: ${server.stderr()}`);
      await sleep(50);
    }
    // The log names the problem, never material.
    for (const v of foreign.versions) {
      expect(server.stderr()).not.toContain(Buffer.from(v.material).toString("base64"));
    }
  });
});
