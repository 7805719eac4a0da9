/**
 * Two real server processes sharing one local key directory seal continuously while the CLI rotates the
 * keyring again and again and either server is stopped (SIGSTOP) for a moment at random: every value either
 * server sealed opens on both, and the version each seal names has one material everywhere.
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
const SCOPE = { id: { case: "sessionId", value: "s-chaos" } } as const;
const ROTATIONS = 6;

type Client = ReturnType<typeof createClient<typeof FieldsealService>>;

describe("two servers on one key directory, the CLI rotating, servers stopped at random", () => {
  let a: FieldsealProcess;
  let b: FieldsealProcess;
  const clients = (server: FieldsealProcess) => {
    const client = (token: string | undefined): Client =>
      createClient(
        FieldsealService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(token)] }),
      );
    return { bot: client(server.tokens.bot), billing: client(server.tokens.billing) };
  };

  beforeAll(async () => {
    a = await startFieldsealProcess();
    // The second server's key directory is the first's.
    b = await startFieldsealProcess({ env: { FIELDSEAL_DATA_DIR: a.dataDir } });
  }, 60_000);
  afterAll(async () => {
    for (const s of [a, b]) s?.child.kill("SIGCONT");
    await Promise.all([b?.stop(), a?.stop()]);
  });

  it("opens every value everywhere", { timeout: 90_000 }, async () => {
    const servers = [
      { process: a, ...clients(a) },
      { process: b, ...clients(b) },
    ];
    const sealed: Array<{ value: string; sealed: string; version: number }> = [];
    let rotating = true;
    const sealing = servers.map(async (server, n) => {
      for (let i = 0; rotating && i < 5_000; i++) {
        const value = `${n}-${i}`;
        const out = await server.bot.encryptFields({
          scope: SCOPE,
          fields: { credit_card: { kind: { case: "stringValue", value } } },
        });
        sealed.push({ value, sealed: out.sealed.credit_card as string, version: out.keyVersion });
        await sleep(5);
      }
    });
    const stopping = (async () => {
      let seed = 7;
      while (rotating) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        const victim = servers[seed % 2]?.process;
        victim?.child.kill("SIGSTOP");
        await sleep(50 + (seed % 250));
        victim?.child.kill("SIGCONT");
        await sleep(100);
      }
    })();
    const env = {
      PATH: process.env.PATH ?? "",
      HOME: a.dataDir,
      FIELDSEAL_DATA_DIR: a.dataDir,
      FIELDSEAL_CONFIG: join(a.dataDir, "config.json"),
      FIELDSEAL_LOG_LEVEL: "silent",
    };
    // Wait for both servers to have sealed before the first rotation.
    const deadline = Date.now() + 30_000;
    while (new Set(sealed.map((s) => s.value[0])).size < 2 && Date.now() < deadline) await sleep(20);
    for (let r = 0; r < ROTATIONS; r++) {
      await run(process.execPath, [FIELDSEAL_BIN, "keys", "rotate"], {
        cwd: a.dataDir,
        env,
        timeout: 30_000,
      });
      await sleep(150);
    }
    await sleep(500);
    rotating = false;
    await stopping;
    for (const s of servers) s.process.child.kill("SIGCONT");
    await Promise.all(sealing);

    const versions = new Set(sealed.map((s) => s.version));
    console.log(
      `sealed ${sealed.length} values under versions ${[...versions].sort((x, y) => x - y).join(",")}`,
    );
    expect(versions.size).toBeGreaterThan(1);
    expect(Math.max(...versions)).toBeGreaterThanOrEqual(1 + ROTATIONS);
    // Every value opens on both servers: one material per version everywhere. A sample of each version's
    // values keeps the call count bounded.
    const byVersion = new Map<number, typeof sealed>();
    for (const s of sealed) byVersion.set(s.version, [...(byVersion.get(s.version) ?? []), s]);
    for (const [, values] of byVersion) {
      for (const s of [...values.slice(0, 10), ...values.slice(-10)]) {
        for (const server of servers) {
          const opened = await server.billing.decryptField({
            scope: SCOPE,
            field: "credit_card",
            sealed: s.sealed,
          });
          expect(opened.value?.kind).toEqual({ case: "stringValue", value: s.value });
        }
      }
    }
    for (const server of servers) expect(server.process.stderr()).not.toMatch(/key store call failed/);
  });
});
