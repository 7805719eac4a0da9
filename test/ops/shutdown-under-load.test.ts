/**
 * Graceful shutdown of a real `fieldseal serve` process while 64 calls are in flight over gRPC (grpc-js
 * and connect-node, HTTP/2) and Connect over HTTP/1.1. The calls are large DecryptFields batches so the
 * server is busy when SIGTERM arrives; nothing in the server is slowed down for the test.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { grpc, grpcJsClient, unary } from "../support/grpc-js.js";

const GRACE_MS = 20_000;
const IN_FLIGHT = 64;
const BATCH = 1000;
const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-shutdown" } });

/**
 * - "refused": the server's own UNAVAILABLE for a request that arrived after shutdown began;
 * - "not started": grpc-js's UNAVAILABLE "No connection established": no connection became ready for the
 *   call, so its request was never sent (e.g. its stream was above GOAWAY's last stream id, RFC 9113 §6.8,
 *   and the retry found the port closed), or a stream the server reset with REFUSED_STREAM, which
 *   HTTP/2 defines as "no application processing occurred" (RFC 9113 §8.7);
 * - anything else (a reset mid-call, another code) is a failure.
 */
type Outcome = "ok" | "refused" | "not started" | `other: ${string}`;

function classify(err: unknown): Outcome {
  const [unavailable, message] =
    err instanceof ConnectError
      ? [err.code === Code.Unavailable, err.rawMessage]
      : typeof (err as grpc.ServiceError)?.code === "number"
        ? [(err as grpc.ServiceError).code === grpc.status.UNAVAILABLE, (err as grpc.ServiceError).details]
        : [false, String(err)];
  if (unavailable && /shutting down/.test(message)) return "refused";
  if (unavailable && /^No connection established|NGHTTP2_REFUSED_STREAM/.test(message)) return "not started";
  return `other: ${message}`;
}

describe("SIGTERM under load", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_SHUTDOWN_GRACE_MS: String(GRACE_MS), FIELDSEAL_LOG_LEVEL: "info" },
    });
  });
  afterAll(async () => {
    await proc.stop(2000);
  });

  it("finishes in-flight calls, refuses new ones with UNAVAILABLE, and exits 0 within the grace period", async () => {
    const admin = proc.tokens.admin ?? "";
    const connectH1 = createClient(
      FieldsealService,
      createConnectTransport({ baseUrl: proc.url, httpVersion: "1.1", interceptors: [bearer(admin)] }),
    );
    const grpcH2 = createClient(
      FieldsealService,
      createGrpcTransport({ baseUrl: proc.url, interceptors: [bearer(admin)] }),
    );
    const grpcJs = grpcJsClient(FieldsealService, `127.0.0.1:${proc.port}`);

    const fields = Object.fromEntries(
      Array.from({ length: BATCH }, (_, i) => [
        `f${i}`,
        { kind: { case: "numberValue" as const, value: i } },
      ]),
    );
    const sealed = await connectH1.encryptFields({ scope, fields });
    const items = Object.entries(sealed.sealed).map(([field, value]) => ({ field, sealed: value }));
    expect(items).toHaveLength(BATCH);
    const auditBefore = decryptAudits(proc.stdout());

    let sigtermSent = false;
    let okAfterSigterm = 0;
    const calls = Array.from({ length: IN_FLIGHT }, async (_, i): Promise<Outcome> => {
      try {
        const req = { scope, items };
        const res =
          i % 4 === 0
            ? await connectH1.decryptFields(req)
            : i % 4 === 1
              ? await grpcH2.decryptFields(req)
              : await unary(grpcJs, FieldsealService.method.decryptFields, req, admin);
        // A completed call must be whole: every item opened.
        const opened = res.results.filter((r) => r.outcome.case === "value").length;
        if (opened !== BATCH) return `other: ${opened} of ${BATCH} items opened`;
        if (sigtermSent) okAfterSigterm++;
        return "ok";
      } catch (err) {
        const o = classify(err);
        return o.startsWith("other")
          ? (`${o} [${["connect h1", "grpc h2", "grpc-js", "grpc-js"][i % 4]}]` as Outcome)
          : o;
      }
    });
    // SIGTERM as soon as the server has answered one call: the others are queued or being served.
    await Promise.race(calls);
    proc.child.kill("SIGTERM");
    sigtermSent = true;
    await waitFor(() => /SIGTERM: finishing in-flight calls/.test(proc.stdout()));

    // New calls after SIGTERM: refused by the draining server, or the connection is refused outright.
    const late = await Promise.all(
      [
        () => connectH1.listKeyrings({}),
        () =>
          createClient(
            FieldsealService,
            createConnectTransport({ baseUrl: proc.url, httpVersion: "1.1", interceptors: [bearer(admin)] }),
          ).listKeyrings({}),
        () =>
          unary(
            grpcJsClient(FieldsealService, `127.0.0.1:${proc.port}`),
            FieldsealService.method.listKeyrings,
            {},
            admin,
          ),
      ].map(async (call) => {
        try {
          await call();
          return "served";
        } catch (err) {
          if (err instanceof ConnectError && err.code === Code.Unavailable) return "unavailable";
          if ((err as grpc.ServiceError).code === grpc.status.UNAVAILABLE) return "unavailable";
          if (/ECONNREFUSED/.test(String((err as Error).cause ?? err))) return "refused";
          // A late HTTP/1.1 call may pick a pooled keep-alive connection at the moment the draining server
          // closes it as idle: the server never read the request (had it, the call would have been answered
          // UNAVAILABLE), and RFC 9112 §9.3.1 leaves the retry to the client. Nothing of it was processed.
          if (
            err instanceof ConnectError &&
            err.code === Code.Aborted &&
            /socket hang up|ECONNRESET/.test(err.rawMessage)
          ) {
            return "closed before read";
          }
          return `other: ${String(err)}`;
        }
      }),
    );

    const outcomes = await Promise.all(calls);
    const exit = await Promise.race([
      proc.exited,
      new Promise<string>((r) =>
        setTimeout(() => r("still running after the grace period"), GRACE_MS + 5000),
      ),
    ]);
    grpcJs.close();

    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    console.log(
      `shutdown under load: ${JSON.stringify(counts)}; completed after SIGTERM: ${okAfterSigterm}; late calls: ${late.join(", ")}; exit: ${exit}`,
    );
    expect(outcomes.filter((o) => o.startsWith("other"))).toEqual([]);
    expect(okAfterSigterm).toBeGreaterThan(0);
    for (const l of late) expect(["unavailable", "refused", "closed before read"]).toContain(l);
    expect(exit).toBe(0);
    // Refused calls did no work and finished calls did all of it: one decrypt audit per item served.
    expect(decryptAudits(proc.stdout()) - auditBefore).toBe((counts.ok ?? 0) * BATCH);
  });
});

function decryptAudits(stdout: string): number {
  return stdout.split("\n").filter((line) => line.includes('"action":"decrypt"')).length;
}

async function waitFor(condition: () => boolean, boundMs = 10_000): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > boundMs) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
