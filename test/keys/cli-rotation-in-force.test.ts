/**
 * A rotation made by another process (the `fieldseal keys rotate` CLI) is in force on a running server with
 * the local key store within a second, and DescribeKey tells the server's sealing version from the store's
 * primary while they differ. Both are real processes.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { FIELDSEAL_BIN, type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";

const run = promisify(execFile);
/** The server checks the store's revision at most every 250 ms before sealing; a second is the promise. */
const IN_FORCE_MS = 1_000;

describe("a rotation by the CLI, seen by a running server (local store)", () => {
  let server: FieldsealProcess;
  let bot: ReturnType<typeof createClient<typeof FieldsealService>>;
  let admin: ReturnType<typeof createClient<typeof FieldsealService>>;

  beforeAll(async () => {
    server = await startFieldsealProcess();
    const client = (token: string | undefined) =>
      createClient(
        FieldsealService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(token)] }),
      );
    bot = client(server.tokens.bot);
    admin = client(server.tokens.admin);
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function sealedVersion(): Promise<number> {
    const out = await bot.encryptFields({
      scope: { id: { case: "sessionId", value: "s-1" } },
      fields: { card: { kind: { case: "stringValue", value: "4111111111111111" } } },
    });
    return out.keyVersion;
  }

  async function rotateWithCli(): Promise<string> {
    const { stdout } = await run(process.execPath, [FIELDSEAL_BIN, "keys", "rotate"], {
      cwd: server.dataDir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: server.dataDir,
        FIELDSEAL_DATA_DIR: server.dataDir,
        FIELDSEAL_CONFIG: join(server.dataDir, "config.json"),
        FIELDSEAL_LOG_LEVEL: "silent",
      },
      timeout: 30_000,
    });
    return stdout;
  }

  it("seals under the new version within a second of `keys rotate`", async () => {
    expect(await sealedVersion()).toBe(1);
    // Seal continuously while the CLI rotates and for a little longer than the promise after it returns;
    // bounded in time and count.
    const t0 = performance.now();
    let returnedMs: number | undefined;
    const cli = rotateWithCli().then((out) => {
      returnedMs = performance.now() - t0;
      return out;
    });
    const seals: Array<{ startedMs: number; version: number }> = [];
    while (
      (returnedMs === undefined || performance.now() - t0 < returnedMs + IN_FORCE_MS + 300) &&
      performance.now() - t0 < 30_000 &&
      seals.length < 5_000
    ) {
      const startedMs = performance.now() - t0;
      seals.push({ startedMs, version: await sealedVersion() });
      await sleep(10);
    }
    expect(await cli).toMatch(/version 2 is now primary/);
    const returned = returnedMs as number;
    const lastOld = seals.filter((s) => s.version === 1).at(-1);
    const firstNew = seals.find((s) => s.version === 2);
    console.log(
      `last seal under version 1 began ${((lastOld?.startedMs ?? 0) - returned).toFixed(0)} ms, the first under version 2 ${((firstNew?.startedMs ?? 0) - returned).toFixed(0)} ms after the CLI returned (${seals.length} seals)`,
    );
    expect(firstNew).toBeDefined();
    // Once switched it never goes back, and every seal begun a second after the CLI returned is under 2.
    expect(seals.slice(seals.indexOf(firstNew as (typeof seals)[number])).every((s) => s.version === 2)).toBe(
      true,
    );
    const late = seals.filter((s) => s.startedMs >= returned + IN_FORCE_MS);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((s) => s.version === 2)).toBe(true);
  });

  it("DescribeKey reports the server's sealing version beside the store's primary while they differ", async () => {
    expect(await sealedVersion()).toBe(2);
    expect(await rotateWithCli()).toMatch(/version 3 is now primary/);
    // No seal since the rotation: the server has not looked yet.
    const before = await admin.describeKey({ keyring: "default" });
    expect(before.key?.primaryVersion).toBe(3);
    expect(before.sealingVersion).toBe(2);
    // DescribeKey read the store, so the server now seals under the store's primary.
    const after = await admin.describeKey({ keyring: "default" });
    expect(after.sealingVersion).toBe(3);
    expect(after.key?.primaryVersion).toBe(3);
    expect(await sealedVersion()).toBe(3);
  });
});
