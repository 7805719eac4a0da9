import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ComputeIndexRequestSchema,
  DecryptFieldRequestSchema,
  DecryptFieldResponseSchema,
  DescribeKeyRequestSchema,
  EncryptFieldsRequestSchema,
  EncryptFieldsResponseSchema,
  FieldsealService,
  ForgetScopeRequestSchema,
  ListKeyringsRequestSchema,
} from "../../gen/fieldseal/v1/fieldseal_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { parseConfig, SETTINGS } from "../../src/config.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { grpcUnaryFastPath, type SharedRpcOptions } from "../../src/server/grpc-unary.js";
import { UnaryInvoker } from "../../src/service/unary-invoker.js";
import { createTestPki, type TestPki } from "../support/certs.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type Answer, collectAnswer, frame, type Head, rawCall } from "../support/grpc-raw.js";
import { type SplittingProxy, startSplittingProxy } from "../support/h2-splitting-proxy.js";

// The same raw HTTP/2 requests go to two real Fieldseal servers over one key store: one with the gRPC fast
// path (the default) and one with FIELDSEAL_GRPC_FAST_PATH=off, where connect-node serves every call. Their
// answers must be the same, compared as COMPLETE header and trailer sets. Excluded, and why:
//   - `date`: Node's HTTP/2 server stamps the wall clock on every response; it is the time, not the path.
//   - the value (never the presence) of a generated `x-request-id`: a fresh random UUID per call on both
//     paths; it is replaced by "<uuid>" when it is one.
//   - the bytes of a sealed value: the nonce is random; sealed messages are compared by length, and opened
//     on the other server.
// Everything else (`:status`, `content-type`, `grpc-status`, `grpc-message`, `fieldseal-reason`, every
// header a handler or interceptor set, multiplicity and header-versus-trailer placement) must match.

const MAX = 16 * 1024;
const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const DECRYPT = "/fieldseal.v1.FieldsealService/DecryptField";
const DESCRIBE = "/fieldseal.v1.FieldsealService/DescribeKey";
const HEALTH = "/grpc.health.v1.Health/Check";
const COMPUTE_INDEX = "/fieldseal.v1.FieldsealService/ComputeIndex";
const FORGET_SCOPE = "/fieldseal.v1.FieldsealService/ForgetScope";

const tokens = { admin: generateToken(), bot: generateToken() };
const principals = [
  { name: "admin", scopes: ["admin"], tokenSha256: hashToken(tokens.admin) },
  { name: "bot", scopes: ["encrypt", "push"], tokenSha256: hashToken(tokens.bot) },
];

let keysDir: string;
let fast: TestFieldseal;
let slow: TestFieldseal;
let fastSession: http2.ClientHttp2Session;
let slowSession: http2.ClientHttp2Session;

beforeAll(async () => {
  keysDir = mkdtempSync(join(tmpdir(), "fieldseal-parity-keys-"));
  const settings = { maxRequestBytes: MAX, principals, fields: { pan: { format: "card" } } };
  fast = await startTestFieldseal({ settings, store: new LocalFileKeyStore(keysDir) });
  slow = await startTestFieldseal({
    settings,
    env: { FIELDSEAL_GRPC_FAST_PATH: "off" },
    store: new LocalFileKeyStore(keysDir),
  });
  fastSession = http2.connect(fast.url);
  slowSession = http2.connect(slow.url);
});
afterAll(async () => {
  fastSession?.close();
  slowSession?.close();
  await fast?.close();
  await slow?.close();
  rmSync(keysDir, { recursive: true, force: true });
});

type Path = "fast" | "off";

