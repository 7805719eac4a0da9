import * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DecryptFieldRequestSchema,
  DecryptFieldResponseSchema,
  EncryptFieldsRequestSchema,
  EncryptFieldsResponseSchema,
} from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

// Plain gRPC unary calls are served by a fast path; everything else (here: a request that declares gzip,
// even with an uncompressed frame) by connect-node. Both must answer every request identically.

const MAX = 16 * 1024;
let fs: TestFieldseal;
let session: http2.ClientHttp2Session;
beforeAll(async () => {
  fs = await startTestFieldseal({ settings: { maxRequestBytes: MAX } });
  session = http2.connect(fs.url);
});
afterAll(async () => {
  session.close();
  await fs.close();
});

interface Answer {
  status: number;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  reason: string | undefined;
  requestId: string | undefined;
  message: Uint8Array | undefined;
}

type Path = "fast" | "connect";

function frame(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

function call(
  path: Path,
  method: string,
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": method,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${fs.tokens.admin}`,
      ...(path === "connect" ? { "grpc-encoding": "gzip" } : {}),
      ...headers,
    });
    let head: http2.IncomingHttpHeaders = {};
    let tail: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      head = h;
    });
    stream.on("trailers", (t) => {
      tail = t;
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("end", () => {
      const all = { ...head, ...tail };
      const data = Buffer.concat(chunks);
      let message: Uint8Array | undefined;
      if (data.length >= 5) {
        const payload = data.subarray(5, 5 + data.readUInt32BE(1));
        message = (data[0] as number) & 1 ? gunzipSync(payload) : payload;
      }
      const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(",") : v);
      resolve({
        status: Number(head[":status"]),
        grpcStatus: one(all["grpc-status"]),
        grpcMessage: one(all["grpc-message"]),
        reason: one(all["fieldseal-reason"]),
        requestId: one(all["x-request-id"]),
        message,
      });
    });
    stream.end(body);
  });
}

const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const DECRYPT = "/fieldseal.v1.FieldsealService/DecryptField";
const HEALTH = "/grpc.health.v1.Health/Check";

function msg<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return frame(toBinary(schema, create(schema, init)));
}

const scope = { id: { case: "sessionId" as const, value: "s-fast" } };
const card = { kind: { case: "stringValue" as const, value: "4111111111111111" } };

/** Requests whose answers must be the same on both paths (apart from the sealed bytes themselves). */
const cases: Record<string, { method: string; body: () => Buffer; headers?: http2.OutgoingHttpHeaders }> = {
  "a health check": { method: HEALTH, body: () => msg(HealthCheckRequestSchema, {}) },
  "a call without credentials": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    headers: { authorization: "" },
  },
  "a call with an unknown token": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    headers: { authorization: "Bearer not-a-token" },
  },
  "an invalid field name": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { "bad name!": card } }),
  },
  "a tampered sealed value": {
    method: DECRYPT,
    body: () =>
      msg(DecryptFieldRequestSchema, {
        scope,
        field: "card",
        sealed: "fs1.default.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      }),
  },
  "an empty body": { method: ENCRYPT, body: () => Buffer.alloc(0) },
  "a truncated frame header": { method: ENCRYPT, body: () => Buffer.from([0, 0, 0]) },
  "a frame shorter than it announces": {
    method: ENCRYPT,
    body: () => frame(Buffer.alloc(10)).subarray(0, 8),
  },
  "two messages for a unary method": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), msg(HealthCheckRequestSchema, {})]),
  },
  "a message followed by stray bytes": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), Buffer.from([0, 0, 0])]),
  },
  "a second frame announcing more than the limit": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), frame(Buffer.alloc(MAX + 1))]),
  },
  "a second message that is not protobuf": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), frame(Buffer.from([0xff, 0xff]))]),
  },
  "a deadline too far away for a timer": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "99999999H" },
  },
  "bytes that are not protobuf": {
    method: ENCRYPT,
    body: () => frame(Buffer.from([0xff, 0xff, 0xff, 0xff])),
  },
  "a message over the size limit": { method: ENCRYPT, body: () => frame(Buffer.alloc(MAX + 1)) },
  "a call with a deadline": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "5S" },
  },
  "an unparseable deadline": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "soon" },
  },
  "a caller's request id": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "x-request-id": "req-fast-1" },
  },
};

describe("gRPC unary fast path", () => {
  it.each(Object.entries(cases))("answers %s exactly as connect-node does", async (_name, c) => {
    const fast = await call("fast", c.method, c.body(), c.headers);
    const slow = await call("connect", c.method, c.body(), c.headers);
    const comparable = (a: Answer) => ({
      ...a,
      requestId: a.requestId === undefined ? undefined : /^req-fast-1$|^[0-9a-f-]{36}$/.test(a.requestId),
      message:
        c.method === HEALTH ? a.message && Buffer.from(a.message).toString("hex") : a.message !== undefined,
    });
    expect(comparable(fast)).toEqual(comparable(slow));
    if (c.headers?.["x-request-id"] !== undefined) expect(fast.requestId).toBe("req-fast-1");
  });

  it("seals on one path what the other opens", async () => {
    for (const [sealOn, openOn] of [
      ["fast", "connect"],
      ["connect", "fast"],
    ] as const) {
      const sealed = await call(
        sealOn,
        ENCRYPT,
        msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
      );
      expect(sealed.grpcStatus).toBe("0");
      const value = fromBinary(EncryptFieldsResponseSchema, sealed.message as Uint8Array).sealed
        .card as string;
      const opened = await call(
        openOn,
        DECRYPT,
        msg(DecryptFieldRequestSchema, { scope, field: "card", sealed: value }),
      );
      expect(opened.grpcStatus).toBe("0");
      const plain = fromBinary(DecryptFieldResponseSchema, opened.message as Uint8Array).value;
      expect(plain?.kind).toEqual({ case: "stringValue", value: "4111111111111111" });
    }
  });

  it("refuses a compressed frame without a declared encoding", async () => {
    const answer = await call(
      "fast",
      HEALTH,
      frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)), 1),
    );
    expect(answer.grpcStatus).toBe("3");
    expect(answer.reason).toBe("invalid_argument");
    expect(decodeURIComponent(answer.grpcMessage ?? "")).toBe(
      "received compressed envelope, but do not know how to decompress",
    );
  });

  it("audits and authorizes fast-path calls like any other", async () => {
    const before = fs.audit.events.length;
    const answer = await call(
      "fast",
      DECRYPT,
      msg(DecryptFieldRequestSchema, { scope, field: "card", sealed: "fs1.x" }),
      {
        authorization: `Bearer ${fs.tokens.bot}`,
      },
    );
    expect(answer.grpcStatus).toBe("7");
    expect(fs.audit.events.slice(before)).toContainEqual(
      expect.objectContaining({ principal: "bot", outcome: "denied" }),
    );
  });

  it("still hands unknown methods to connect-node", async () => {
    const answer = await call(
      "fast",
      "/fieldseal.v1.FieldsealService/NoSuchMethod",
      msg(HealthCheckRequestSchema, {}),
    );
    expect(answer).toMatchObject({ status: 404, grpcStatus: undefined });
    const health = await call("fast", HEALTH, msg(HealthCheckRequestSchema, {}));
    expect(fromBinary(HealthCheckResponseSchema, health.message as Uint8Array).status).toBe(1);
  });
});
