/**
 * Three `fieldseal serve` replicas on one Secrets Manager (moto) behind a real nginx: grpc_pass for gRPC,
 * proxy_pass HTTP/1.1 for the webhook. grpc-js keeps 64 calls in flight through nginx with a retry policy
 * in its service config; keys rotate during the load; one replica is SIGKILLed and restarted on its port.
 */
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, inject, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { type AwsReplica, startAwsReplica, stopAll } from "../support/aws-replica.js";
import { bearer } from "../support/bearer.js";
import { grpc, grpcJsClient, unary } from "../support/grpc-js.js";
import { type Nginx, nginxTestsRun, startNginx } from "../support/nginx.js";

const endpoint = inject("motoEndpoint");
const IN_FLIGHT = 64;
const WEBHOOKS_IN_FLIGHT = 4;
const LOAD_MS = 8_000;
const ROTATIONS = 3;
/**
 * grpc-js retries UNAVAILABLE (nginx's 502 for a call whose replica died under it) up to 5 attempts in all,
 * with backoff 50 ms doubling to 500 ms: a call fails only if 5 attempts in a row meet a dying replica.
 */
const RETRY_POLICY = {
  maxAttempts: 5,
  initialBackoff: "0.05s",
  maxBackoff: "0.5s",
  backoffMultiplier: 2,
  retryableStatusCodes: ["UNAVAILABLE"],
};
const SERVICE_CONFIG = JSON.stringify({
  methodConfig: [{ name: [{ service: "fieldseal.v1.FieldsealService" }], retryPolicy: RETRY_POLICY }],
});
/** Every call has a deadline, so a broken replica fails the test with its error rather than its timeout. */
const CALL_DEADLINE_MS = 15_000;
/** The webhook client retries a 502/503 the way Cognigy's HTTP Request node's retry attempts do. */
const WEBHOOK_ATTEMPTS = 3;

const PRINCIPALS = [
  { name: "bot", scopes: ["encrypt"] },
  { name: "reader", scopes: ["decrypt:*"] },
  { name: "ops", scopes: ["rotate"] },
  { name: "admin", scopes: ["admin"] },
];

/** A Connect client straight to one replica (not through nginx), over HTTP/1.1. */
function direct(replica: AwsReplica | undefined, token: string | undefined) {
  if (replica === undefined) throw new Error("replica missing");
  return createClient(
    FieldsealService,
    createConnectTransport({ baseUrl: replica.url, httpVersion: "1.1", interceptors: [bearer(token)] }),
  );
}

interface Sealed {
  session: string;
  field: string;
  value: string;
  sealed: string;
  version: number;
}

