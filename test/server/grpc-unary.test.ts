import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DecryptFieldRequestSchema,
  DecryptFieldResponseSchema,
  DescribeKeyRequestSchema,
  EncryptFieldsRequestSchema,
  EncryptFieldsResponseSchema,
} from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { parseConfig, SETTINGS } from "../../src/config.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { type Answer, frame, type Head, rawCall } from "../support/grpc-raw.js";

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
  const settings = { maxRequestBytes: MAX, principals };
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
  "an empty body": { method: ENCRYPT, body: () => Buffer.alloc(0), status: "12" },
  "a truncated frame header": { method: ENCRYPT, body: () => Buffer.from([0, 0, 0]), status: "3" },
  "a frame shorter than it announces": {
    method: ENCRYPT,
    body: () => frame(Buffer.alloc(10)).subarray(0, 8),
    status: "3",
  },
  "two messages for a unary method": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), msg(HealthCheckRequestSchema, {})]),
    status: "12",
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
  "a second message that is not protobuf": {
    method: HEALTH,
    body: () => Buffer.concat([msg(HealthCheckRequestSchema, {}), frame(Buffer.from([0xff, 0xff]))]),
    status: "13",
  },
  "bytes that are not protobuf": {
    method: ENCRYPT,
    body: () => frame(Buffer.from([0xff, 0xff, 0xff, 0xff])),
    status: "13",
  },
  "a message over the size limit (RESOURCE_EXHAUSTED)": {
    method: ENCRYPT,
    body: () => frame(Buffer.alloc(MAX + 1)),
    status: "8",
  },
  "a compressed frame without a declared encoding": {
    method: HEALTH,
    body: () => frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)), 1),
    status: "13",
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