function call(
  path: Path,
  method: string,
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<Answer> {
  return rawCall(path === "fast" ? fastSession : slowSession, method, body, {
    authorization: `Bearer ${tokens.admin}`,
    ...headers,
  });
}

function msg<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return frame(toBinary(schema, create(schema, init)));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The answer minus what is excluded above (see the file's first comment). */
function comparable(a: Answer, sealed: boolean) {
  const strip = (h: Head) => {
    const out: Head = {};
    for (const [name, value] of Object.entries(h)) {
      if (name === "date") continue;
      out[name] = name === "x-request-id" && typeof value === "string" && UUID.test(value) ? "<uuid>" : value;
    }
    return out;
  };
  return {
    header: strip(a.header),
    trailer: strip(a.trailer),
    body: sealed ? a.body.length : a.body.toString("hex"),
  };
}

const scope = { id: { case: "sessionId" as const, value: "s-fast" } };
const card = { kind: { case: "stringValue" as const, value: "4111111111111111" } };

interface Case {
  method: string;
  body: () => Buffer;
  headers?: http2.OutgoingHttpHeaders;
  /** The answer holds a freshly sealed value (random nonce). */
  sealed?: boolean;
  /** The gRPC status both paths must give: proves the case triggers what its name says. */
  status: string | undefined;
}

const cases: Record<string, Case> = {
  "a health check": { method: HEALTH, body: () => msg(HealthCheckRequestSchema, {}), status: "0" },
  "a successful EncryptFields": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    sealed: true,
    status: "0",
  },
  "a successful DescribeKey": {
    method: DESCRIBE,
    body: () => msg(DescribeKeyRequestSchema, {}),
    status: "0",
  },
  "a call without credentials (UNAUTHENTICATED)": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    headers: { authorization: "" },
    status: "16",
  },
  "a call with an unknown token (UNAUTHENTICATED)": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    headers: { authorization: "Bearer not-a-token" },
    status: "16",
  },
  "a call the principal may not make (PERMISSION_DENIED)": {
    method: DECRYPT,
    body: () => msg(DecryptFieldRequestSchema, { scope, field: "card", sealed: "fs1.x" }),
    headers: { authorization: `Bearer ${tokens.bot}` },
    status: "7",
  },
  "a field name with a NUL byte (INVALID_ARGUMENT)": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { "card\u0000": card } }),
    status: "3",
  },
  "a tampered sealed value (INVALID_ARGUMENT)": {
    method: DECRYPT,
    body: () =>
      msg(DecryptFieldRequestSchema, {
        scope,
        field: "card",
        sealed: "fs1.default.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      }),
    status: "3",
  },
  "an unknown keyring (NOT_FOUND)": {
    method: DESCRIBE,
    body: () => msg(DescribeKeyRequestSchema, { keyring: "no-such-keyring" }),
    status: "5",
  },
  "an empty body": { method: ENCRYPT, body: () => Buffer.alloc(0), status: "3" },
  "a truncated frame header": { method: ENCRYPT, body: () => Buffer.from([0, 0, 0]), status: "3" },
  "a frame shorter than it announces": {
    method: ENCRYPT,
    body: () => frame(Buffer.alloc(10)).subarray(0, 8),
    status: "3",
  },
  "a bare frame header announcing a payload that never comes": {
    method: HEALTH,
    body: () => Buffer.from([0, 0, 0, 0, 1]),
    status: "3",
  },
  "a message followed by a bare frame header": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), Buffer.from([0, 0, 0, 0, 9])]),
    status: "3",
  },
  "two messages for a unary method": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), msg(HealthCheckRequestSchema, {})]),
    status: "3",
  },
  "a message followed by stray bytes": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), Buffer.from([0, 0, 0])]),
    status: "3",
  },
  "a second frame announcing more than the limit": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), frame(Buffer.alloc(MAX + 1))]),
    status: "8",
  },
  "a third frame header announcing more than the limit": {
    method: HEALTH,
    body: () =>
      Buffer.concat([
        msg(HealthCheckRequestSchema, {}),
        msg(HealthCheckRequestSchema, {}),
        frame(Buffer.alloc(0)).fill(0xff, 1, 5),
      ]),
    status: "3",
  },
  "a second message that is not protobuf": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), frame(Buffer.from([0xff, 0xff]))]),
    status: "3",
  },
  "bytes that are not protobuf": {
    method: ENCRYPT,
    body: () => frame(Buffer.from([0xff, 0xff, 0xff, 0xff])),
    status: "3",
  },
  "a message over the size limit (RESOURCE_EXHAUSTED)": {
    method: ENCRYPT,
    body: () => frame(Buffer.alloc(MAX + 1)),
    status: "8",
  },
  "a compressed frame without a declared encoding": {
    method: HEALTH,
    body: () => frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)), 1),
    status: "3",
  },
  "a call with a deadline": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "5S" },
    status: "0",
  },
  // Fieldseal's handlers finish what they started (they hold no I/O a deadline could usefully cut short),
  // so a deadline that has already passed still answers what the handler returned, on both paths; the
  // DEADLINE_EXCEEDED a handler raises from its signal is compared below, in "the pipelines".
  "a deadline that expires at once": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
    headers: { "grpc-timeout": "1n" },
    sealed: true,
    status: "0",
  },
  "a deadline too far away for a timer": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "99999999H" },
    status: "0",
  },
  "an unparseable deadline": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-timeout": "soon" },
    status: "3",
  },
  "a client that accepts compressed answers (as grpc-go and grpc-js do)": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "grpc-accept-encoding": "identity,deflate,gzip" },
    status: "0",
  },
  "a client that accepts compressed answers, on an error": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: {} }),
    headers: { "grpc-accept-encoding": "identity,deflate,gzip" },
    status: "3",
  },
  "a caller's request id": {
    method: HEALTH,
    body: () => msg(HealthCheckRequestSchema, {}),
    headers: { "x-request-id": "req-fast-1" },
    status: "0",
  },
  "a caller's request id on an error": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: {} }),
    headers: { "x-request-id": "req-fast-2" },
    status: "3",
  },
  "a blind index (ComputeIndex)": {
    method: COMPUTE_INDEX,
    body: () =>
      msg(ComputeIndexRequestSchema, { field: "pan", value: "4111 1111 1111 1111", allVersions: true }),
    status: "0",
  },
  "a blind index of a card number failing Luhn": {
    method: COMPUTE_INDEX,
    body: () => msg(ComputeIndexRequestSchema, { field: "pan", value: "4111111111111112" }),
    status: "3",
  },
  "a blind index without a field": {
    method: COMPUTE_INDEX,
    body: () => msg(ComputeIndexRequestSchema, { value: "x" }),
    status: "3",
  },
  "index_fields naming no field of the call": {
    method: ENCRYPT,
    body: () => msg(EncryptFieldsRequestSchema, { scope, fields: { card }, indexFields: ["nope"] }),
    status: "3",
  },
  "a formatted field failing its format, indexed": {
    method: ENCRYPT,
    body: () =>
      msg(EncryptFieldsRequestSchema, {
        scope,
        fields: { pan: { kind: { case: "stringValue", value: "4111111111111112" } } },
        indexFields: ["pan"],
      }),
    status: "3",
  },
  "ForgetScope on a keyring that is not erasable": {
    method: FORGET_SCOPE,
    body: () => msg(ForgetScopeRequestSchema, { scope: { id: { case: "userId", value: "u" } } }),
    status: "9",
  },
  "ForgetScope without a scope": {
    method: FORGET_SCOPE,
    body: () => msg(ForgetScopeRequestSchema, {}),
    status: "3",
  },
  "an unknown method": {
    method: "/fieldseal.v1.FieldsealService/NoSuchMethod",
    body: () => msg(HealthCheckRequestSchema, {}),
    status: undefined,
  },
};

