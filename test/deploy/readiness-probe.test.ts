/**
 * The Helm chart's readiness probe without TLS is the kubelet's gRPC probe: grpc.health.v1 Check of ""
 * and nothing else (no /readyz, and no traffic either, since a pod that is not ready gets none). A pod
 * that turned NOT_SERVING on a refused key store state must come back by that probe alone once the store
 * is repaired, as it does through /readyz.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { decodeKeyring, encodeKeyring } from "../../src/keys/keyring-codec.js";
import { currentKeyringFile, writeKeyringRevision } from "../keys/support.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

describe("readiness by the gRPC health check alone (the chart's cleartext probe)", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [{ name: "admin", scopes: ["admin"] }],
      settings: { keyrings: ["cards"], primaryRefreshMs: 100 },
    });
  });
  afterAll(async () => {
    await fs.close();
  });

  it("turns NOT_SERVING on changed key material and SERVING again once the store is repaired", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: fs.url }));
    const check = async () => (await health.check({ service: "" })).status;
    expect(await check()).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const keysDir = join(fs.dataDir, "keys");
    const good = decodeKeyring(await readFile(currentKeyringFile(keysDir, "cards"), "utf8"), "cards");
    const forged = {
      ...good,
      revision: good.revision + 1,
      versions: good.versions.map((v) =>
        v.version === 1 ? { ...v, material: new Uint8Array(32).fill(7) } : v,
      ),
    };
    await writeKeyringRevision(keysDir, forged, encodeKeyring(forged));
    const refused = await fs
      .client("admin")
      .describeKey({ keyring: "cards" })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
    expect(await check()).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);

    const repaired = { ...good, revision: good.revision + 2 };
    await writeKeyringRevision(keysDir, repaired, encodeKeyring(repaired));
    // Only the probe's own call, as the kubelet makes it every periodSeconds.
    await vi.waitFor(async () => expect(await check()).toBe(HealthCheckResponse_ServingStatus.SERVING), {
      timeout: 10_000,
      interval: 200,
    });
  });
});
