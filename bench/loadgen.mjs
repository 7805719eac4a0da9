/**
 * The load generator, always run in its own process: keeps `concurrency` calls in flight against one
 * server for `durationMs` (after `warmupMs`), then prints one JSON line with calls/s and latency
 * percentiles. Usage: node bench/loadgen.mjs '<json options>'.
 *
 * kinds: encrypt (fields: N) | decrypt | index (ComputeIndex of a card number) | health over protocol grpc (@grpc/grpc-js) or connect (connect-node,
 * Connect protocol, HTTP/2, binary protobuf, connect-node's default); webhook (HTTP/1.1 keep-alive POST of Cognigy webhook payloads).
 */
import http from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { FieldsealService } from "../dist/gen/fieldseal/v1/fieldseal_pb.js";
import { Health } from "../dist/gen/grpc/health/v1/health_pb.js";
import { stringOfSize } from "./values.mjs";

const opts = JSON.parse(process.argv[2]);
const { url, token, kind, protocol, concurrency, durationMs, warmupMs = 300 } = opts;
const fieldCount = opts.fields ?? 1;
const valueBytes = opts.valueBytes ?? 16;

function grpcClient(service, address, options = {}) {
  const definition = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (msg) => Buffer.from(toBinary(method.input, msg)),
      requestDeserialize: (bytes) => fromBinary(method.input, bytes),
      responseSerialize: (msg) => Buffer.from(toBinary(method.output, msg)),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
  }
  const Client = grpc.makeGenericClientConstructor(definition, service.typeName);
  return new Client(address, grpc.credentials.createInsecure(), options);
}

/** `connections` grpc-js clients with a connection each (calls take them in turn), so a balancer sees several. */
function grpcCaller(service) {
  const count = opts.connections ?? 1;
  const clients = Array.from({ length: count }, () =>
    grpcClient(
      service,
      url.replace(/^http:\/\//, ""),
      count > 1 ? { "grpc.use_local_subchannel_pool": 1 } : {},
    ),
  );
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  let next = 0;
  const call = (name, input, request) =>
    new Promise((resolve, reject) => {
      const client = clients[next++ % count];
      client[name](create(input, request), metadata, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return {
    call,
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

function connectCaller(service) {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2" });
  const client = createClient(service, transport);
  const headers = { authorization: `Bearer ${token}` };
  return { call: (name, _input, request) => client[name](request, { headers }), close: () => {} };
}

const scope = { id: { case: "sessionId", value: "sess_8f3a2c1d" } };
const fields = {};
for (let i = 0; i < fieldCount; i++)
  fields[`field_${i}`] = { kind: { case: "stringValue", value: stringOfSize(valueBytes) } };

async function makeOp() {
  if (kind === "webhook") return webhookOp();
  const service = kind === "health" ? Health : FieldsealService;
  const caller = protocol === "grpc" ? grpcCaller(service) : connectCaller(service);
  const m = (n) => service.method[n];
  if (kind === "health") {
    const method = m("check");
    return { op: () => caller.call("check", method.input, { service: "" }), close: caller.close };
  }
  if (kind === "index") {
    const method = m("computeIndex");
    const request = { field: "card_lookup", value: "4111111111111111" };
    return { op: () => caller.call("computeIndex", method.input, request), close: caller.close };
  }
  const enc = m("encryptFields");
  if (kind === "encrypt") {
    return { op: () => caller.call("encryptFields", enc.input, { scope, fields }), close: caller.close };
  }
  const first = await caller.call("encryptFields", enc.input, {
    scope,
    fields: { credit_card: { kind: { case: "stringValue", value: "4111111111111111" } } },
  });
  const sealed = first.sealed.credit_card;
  const dec = m("decryptField");
  return {
    op: () => caller.call("decryptField", dec.input, { scope, field: "credit_card", sealed }),
    close: caller.close,
  };
}

/** POSTs the same webhook payloads to either design: JSON body, X-Sensitive-Metadata, bearer token. */
function webhookOp() {
  const target = new URL(opts.path ?? "/webhooks/cognigy", url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let n = 0;
  const op = () =>
    new Promise((resolve, reject) => {
      n++;
      const body = JSON.stringify({
        sessionId: `sess_${(n % 997).toString(16).padStart(8, "0")}`,
        // Every request distinct: Fieldseal answers a repeated identical webhook from memory without pushing.
        variables: { credit_card: "4111111111111111", ssn: "999-99-0000", language: "en", turn: String(n) },
        user: { id: "user-1" },
      });
      const req = http.request(
        target,
        {
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: `Bearer ${token}`,
            "x-sensitive-metadata": "field:credit_card,field:ssn",
          },
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode === 200) resolve();
            else
              reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}`));
          });
        },
      );
      // A webhook unanswered after 10 s counts as an error instead of holding the run open.
      req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
      req.on("error", reject);
      req.end(body);
    });
  return { op, close: () => agent.destroy() };
}

const { op, close } = await makeOp();
const latencies = [];
let errors = 0;
let firstError;
let measuring = false;
let stop = false;
let calls = 0;
/** Every call answered, warm-up included: the denominator of the server's CPU per call. */
let totalCalls = 0;

async function worker() {
  while (!stop) {
    const t0 = performance.now();
    try {
      await op();
      totalCalls++;
      if (measuring) {
        latencies.push(performance.now() - t0);
        calls++;
      }
    } catch (err) {
      errors++;
      firstError ??= String(err?.message ?? err).slice(0, 300);
      if (errors > 1000) stop = true;
    }
  }
}

const workers = Array.from({ length: concurrency }, worker);
await new Promise((r) => setTimeout(r, warmupMs));
measuring = true;
const start = performance.now();
await new Promise((r) => setTimeout(r, durationMs));
measuring = false;
const seconds = (performance.now() - start) / 1000;
stop = true;
await Promise.allSettled(workers);
close();
latencies.sort((a, b) => a - b);
const pct = (p) =>
  latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? null;
process.stdout.write(
  `${JSON.stringify({ calls, totalCalls, seconds, callsPerSec: calls / seconds, p50Ms: pct(50), p99Ms: pct(99), errors, firstError })}\n`,
);
process.exit(0);