describe("gRPC unary fast path against connect-node (FIELDSEAL_GRPC_FAST_PATH=off)", () => {
  it.each(Object.entries(cases))("answers %s with the same headers and trailers", async (_name, c) => {
    const before = await fastPathCalls(fast);
    const a = await call("fast", c.method, c.body(), c.headers);
    const b = await call("off", c.method, c.body(), c.headers);
    expect(comparable(a, c.sealed === true)).toEqual(comparable(b, c.sealed === true));
    expect(a.header["grpc-status"] ?? a.trailer["grpc-status"]).toBe(c.status);
    // The request really took the fast path on one server (the other has none): else this compares
    // connect-node with itself. Unknown methods and unparseable deadlines are left to connect-node.
    const tookFastPath =
      c.method !== cases["an unknown method"]?.method && c.headers?.["grpc-timeout"] !== "soon";
    expect(await fastPathCalls(fast)).toBe(before + (tookFastPath ? 1 : 0));
  });

  it("keeps the caller's request id on both paths", async () => {
    for (const path of ["fast", "off"] as const) {
      const ok = await call(path, HEALTH, msg(HealthCheckRequestSchema, {}), { "x-request-id": "req-1" });
      expect(ok.header["x-request-id"]).toBe("req-1");
      const failed = await call(path, ENCRYPT, msg(EncryptFieldsRequestSchema, { scope, fields: {} }), {
        "x-request-id": "req-2",
      });
      expect(failed.header["grpc-status"] ?? failed.trailer["grpc-status"]).toBe("3");
      expect(failed.trailer["x-request-id"] ?? failed.header["x-request-id"]).toBe("req-2");
    }
  });

  it("seals on one path what the other opens", async () => {
    for (const [sealOn, openOn] of [
      ["fast", "off"],
      ["off", "fast"],
    ] as const) {
      const sealed = await call(
        sealOn,
        ENCRYPT,
        msg(EncryptFieldsRequestSchema, { scope, fields: { card } }),
      );
      expect(sealed.trailer["grpc-status"]).toBe("0");
      const value = fromBinary(EncryptFieldsResponseSchema, sealed.message as Uint8Array).sealed
        .card as string;
      const opened = await call(
        openOn,
        DECRYPT,
        msg(DecryptFieldRequestSchema, { scope, field: "card", sealed: value }),
      );
      expect(opened.trailer["grpc-status"]).toBe("0");
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
    expect(answer.trailer["grpc-status"] ?? answer.header["grpc-status"]).toBe("3");
    expect(answer.trailer["fieldseal-reason"] ?? answer.header["fieldseal-reason"]).toBe("invalid_argument");
    expect(decodeURIComponent(String(answer.trailer["grpc-message"] ?? answer.header["grpc-message"]))).toBe(
      "received compressed envelope, but do not know how to decompress",
    );
  });

  it("audits and authorizes fast-path calls like any other", async () => {
    const before = fast.audit.events.length;
    const answer = await call(
      "fast",
      DECRYPT,
      msg(DecryptFieldRequestSchema, { scope, field: "card", sealed: "fs1.x" }),
      { authorization: `Bearer ${tokens.bot}` },
    );
    expect(answer.trailer["grpc-status"] ?? answer.header["grpc-status"]).toBe("7");
    expect(fast.audit.events.slice(before)).toContainEqual(
      expect.objectContaining({ principal: "bot", outcome: "denied" }),
    );
  });

  it("serves every call through connect-node when switched off", async () => {
    expect(await fastPathCalls(slow)).toBe(0);
    const health = await call("off", HEALTH, msg(HealthCheckRequestSchema, {}));
    expect(fromBinary(HealthCheckResponseSchema, health.message as Uint8Array).status).toBe(1);
    expect(await fastPathCalls(slow)).toBe(0);
  });
});

describe("compression on the real server", () => {
  it("never compresses an answer, even a large one to a client that accepts gzip, on either path", async () => {
    const fields = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field_${i}`, card]));
    const body = msg(EncryptFieldsRequestSchema, { scope, fields });
    const before = await fastPathCalls(fast);
    const a = await call("fast", ENCRYPT, body, { "grpc-accept-encoding": "identity,deflate,gzip" });
    const b = await call("off", ENCRYPT, body, { "grpc-accept-encoding": "identity,deflate,gzip" });
    expect(await fastPathCalls(fast)).toBe(before + 1);
    expect(comparable(a, true)).toEqual(comparable(b, true));
    expect(a.header["grpc-encoding"]).toBe("gzip");
    expect(a.body.length).toBeGreaterThan(1024);
    expect([a.body[0], b.body[0]]).toEqual([0, 0]);
  });

  it("still reads a gzip-compressed request (connect-node serves it on both servers)", async () => {
    const payload = gzipSync(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)));
    const before = await fastPathCalls(fast);
    const a = await call("fast", HEALTH, frame(payload, 1), { "grpc-encoding": "gzip" });
    const b = await call("off", HEALTH, frame(payload, 1), { "grpc-encoding": "gzip" });
    expect(await fastPathCalls(fast)).toBe(before);
    expect(comparable(a, false)).toEqual(comparable(b, false));
    expect(a.trailer["grpc-status"]).toBe("0");
  });
});

describe("arbitrary request bodies", () => {
  it("get the same complete answer from both paths", async () => {
    const frameLike = fc
      .tuple(
        fc.constantFrom(0, 1, 2, 0x80),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: -3, max: 3 }),
      )
      .map(([flags, payload, skew]) => {
        const f = frame(payload, flags);
        f.writeUInt32BE(Math.max(0, payload.length + skew), 1);
        return f;
      });
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
      frameLike,
      fc.array(frameLike, { minLength: 1, maxLength: 3 }).map((fs) => Buffer.concat(fs)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(HEALTH, DECRYPT, DESCRIBE, COMPUTE_INDEX, FORGET_SCOPE),
        body,
        async (method, bytes) => {
          const a = await call("fast", method, bytes);
          const b = await call("off", method, bytes);
          expect(comparable(a, false)).toEqual(comparable(b, false));
        },
      ),
      { numRuns: 300 },
    );
    const health = await call("fast", HEALTH, msg(HealthCheckRequestSchema, {}));
    expect(health.trailer["grpc-status"]).toBe("0");
  });
});

describe("arbitrary request heads, chunking and client trailers", () => {
  // Each server also behind a proxy that cuts the client's DATA frames into 1-byte frames.
  let proxies: SplittingProxy[] = [];
  let split: Record<Path, http2.ClientHttp2Session>;
  beforeAll(async () => {
    proxies = [await startSplittingProxy(fast.port), await startSplittingProxy(slow.port)];
    split = { fast: http2.connect(proxies[0]?.url ?? ""), off: http2.connect(proxies[1]?.url ?? "") };
  });
  afterAll(async () => {
    split?.fast.close();
    split?.off.close();
    for (const p of proxies) await p.close();
  });

  /** Like rawCall, with the body split into `pieces` writes and optional trailers sent by the client. */
  function callWith(
    session: http2.ClientHttp2Session,
    path: string,
    body: Buffer,
    headers: http2.OutgoingHttpHeaders,
    pieces: number,
    trailers: http2.OutgoingHttpHeaders | undefined,
  ): Promise<Answer> {
    const stream = session.request(
      { ":method": "POST", ":path": path, ...headers },
      { waitForTrailers: trailers !== undefined },
    );
    if (trailers !== undefined) stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    const answer = collectAnswer(stream).then((a) => ({ ...a, message: undefined }));
    const size = Math.max(1, Math.ceil(body.length / pieces));
    for (let at = 0; at < body.length; at += size) stream.write(body.subarray(at, at + size));
    stream.end();
    return answer;
  }

  it("get the same complete answer from both paths", async () => {
    const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    const head = fc.record({
      "content-type": fc.constantFrom(
        "application/grpc",
        "application/grpc+proto",
        "application/GRPC",
        "application/grpc;charset=utf-8",
      ),
      te: optional(fc.constant("trailers")),
      "grpc-timeout": optional(
        fc.constantFrom("1S", "99999999H", "00000005S", "1s", "-1S", "1.5S", "123456789n", "5 S", "2M"),
      ),
      "grpc-encoding": optional(fc.constantFrom("identity", "IDENTITY", "gzip", "", "zstd")),
      "grpc-accept-encoding": optional(fc.constantFrom("", "identity", "gzip", "zstd,br", " gzip")),
      "user-agent": optional(fc.constantFrom("grpc-go/1.60.0", "")),
      "x-meta-bin": optional(fc.constantFrom("AAEC", "not base64!")),
      authorization: fc.constantFrom(`Bearer ${tokens.admin}`, "Bearer nope", "bearer", ""),
    });
    const body = fc.oneof(
      fc.constant(msg(HealthCheckRequestSchema, {})),
      fc.constant(msg(EncryptFieldsRequestSchema, { scope, fields: {} })),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          HEALTH,
          ENCRYPT,
          DESCRIBE,
          `${HEALTH}?x=1`,
          `${HEALTH}/`,
          "/grpc.health.v1.Health%2FCheck",
          `/${HEALTH}`,
          HEALTH.toLowerCase(),
        ),
        head,
        body,
        fc.integer({ min: 1, max: 12 }),
        optional(fc.constantFrom({ "x-client-trailer": "1" }, { "grpc-status": "0" })),
        fc.boolean(),
        async (method, h, bytes, pieces, trailers, oneByteFrames) => {
          const headers = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined));
          const [fastVia, slowVia] = oneByteFrames ? [split.fast, split.off] : [fastSession, slowSession];
          const a = await callWith(fastVia, method, bytes, headers, pieces, trailers);
          const b = await callWith(slowVia, method, bytes, headers, pieces, trailers);
          expect(comparable(a, false)).toEqual(comparable(b, false));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("concurrent calls on one connection", () => {
  it("each get their own headers and trailers, never another call's", async () => {
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        call(
          "fast",
          ENCRYPT,
          msg(EncryptFieldsRequestSchema, { scope, fields: i % 2 === 0 ? { card } : {} }),
          { "x-request-id": `req-${i}` },
        ),
      ),
    );
    answers.forEach((a, i) => {
      const all = { ...a.header, ...a.trailer };
      expect(all["x-request-id"]).toBe(`req-${i}`);
      expect(all["grpc-status"]).toBe(i % 2 === 0 ? "0" : "3");
    });
  });
});

describe("a client that resets its stream mid-call", () => {
  it("leaves nothing half-done and the server healthy, on both paths", async () => {
    for (const [path, server] of [
      ["fast", fast],
      ["off", slow],
    ] as const) {
      const session = path === "fast" ? fastSession : slowSession;
      const auditBefore = server.audit.events.length;
      // Reset after part of the body: the handler must never run (no audit event, no answer).
      const body = msg(EncryptFieldsRequestSchema, { scope, fields: { card } });
      for (let i = 0; i < 20; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": ENCRYPT,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${tokens.admin}`,
        });
        stream.on("error", () => {});
        stream.write(body.subarray(0, 1 + (i % (body.length - 1))));
        await new Promise((r) => setTimeout(r, 2));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
      await waitFor(() => server.server.inFlight() === 0);
      expect(server.audit.events.length).toBe(auditBefore);
      // (A complete call is audited, so the count above would have moved had a handler run.)
      const whole = await call(path, ENCRYPT, body);
      expect(whole.trailer["grpc-status"]).toBe("0");
      expect(server.audit.events.slice(auditBefore)).toContainEqual(
        expect.objectContaining({ action: "encrypt", outcome: "ok" }),
      );
      // Reset right after a complete request, while the call runs: each either completes or is dropped;
      // the server neither crashes nor keeps the stream.
      for (let i = 0; i < 20; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": ENCRYPT,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${tokens.admin}`,
        });
        stream.on("error", () => {});
        stream.end(body);
        if (i % 2 === 0) await new Promise((r) => setImmediate(r));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
      await waitFor(() => server.server.inFlight() === 0);
      const after = await call(path, HEALTH, msg(HealthCheckRequestSchema, {}));
      expect(after.trailer["grpc-status"]).toBe("0");
      expect(server.logs.filter((l) => l.includes("rpc failed unexpectedly"))).toEqual([]);
    }
  });
});

