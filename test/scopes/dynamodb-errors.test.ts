/**
 * DynamoDB failures answer store_unavailable with a reason an operator can act on, and never quote the
 * request (which holds a wrapped key): a missing table on moto, and a throttling endpoint on loopback that
 * answers every call as DynamoDB does when it throttles.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DynamoDbScopeKeyStore } from "../../src/scopes/dynamodb-store.js";
import type { LiveScopeKey } from "../../src/scopes/types.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";

const wrapped = new Uint8Array(60).fill(0x5a);
const live = (scope: string): LiveScopeKey => ({
  state: "live",
  keyring: "crm",
  scope,
  generation: 1,
  wrapped,
  wrapVersion: 1,
  createdAt: new Date().toISOString(),
});

async function failure(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as { code: string; message: string } | undefined;
  expect(err).toBeDefined();
  return { code: String(err?.code), message: String(err?.message) };
}

describe("DynamoDB scope key table errors", () => {
  it("names a missing table and how to create it", async () => {
    const table = `missing-${randomUUID()}`;
    const store = new DynamoDbScopeKeyStore({
      table,
      endpoint: inject("motoEndpoint"),
      region: MOTO_REGION,
      credentials: MOTO_CREDENTIALS,
    });
    try {
      for (const call of [
        () => store.get("crm", "user:u1"),
        () => store.createKey(live("user:u1")),
        () => store.forget("crm", "user:u1", new Date().toISOString()),
      ]) {
        const f = await failure(call());
        expect(f.code).toBe("store_unavailable");
        expect(f.message).toContain(`"${table}"`);
        expect(f.message).toContain("fieldseal scopes create-table");
        expect(f.message).toContain("ResourceNotFoundException");
      }
    } finally {
      await store.close();
    }
  });

  describe("a table that throttles every call", () => {
    let server: Server;
    let endpoint: string;
    let calls = 0;
    beforeAll(async () => {
      server = createServer((req, res) => {
        calls++;
        req.resume();
        req.on("end", () => {
          res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
          res.end(
            JSON.stringify({
              __type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
              message: "The level of configured provisioned throughput for the table was exceeded.",
            }),
          );
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((r) => server.close(r));
    });

    it("answers store_unavailable saying it is throttled, after the SDK's bounded retries", async () => {
      const store = new DynamoDbScopeKeyStore({
        table: "busy",
        endpoint,
        region: MOTO_REGION,
        credentials: MOTO_CREDENTIALS,
      });
      try {
        calls = 0;
        const f = await failure(store.createKey(live("session:s1")));
        expect(f.code).toBe("store_unavailable");
        expect(f.message).toContain('"busy" is throttling requests');
        expect(f.message).not.toContain(Buffer.from(wrapped).toString("base64"));
        // Retried, but within the client's bound (maxAttempts 3).
        expect(calls).toBeGreaterThanOrEqual(1);
        expect(calls).toBeLessThanOrEqual(3);
      } finally {
        await store.close();
      }
    });
  });
});
