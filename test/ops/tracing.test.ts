/**
 * OpenTelemetry traces from a real `fieldseal serve` process to a real OTLP/HTTP receiver on loopback (this
 * file's own, reading OTLP/JSON), driven over real gRPC (@grpc/grpc-js) and the webhook, pushing into the
 * Cognigy simulator.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type CognigySimulator, startCognigySimulator } from "../support/cognigy-simulator.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { grpc, grpcJsClient } from "../support/grpc-js.js";

const CANARY = "CANARY-4111111111111111";
const SESSION = "sess-trace-7f3a91";

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}
const SERVER = 2;
const CLIENT = 3;

/** An OTLP/HTTP receiver: keeps every request's raw bytes and the spans of the JSON ones. */
async function startReceiver() {
  const raw: Buffer[] = [];
  const spans: ExportedSpan[] = [];
  const contentTypes: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      raw.push(body);
      contentTypes.push(`${req.method} ${req.url} ${req.headers["content-type"]}`);
      const doc = (
        req.headers["content-type"] === "application/json" ? JSON.parse(body.toString("utf8")) : {}
      ) as { resourceSpans?: { scopeSpans?: { spans?: ExportedSpan[] }[] }[] };
      for (const rs of doc.resourceSpans ?? [])
        for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push(s);
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    raw,
    spans,
    contentTypes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Waits (bounded) until the spans satisfy `found`. */
async function spansWhere<T>(spans: ExportedSpan[], found: (s: ExportedSpan[]) => T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const hit = found(spans);
    if (hit !== undefined) return hit;
    if (Date.now() > deadline)
      throw new Error(`spans not exported in time: ${spans.map((s) => s.name).join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const attr = (s: ExportedSpan, key: string) => s.attributes?.find((a) => a.key === key)?.value;

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let simulator: CognigySimulator;
let fs: FieldsealProcess;

beforeAll(async () => {
  receiver = await startReceiver();
  simulator = await startCognigySimulator();
  fs = await startFieldsealProcess({
    principals: [
      { name: "bot", scopes: ["encrypt", "push"] },
      { name: "ops", scopes: ["rotate"] },
    ],
    settings: { cognigy: { baseUrl: simulator.url, apiKey: simulator.apiKey, pushEnabled: true } },
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "fieldseal-under-test",
      // Standard batch-processor variable: export every 100 ms rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "100",
    },
  });
}, 60_000);
afterAll(async () => {
  await fs?.stop();
  await simulator?.close();
  await receiver?.close();
});

/** A unary gRPC call with a `traceparent` in its metadata. */
function grpcCall(
  method: "encryptFields" | "rotateKey",
  request: object,
  token: string,
  traceparent: string,
) {
  const client = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  metadata.set("traceparent", traceparent);
  const desc = FieldsealService.method[method];
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method] as (
    ...args: unknown[]
  ) => unknown;
  return new Promise<unknown>((resolve, reject) => {
    fn.call(client, create(desc.input, request as never), metadata, (err: Error | null, res: unknown) => {
      client.close();
      if (err === null) resolve(res);
      else reject(err);
    });
  });
}

describe("traces", () => {
  it("continue the caller's trace over gRPC: the RPC's server span is the child of its traceparent", async () => {
    const traceId = hex(16);
    const parent = hex(8);
    await grpcCall(
      "encryptFields",
      {
        scope: { id: { case: "sessionId", value: SESSION } },
        fields: { credit_card: { kind: { case: "stringValue", value: CANARY } } },
      },
      fs.tokens.bot as string,
      `00-${traceId}-${parent}-01`,
    );
    const span = await spansWhere(receiver.spans, (all) =>
      all.find((s) => s.traceId === traceId && s.name === "fieldseal.v1.FieldsealService/EncryptFields"),
    );
    expect(span.parentSpanId).toBe(parent);
    expect(span.kind).toBe(SERVER);
    expect(receiver.contentTypes.every((c) => c === "POST /v1/traces application/json")).toBe(true);
  }, 40_000);

  it("continue the caller's trace over the Connect protocol (HTTP/1.1, JSON) too", async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await fetch(`${fs.url}/fieldseal.v1.FieldsealService/EncryptFields`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${fs.tokens.bot}`,
        traceparent: `00-${traceId}-${parent}-01`,
      },
      body: JSON.stringify({ scope: { sessionId: SESSION }, fields: { credit_card: CANARY } }),
    });
    expect(res.status).toBe(200);
    await res.text();
    const span = await spansWhere(receiver.spans, (all) =>
      all.find((s) => s.traceId === traceId && s.name === "fieldseal.v1.FieldsealService/EncryptFields"),
    );
    expect(span.parentSpanId).toBe(parent);
  }, 40_000);

  it("start a new trace for a malformed or oversized traceparent, and the call still succeeds", async () => {
    const request = {
      scope: { id: { case: "sessionId", value: SESSION } },
      fields: { note: { kind: { case: "stringValue", value: "x" } } },
    };
    const bad = [
      `00-${"0".repeat(32)}-${hex(8)}-01`, // all-zero trace id: invalid by the W3C spec
      `00-${hex(16).toUpperCase()}-${hex(8)}-01`, // upper case: invalid
      `zz-${hex(16)}-${hex(8)}-01`,
      `00-${hex(16)}-${hex(8)}-01-${"a".repeat(4000)}`,
      `00-${hex(16)}-${hex(8)}`, // no flags
    ];
    const before = receiver.spans.length;
    for (const traceparent of bad) {
      await expect(
        grpcCall("encryptFields", request, fs.tokens.bot as string, traceparent),
      ).resolves.toBeDefined();
    }
    const roots = await spansWhere(receiver.spans, (all) => {
      const fresh = all.slice(before).filter((s) => s.name === "fieldseal.v1.FieldsealService/EncryptFields");
      return fresh.length >= bad.length ? fresh : undefined;
    });
    for (const span of roots) {
      expect(span.parentSpanId ?? "").toBe("");
      expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span.traceId).not.toBe("0".repeat(32));
    }
  }, 40_000);

  it("make each key store call a child of the RPC that needed it", async () => {
    const traceId = hex(16);
    const parent = hex(8);
    await grpcCall("rotateKey", { keyring: "" }, fs.tokens.ops as string, `00-${traceId}-${parent}-01`);
    const [rpc, write] = await spansWhere(receiver.spans, (all) => {
      const rpc = all.find(
        (s) => s.traceId === traceId && s.name === "fieldseal.v1.FieldsealService/RotateKey",
      );
      const write = all.find((s) => s.traceId === traceId && s.name === "fieldseal.keystore/compareAndSwap");
      return rpc && write ? ([rpc, write] as const) : undefined;
    });
    expect(rpc.parentSpanId).toBe(parent);
    expect(write.parentSpanId).toBe(rpc.spanId);
    expect(write.kind).toBe(CLIENT);
    expect(attr(write, "fieldseal.keystore.kind")).toEqual({ stringValue: "local" });
    expect(attr(write, "fieldseal.keyring")).toEqual({ stringValue: "default" });
  }, 40_000);

  it("continue the caller's trace over the webhook, with the Cognigy push attempt a child of PushSession", async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await fetch(`${fs.url}/webhooks/cognigy`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${fs.tokens.bot}`,
        "x-sensitive-metadata": "field:credit_card",
        traceparent: `00-${traceId}-${parent}-01`,
      },
      body: JSON.stringify({ sessionId: SESSION, userId: "user-trace", variables: { credit_card: CANARY } }),
    });
    expect(res.status).toBe(200);
    await res.text();
    const [seal, push, attempt] = await spansWhere(receiver.spans, (all) => {
      const inTrace = all.filter((s) => s.traceId === traceId);
      const seal = inTrace.find((s) => s.name === "fieldseal.v1.FieldsealService/EncryptFields");
      const push = inTrace.find((s) => s.name === "fieldseal.v1.FieldsealService/PushSession");
      const attempt = inTrace.find((s) => s.name === "cognigy.push");
      return seal && push && attempt ? ([seal, push, attempt] as const) : undefined;
    });
    expect(seal.parentSpanId).toBe(parent);
    expect(push.parentSpanId).toBe(parent);
    expect(attempt.parentSpanId).toBe(push.spanId);
    expect(attempt.kind).toBe(CLIENT);
    expect(attr(attempt, "http.response.status_code")).toEqual({ intValue: 200 });
    expect(simulator.contexts.get(SESSION)).toBeDefined();
  }, 40_000);

  it("never export a value, key material, a token or a session id (every byte the receiver got)", async () => {
    // Spans of the calls above have arrived (the tests waited for them); read every exported byte.
    const exported = Buffer.concat(receiver.raw).toString("utf8");
    expect(exported.length).toBeGreaterThan(0);
    const forbidden = [
      CANARY,
      "4111111111111111",
      SESSION,
      "user-trace",
      simulator.apiKey,
      ...Object.values(fs.tokens),
    ];
    // Every key version's material, as the keyring files hold it (base64) and in hex.
    for (const name of readdirSync(join(fs.dataDir, "keys"))) {
      const state = JSON.parse(readFileSync(join(fs.dataDir, "keys", name), "utf8")) as {
        versions: { material: string }[];
      };
      for (const v of state.versions) {
        forbidden.push(v.material, Buffer.from(v.material, "base64").toString("hex"));
        forbidden.push(Buffer.from(v.material, "base64").toString("base64url"));
      }
    }
    expect(forbidden.length).toBeGreaterThan(8);
    for (const secret of forbidden) expect(exported.includes(secret), "a secret was exported").toBe(false);
    // The service name set by OTEL_SERVICE_NAME is on the resource.
    expect(exported).toContain("fieldseal-under-test");
  });
});

describe("traces over OTLP/HTTP protobuf (the standard's default encoding)", () => {
  it("are exported as application/x-protobuf, with no value in them", async () => {
    const protoReceiver = await startReceiver();
    const other = await startFieldsealProcess({
      principals: [{ name: "bot", scopes: ["encrypt"] }],
      env: {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${protoReceiver.url}/v1/traces`,
        OTEL_BSP_SCHEDULE_DELAY: "100",
      },
    });
    try {
      const client = grpcJsClient(FieldsealService, `127.0.0.1:${other.port}`);
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${other.tokens.bot}`);
      metadata.set("traceparent", `00-${hex(16)}-${hex(8)}-01`);
      const desc = FieldsealService.method.encryptFields;
      await new Promise((resolve, reject) =>
        (client as unknown as Record<string, (...args: unknown[]) => unknown>).encryptFields?.call(
          client,
          create(desc.input, {
            scope: { id: { case: "sessionId", value: SESSION } },
            fields: { credit_card: { kind: { case: "stringValue", value: CANARY } } },
          }),
          metadata,
          (err: Error | null) => {
            client.close();
            if (err === null) resolve(undefined);
            else reject(err);
          },
        ),
      );
      const deadline = Date.now() + 20_000;
      const name = "fieldseal.v1.FieldsealService/EncryptFields";
      while (!Buffer.concat(protoReceiver.raw).includes(name) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(protoReceiver.contentTypes[0]).toBe("POST /v1/traces application/x-protobuf");
      const exported = Buffer.concat(protoReceiver.raw);
      expect(exported.includes(name)).toBe(true);
      expect(exported.includes(CANARY)).toBe(false);
      expect(exported.includes(SESSION)).toBe(false);
    } finally {
      await other.stop();
      await protoReceiver.close();
    }
  }, 60_000);
});

describe("a collector that accepts and never answers", () => {
  it("does not hold the server past its shutdown", async () => {
    // Half-open: connections are accepted and then nothing is ever read or written.
    const sockets = new Set<import("node:net").Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    const other = await startFieldsealProcess({
      principals: [{ name: "bot", scopes: ["encrypt"] }],
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        // The exporter would wait 30 s for an answer; shutdown must not.
        OTEL_EXPORTER_OTLP_TIMEOUT: "30000",
        OTEL_BSP_SCHEDULE_DELAY: "60000",
      },
    });
    try {
      const res = await fetch(`${other.url}/healthz`);
      expect(res.status).toBe(200);
      const started = Date.now();
      other.child.kill("SIGTERM");
      const code = await other.exited;
      expect(code).toBe(0);
      // Generous: the flush is cut after 2 s; the exporter alone would take 30 s.
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await other.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 60_000);
});