describe("FIELDSEAL_GRPC_FAST_PATH", () => {
  const where = { dataDir: "/tmp/x", configFile: "/tmp/x/config.json", cwd: "/tmp" };
  it("is on by default, and off turns it off from the environment or the file", () => {
    expect(parseConfig({}, {}, where).grpcFastPath).toBe(true);
    expect(parseConfig({}, { FIELDSEAL_GRPC_FAST_PATH: "off" }, where).grpcFastPath).toBe(false);
    expect(parseConfig({ grpcFastPath: "off" }, {}, where).grpcFastPath).toBe(false);
    expect(parseConfig({ grpcFastPath: "off" }, { FIELDSEAL_GRPC_FAST_PATH: "on" }, where).grpcFastPath).toBe(
      true,
    );
  });
  it("refuses anything but on or off, naming the setting", () => {
    expect(() => parseConfig({}, { FIELDSEAL_GRPC_FAST_PATH: "no" }, where)).toThrow(
      /FIELDSEAL_GRPC_FAST_PATH .*must be one of on, off/,
    );
  });
  it("is listed for --help", () => {
    expect(SETTINGS).toContainEqual(
      expect.objectContaining({ env: "FIELDSEAL_GRPC_FAST_PATH", file: "grpcFastPath", default: "on" }),
    );
  });
});