describe.runIf(nginxTestsRun())("three replicas behind nginx", () => {
  const replicas: (AwsReplica | undefined)[] = [];
  let nginx: Nginx | undefined;
  const clients: grpc.Client[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    await nginx?.stop();
    await stopAll(replicas);
  });

  it("keeps every call, every value and every key version through rotations and a killed replica", async () => {
    const tokens = Object.fromEntries(PRINCIPALS.map((p) => [p.name, generateToken()]));
    const principals = PRINCIPALS.map((p) => ({
      name: p.name,
      tokenSha256: hashToken(tokens[p.name] ?? ""),
      scopes: p.scopes,
    }));
    const secretPrefix = `nginx-${randomUUID()}/`;
    const start = (port?: number) =>
      startAwsReplica({
        awsEndpoint: endpoint,
        secretPrefix,
        config: { principals },
        env: {
          FIELDSEAL_SHUTDOWN_GRACE_MS: "2000",
          ...(port === undefined ? {} : { FIELDSEAL_PORT: String(port) }),
        },
      });
    // Version 1 exists before the others start: the race under test is rotation, not creation.
    replicas.push(await start());
    replicas.push(...(await Promise.all([start(), start()])));
    const addresses = replicas.map((r) => r?.address ?? "");
    nginx = await startNginx(addresses);
    const bot = tokens.bot ?? "";

    const channel = grpcJsClient(FieldsealService, `127.0.0.1:${nginx.grpcPort}`, undefined, {
      "grpc.service_config": SERVICE_CONFIG,
      "grpc.enable_retries": 1,
    });
    clients.push(channel);

    const sealed: Sealed[] = [];
    const failures: string[] = [];
    /** Calls cut on the killed replica after their answer had begun (see below), with when they started. */
    const cut: number[] = [];
    let killedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    let calls = 0;
    const grpcLoops = Array.from({ length: IN_FLIGHT }, async (_, loop) => {
      for (let n = 0; !stop; n++) {
        const session = `g-${loop}`;
        const startedAt = performance.now();
        const value = `4111-${loop}-${n}`;
        try {
          const res = await unary(
            channel,
            FieldsealService.method.encryptFields,
            {
              scope: { id: { case: "sessionId", value: session } },
              fields: { card: { kind: { case: "stringValue", value } } },
            },
            bot,
            CALL_DEADLINE_MS,
          );
          sealed.push({
            session,
            field: "card",
            value,
            sealed: res.sealed.card ?? "",
            version: res.keyVersion,
          });
          calls++;
        } catch (err) {
          const e = err as grpc.ServiceError;
          // nginx resets the client's stream (INTERNAL_ERROR) when the replica dies after the answer's
          // headers went through: the call is committed then, and gRPC's retry rules forbid a retry.
          if (e.code === grpc.status.INTERNAL && /RST_STREAM with code 2/.test(e.details))
            cut.push(startedAt);
          else failures.push(`grpc: ${e.code} ${e.details}`);
        }
      }
    });
    let webhookRetried = 0;
    const webhookLoops = Array.from({ length: WEBHOOKS_IN_FLIGHT }, async (_, loop) => {
      for (let n = 0; !stop; n++) {
        const session = `w-${loop}-${n}`;
        const value = `5500-${loop}-${n}`;
        let done = false;
        for (let attempt = 1; attempt <= WEBHOOK_ATTEMPTS && !done; attempt++) {
          try {
            const res = await fetch(`http://127.0.0.1:${nginx?.httpPort}/webhooks/cognigy`, {
              method: "POST",
              headers: {
                "content-type": "application/json",
                authorization: `Bearer ${bot}`,
                "x-sensitive-metadata": "field:card",
              },
              body: JSON.stringify({ sessionId: session, variables: { card: value } }),
              signal: AbortSignal.timeout(15_000),
            });
            const text = await res.text();
            if ((res.status === 502 || res.status === 503) && attempt < WEBHOOK_ATTEMPTS) {
              webhookRetried++;
              continue;
            }
            if (res.status !== 200) {
              failures.push(`webhook: HTTP ${res.status} ${text.slice(0, 200)}`);
              break;
            }
            const body = JSON.parse(text) as { keyVersion: number; variables: Record<string, unknown> };
            const envelope = body.variables.__enc_card;
            if (typeof envelope !== "string" || body.variables.card !== null)
              failures.push(`webhook: unexpected variables ${Object.keys(body.variables).join(",")}`);
            else sealed.push({ session, field: "card", value, sealed: envelope, version: body.keyVersion });
            done = true;
          } catch (err) {
            failures.push(`webhook: ${String(err)}`);
            break;
          }
        }
      }
    });

    // Rotations through nginx during the load, and one replica killed and restarted on its own port.
    const rotated: number[] = [];
    const ops = (async () => {
      for (let r = 0; r < ROTATIONS; r++) {
        await new Promise((res) => setTimeout(res, LOAD_MS / (ROTATIONS + 2)));
        const res = await unary(channel, FieldsealService.method.rotateKey, {}, tokens.ops, CALL_DEADLINE_MS);
        rotated.push(res.key?.primaryVersion ?? 0);
      }
    })();
    await new Promise((r) => setTimeout(r, LOAD_MS / 3));
    const victim = replicas[1];
    if (victim === undefined) throw new Error("no replica 1");
    const callsAtKill = calls;
    killedAt = performance.now();
    process.kill(victim.pid, "SIGKILL");
    await victim.stop();
    replicas[1] = await start(victim.port);
    const restartedAt = calls;
    await ops;
    await new Promise((r) => setTimeout(r, LOAD_MS / 3));
    stop = true;
    await Promise.all([...grpcLoops, ...webhookLoops]);

    // nginx's own record of every gRPC attempt: non-200 attempts are the ones grpc-js retried (every call
    // above succeeded in the end), an upstream list "a, b" is nginx's own retry of a request not yet sent.
    const log = nginx.grpcAccessLog();
    const failedAttempts = log.filter((l) => !l.startsWith("200 "));
    const nginxNextUpstream = log.filter((l) => l.includes(", "));
    const restarted = replicas[1];
    const servedByRestarted = log.filter(
      (l) => restarted !== undefined && l.split(" ")[1]?.endsWith(`:${restarted.port}`),
    );
    console.log(
      `replicas behind nginx: ${calls} gRPC calls ok (${callsAtKill} before the kill, ${restartedAt - callsAtKill} while the replica was down), ${sealed.length - calls} webhooks ok; ` +
        `gRPC attempts failed and retried by grpc-js: ${failedAttempts.length} (${[...new Set(failedAttempts.map((l) => l.split(" ")[0]))].join(",")}); ` +
        `nginx next-upstream retries: ${nginxNextUpstream.length}; calls cut after their answer began: ${cut.length}; webhook retries: ${webhookRetried}; ` +
        `calls served by the restarted replica: ${servedByRestarted.length}; rotations to ${rotated.join(", ")}`,
    );
    expect(failures).toEqual([]);
    // Retried attempts and cut calls are those in flight on the killed replica: at most one per call in
    // flight, cut ones all started before the kill.
    expect(failedAttempts.length + cut.length).toBeLessThanOrEqual(IN_FLIGHT);
    for (const startedAt of cut) expect(startedAt).toBeLessThan(killedAt);
    for (const line of failedAttempts) expect(line.split(" ")[1]).toBe(victim.address);
    expect(webhookRetried).toBeLessThanOrEqual(WEBHOOKS_IN_FLIGHT);
    expect(servedByRestarted.length).toBeGreaterThan(0);
    expect(rotated).toHaveLength(ROTATIONS);

    // No key version lost: every replica describes the same contiguous versions once they have refreshed.
    const describeAll = () =>
      Promise.all(
        replicas.map(async (r) => {
          const res = await direct(r, tokens.admin).describeKey({});
          return {
            primary: res?.key?.primaryVersion,
            versions: res?.key?.versions.map((v) => v.version),
          };
        }),
      );
    let described = await describeAll();
    for (let i = 0; i < 50 && new Set(described.map((d) => JSON.stringify(d))).size > 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      described = await describeAll();
    }
    const last = rotated.at(-1) ?? 0;
    for (const d of described) {
      expect(d.primary).toBe(last);
      expect(d.versions).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    }
    // Values were sealed under every version (material unchanged: they all open below).
    const versionsUsed = new Set(sealed.map((s) => s.version));
    for (let v = 1; v <= last; v++) expect(versionsUsed).toContain(v);

    // Every value opens on every replica, asked directly (not through nginx).
    const bySession = new Map<string, Sealed[]>();
    for (const s of sealed) bySession.set(s.session, [...(bySession.get(s.session) ?? []), s]);
    for (const replica of replicas) {
      const reader = direct(replica, tokens.reader);
      for (const [session, items] of bySession) {
        for (let i = 0; i < items.length; i += 500) {
          const batch = items.slice(i, i + 500);
          const res = await reader.decryptFields({
            scope: { id: { case: "sessionId", value: session } },
            items: batch.map((s) => ({ field: s.field, sealed: s.sealed })),
          });
          const opened = res.results.map((r) =>
            r.outcome.case === "value"
              ? r.outcome.value.kind.value
              : `${r.outcome.case}: ${r.outcome.value?.code}`,
          );
          expect(opened).toEqual(batch.map((s) => s.value));
        }
      }
    }
  });
});