/** The fast-path counter from the server's own /metrics. */
async function fastPathCalls(server: TestFieldseal): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = /^fieldseal_grpc_fast_path_calls_total (\d+)$/m.exec(text);
  if (line === null) throw new Error("no fieldseal_grpc_fast_path_calls_total in /metrics");
  return Number(line[1]);
}

async function waitFor(ok: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  while (!ok()) {
    if (Date.now() > until) throw new Error("condition not met within 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Fieldseal's own handlers set no response headers and finish what they start, so the cases that need a
// handler which does (headers or trailers set before an error, an error from an interceptor after the
// handler succeeded, a handler that waits for its deadline or for the client) run on a test service. The
// pipelines are wired as src/server/app.ts wires them, from one SharedRpcOptions object: connect-node
// alone, or the fast path in front of it, each on a real HTTP/2 server on 127.0.0.1.

interface Seen {
  urls: string[];
  abortReasons: unknown[];
  started: number;
}

function testService(seen: Seen) {
  return {
    async check(req: { service: string }, ctx: HandlerContext) {
      seen.urls.push(ctx.url);
      switch (req.service) {
        case "headers-then-fail":
          ctx.responseHeader.set("x-handler", "h1");
          ctx.responseHeader.append("x-multi", "a");
          ctx.responseHeader.append("x-multi", "b");
          ctx.responseTrailer.set("x-handler-trailer", "t1");
          throw new ConnectError("refused after headers were set", Code.PermissionDenied, {
            "fieldseal-reason": "permission_denied",
            // Protocol headers in an error's metadata must not reach the answer on either path.
            "grpc-status": "0",
            "content-type": "text/html",
          });
        case "headers-then-ok":
          ctx.responseHeader.set("x-handler", "h1");
          ctx.responseTrailer.set("x-handler-trailer", "t1");
          return { status: Status.SERVING };
        case "details":
          throw new ConnectError("with details", Code.InvalidArgument, undefined, [
            { desc: StringValueSchema, value: { value: "which field" } },
          ]);
        case "unexpected":
          throw new Error("a bug whose message must not reach the client");
        case "wait-for-abort": {
          seen.started++;
          const reason = await new Promise<unknown>((resolve) => {
            if (ctx.signal.aborted) resolve(ctx.signal.reason);
            ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true });
          });
          seen.abortReasons.push(reason);
          throw reason;
        }
        default:
          return { status: Status.SERVING };
      }
    },
  };
}

const testInterceptor: Interceptor = (next) => async (req) => {
  const service = (req.message as { service?: string }).service;
  if (service === "interceptor-fails-before")
    throw new ConnectError("refused before the handler", Code.Unauthenticated, { "x-why": "no" });
  const res = await next(req);
  res.header.set("x-interceptor", "i1");
  if (service === "interceptor-fails-after") {
    res.trailer.set("x-interceptor-trailer", "it1");
    throw new ConnectError("refused after the handler", Code.FailedPrecondition, { "x-why": "late" });
  }
  return res;
};

interface Pipelines {
  readonly session: http2.ClientHttp2Session;
  readonly seen: Seen;
  /** How many requests the fast path took. */
  taken(): number;
  close(): Promise<void>;
}

async function startPipelines(
  withFastPath: boolean,
  tls?: { key: Buffer; cert: Buffer },
  extra: Pick<SharedRpcOptions, "maxTimeoutMs" | "acceptCompression" | "compressMinBytes"> = {},
): Promise<Pipelines> {
  const seen: Seen = { urls: [], abortReasons: [], started: 0 };
  const services = [
    { service: Health, impl: testService(seen) },
    // An answer larger than connect's default compressMinBytes (1024), always the same.
    {
      service: FieldsealService,
      impl: { listKeyrings: () => ({ keyrings: Array.from({ length: 200 }, (_, i) => `keyring-${i}`) }) },
    },
  ];
  const options: SharedRpcOptions = {
    readMaxBytes: MAX,
    interceptors: [testInterceptor],
    contextValues: () => createContextValues(),
    ...extra,
  };
  const rpc = connectNodeAdapter({
    ...options,
    routes: (router) => {
      for (const { service, impl } of services) router.service(service, impl);
    },
  });
  const fastPath = withFastPath ? grpcUnaryFastPath(new UnaryInvoker(services, options), options) : undefined;
  let taken = 0;
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (fastPath?.(req, res) === true) {
      taken++;
      return;
    }
    rpc(req, res);
  };
  const server = tls === undefined ? http2.createServer(handler) : http2.createSecureServer(tls, handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const session =
    tls === undefined
      ? http2.connect(`http://127.0.0.1:${port}`)
      : http2.connect(`https://127.0.0.1:${port}`, { ca: pki?.ca.cert });
  return {
    session,
    seen,
    taken: () => taken,
    async close() {
      session.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function check(service: string): Buffer {
  return msg(HealthCheckRequestSchema, { service });
}

let pki: TestPki | undefined;
let withFast: Pipelines;
let withoutFast: Pipelines;

describe("the pipelines, fast path on and off, on a test service", () => {
  beforeAll(async () => {
    withFast = await startPipelines(true);
    withoutFast = await startPipelines(false);
  });
  afterAll(async () => {
    await withFast?.close();
    await withoutFast?.close();
  });

  const both = async (service: string, headers: http2.OutgoingHttpHeaders = {}) => {
    const a = await rawCall(withFast.session, HEALTH, check(service), headers);
    const b = await rawCall(withoutFast.session, HEALTH, check(service), headers);
    expect(comparable(a, false)).toEqual(comparable(b, false));
    return a;
  };

  it("keeps the headers and trailers a handler set before its error", async () => {
    const a = await both("headers-then-fail");
    expect(a.header).toMatchObject({ "x-handler": "h1", "x-multi": "a, b" });
    expect(a.trailer).toMatchObject({
      "grpc-status": "7",
      "x-handler-trailer": "t1",
      "fieldseal-reason": "permission_denied",
    });
    expect(a.header["content-type"]).toBe("application/grpc+proto");
  });

  it("keeps what an interceptor set after the handler, when it then fails the call", async () => {
    const a = await both("interceptor-fails-after");
    expect(a.header).toMatchObject({ "x-interceptor": "i1" });
    expect(a.trailer).toMatchObject({ "grpc-status": "9", "x-interceptor-trailer": "it1", "x-why": "late" });
  });

  it("answers an interceptor's refusal before the handler the same way", async () => {
    const a = await both("interceptor-fails-before");
    expect(a.trailer).toMatchObject({ "grpc-status": "16", "x-why": "no" });
  });

  it("sends a handler's headers and trailers on success the same way", async () => {
    const a = await both("headers-then-ok");
    expect(a.header).toMatchObject({ "x-handler": "h1", "x-interceptor": "i1" });
    expect(a.trailer).toMatchObject({ "grpc-status": "0", "x-handler-trailer": "t1" });
  });

  it("sends error details the same way", async () => {
    const a = await both("details");
    expect(a.trailer["grpc-status-details-bin"]).toBeTypeOf("string");
  });

  it("hides an unexpected error's message the same way", async () => {
    const a = await both("unexpected");
    expect(a.trailer).toMatchObject({ "grpc-status": "13", "grpc-message": "internal%20error" });
  });

  it("answers DEADLINE_EXCEEDED the same way when the handler gives up at its deadline", async () => {
    const before = [withFast.seen.abortReasons.length, withoutFast.seen.abortReasons.length];
    const a = await both("wait-for-abort", { "grpc-timeout": "50m" });
    expect(a.trailer).toMatchObject({ "grpc-status": "4", "grpc-message": "the%20operation%20timed%20out" });
    for (const [i, p] of [withFast, withoutFast].entries()) {
      expect(p.seen.abortReasons.slice(before[i])).toEqual([
        expect.objectContaining({ code: Code.DeadlineExceeded }),
      ]);
    }
  });

  it("tells the handler of a client's RST_STREAM the same way, and serves the next call", async () => {
    const reasons: unknown[] = [];
    for (const p of [withFast, withoutFast]) {
      const started = p.seen.started;
      const stream = p.session.request({
        ":method": "POST",
        ":path": HEALTH,
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.end(check("wait-for-abort"));
      await waitFor(() => p.seen.started === started + 1);
      const count = p.seen.abortReasons.length;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => p.seen.abortReasons.length === count + 1);
      const reason = p.seen.abortReasons[count] as ConnectError;
      reasons.push({ code: reason.code, message: reason.rawMessage });
      const next = await rawCall(p.session, HEALTH, check(""));
      expect(next.trailer["grpc-status"]).toBe("0");
    }
    expect(reasons[0]).toEqual({
      code: Code.Canceled,
      message: "http/2 stream closed with error code CANCEL (0x8)",
    });
    expect(reasons[0]).toEqual(reasons[1]);
  });

  it("gives the handler the same URL", async () => {
    await both("", { ":authority": "Fieldseal.Test:80" });
    expect(withFast.seen.urls.at(-1)).toBe("http://fieldseal.test/grpc.health.v1.Health/Check");
    expect(withFast.seen.urls.at(-1)).toBe(withoutFast.seen.urls.at(-1));
  });
});

describe("the pipelines with a maximum timeout", () => {
  it("refuse a longer grpc-timeout the same way, and serve a shorter one", async () => {
    const answers: Answer[][] = [];
    for (const withFastPath of [true, false]) {
      const p = await startPipelines(withFastPath, undefined, { maxTimeoutMs: 1000 });
      try {
        answers.push([
          await rawCall(p.session, HEALTH, check(""), { "grpc-timeout": "5S" }),
          await rawCall(p.session, HEALTH, check(""), { "grpc-timeout": "900m" }),
        ]);
      } finally {
        await p.close();
      }
    }
    const [fastAnswers, slowAnswers] = answers as [Answer[], Answer[]];
    expect(fastAnswers.map((a) => comparable(a, false))).toEqual(
      slowAnswers.map((a) => comparable(a, false)),
    );
    expect(fastAnswers[0]?.trailer).toMatchObject({
      "grpc-status": "3",
      "grpc-message": "timeout%205000ms%20must%20be%20%3C%3D%201000",
    });
    expect(fastAnswers[1]?.trailer["grpc-status"]).toBe("0");
  });
});

describe("the pipelines and compression", () => {
  const LIST = "/fieldseal.v1.FieldsealService/ListKeyrings";
  const accepts = { "grpc-accept-encoding": "identity,deflate,gzip" };

  async function compare(extra: Pick<SharedRpcOptions, "acceptCompression" | "compressMinBytes">) {
    const answers: Answer[] = [];
    let taken = 0;
    for (const withFastPath of [true, false]) {
      const p = await startPipelines(withFastPath, undefined, extra);
      try {
        answers.push(await rawCall(p.session, LIST, msg(ListKeyringsRequestSchema, {}), accepts));
        if (withFastPath) taken = p.taken();
      } finally {
        await p.close();
      }
    }
    const [a, b] = answers as [Answer, Answer];
    expect(comparable(a, false)).toEqual(comparable(b, false));
    return { answer: a, taken };
  }

  it("with connect-node's defaults, leave a client that accepts gzip to connect-node, which compresses", async () => {
    const { answer, taken } = await compare({});
    expect(taken).toBe(0);
    expect(answer.header["grpc-encoding"]).toBe("gzip");
    expect(answer.body[0]).toBe(1);
  });

  it("when answers are never compressed, serve that client on the fast path with the same header", async () => {
    const { answer, taken } = await compare({ compressMinBytes: Number.POSITIVE_INFINITY });
    expect(taken).toBe(1);
    expect(answer.header["grpc-encoding"]).toBe("gzip");
    expect(answer.body[0]).toBe(0);
    expect(answer.body.length).toBeGreaterThan(1024);
  });

  it("without compressions, serve that client on the fast path", async () => {
    const { answer, taken } = await compare({ acceptCompression: [] });
    expect(taken).toBe(1);
    expect(answer.header["grpc-encoding"]).toBeUndefined();
  });
});

describe("the pipelines under TLS", () => {
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki?.remove());

  it("give the handler an https:// URL on both paths", async () => {
    const tls = { key: (pki as TestPki).server.key, cert: (pki as TestPki).server.cert };
    for (const withFastPath of [true, false]) {
      const p = await startPipelines(withFastPath, tls);
      try {
        const answer = await rawCall(p.session, HEALTH, check(""));
        expect(answer.trailer["grpc-status"]).toBe("0");
        expect(p.seen.urls).toEqual([
          expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+\/grpc\.health\.v1\.Health\/Check$/),
        ]);
      } finally {
        await p.close();
      }
    }
  });
});
