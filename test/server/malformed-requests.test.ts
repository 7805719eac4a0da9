import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { brotliCompressSync, gunzipSync, gzipSync } from "node:zlib";
import { create, type DescMessage, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ComputeIndexRequestSchema,
  EncryptFieldsRequestSchema,
  ForgetScopeRequestSchema,
} from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { HealthCheckRequestSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { MAX_VALUE_DEPTH } from "../../src/engine/value-codec.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

// Every malformed request body, on every protocol, is refused with INVALID_ARGUMENT (RESOURCE_EXHAUSTED
// for sizes) and a fieldseal-reason, never INTERNAL or a 5xx, and the server keeps serving.

const MAX = 256 * 1024;
const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const COMPUTE_INDEX = "/fieldseal.v1.FieldsealService/ComputeIndex";
const FORGET_SCOPE = "/fieldseal.v1.FieldsealService/ForgetScope";
const HEALTH = "/grpc.health.v1.Health/Check";

let fs: TestFieldseal;
let session: http2.ClientHttp2Session;
beforeAll(async () => {
  fs = await startTestFieldseal({
    settings: {
      maxRequestBytes: MAX,
      // A formatted field and an erasable keyring, for the attacks on ComputeIndex, ForgetScope and
      // EncryptFields' index_fields (field "card" above stays unformatted).
      fields: { pan: { format: "card" } },
      keyrings: ["crm"],
      scopes: { erasableKeyrings: ["crm"] },
    },
  });
  session = http2.connect(fs.url);
});
afterAll(async () => {
  session.close();
  await fs.close();
});

/** The ways a request body reaches the server. */
const PROTOCOLS = {
  "gRPC (fast path)": { http: 2, contentType: "application/grpc", framed: true },
  "gRPC (connect-node, gzip declared)": {
    http: 2,
    contentType: "application/grpc",
    framed: true,
    headers: { "grpc-encoding": "gzip" },
  },
  "gRPC-Web": { http: 1, contentType: "application/grpc-web+proto", framed: true },
  "gRPC-Web, HTTP/2": { http: 2, contentType: "application/grpc-web+proto", framed: true },
  "Connect binary, HTTP/1.1": { http: 1, contentType: "application/proto", framed: false },
  "Connect binary, HTTP/2": { http: 2, contentType: "application/proto", framed: false },
  "Connect JSON, HTTP/1.1": { http: 1, contentType: "application/json", framed: false },
  "Connect JSON, HTTP/2": { http: 2, contentType: "application/json", framed: false },
} as const satisfies Record<string, Protocol>;
type ProtocolName = keyof typeof PROTOCOLS;

interface Protocol {
  readonly http: 1 | 2;
  readonly contentType: string;
  readonly framed: boolean;
  readonly headers?: Record<string, string>;
}

interface Raw {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** What a client learns from an answer, whatever the protocol. */
interface Outcome {
  status: number;
  code: string;
  message: string;
  reason: string | undefined;
  body: Buffer;
}

const GRPC_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

function flatten(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(",") : String(v);
  return out;
}

function send(
  version: 1 | 2,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
): Promise<Raw> {
  if (version === 2) {
    return new Promise((resolve, reject) => {
      const stream = session.request({ ":method": method, ":path": path, ...headers });
      let head: Record<string, string> = {};
      let tail: Record<string, string> = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        head = flatten(h);
      });
      stream.on("trailers", (t) => {
        tail = flatten(t);
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("end", () =>
        resolve({
          status: Number(head[":status"]),
          headers: { ...head, ...tail },
          body: Buffer.concat(chunks),
        }),
      );
      stream.end(body);
    });
  }
  return new Promise((resolve, reject) => {
    const url = new URL(path, fs.url);
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: { ...flatten(res.headers), ...flatten(res.trailers) },
          body: Buffer.concat(chunks),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function frame(payload: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Sends `message` (one message's bytes; framed and, for the gzip variant, compressed as the protocol needs). */
async function call(name: ProtocolName, path: string, message: Buffer, raw = false): Promise<Outcome> {
  const p: Protocol = PROTOCOLS[name];
  const gzip = p.headers?.["grpc-encoding"] === "gzip";
  const body = raw || !p.framed ? message : gzip ? frame(gzipSync(message), 1) : frame(message);
  const answer = await send(
    p.http,
    "POST",
    path,
    {
      "content-type": p.contentType,
      authorization: `Bearer ${fs.tokens.admin}`,
      ...(p.http === 2 && p.framed ? { te: "trailers" } : {}),
      ...p.headers,
    },
    body,
  );
  return outcome(p, answer);
}

function outcome(p: Protocol, a: Raw): Outcome {
  const reason = a.headers["fieldseal-reason"];
  if (!p.framed) {
    if (a.status === 200) return { status: 200, code: "ok", message: "", reason, body: a.body };
    const json = JSON.parse(a.body.toString("utf8")) as { code: string; message: string };
    return { status: a.status, code: json.code, message: json.message, reason, body: a.body };
  }
  let fields = a.headers;
  const messages: Buffer[] = [];
  // gRPC-Web carries its trailers as a last frame flagged 0x80.
  for (let at = 0; at + 5 <= a.body.length; ) {
    const flags = a.body[at] as number;
    const end = at + 5 + a.body.readUInt32BE(at + 1);
    const data = a.body.subarray(at + 5, end);
    if (flags & 0x80) {
      const lines = data.toString("utf8").split("\r\n").filter(Boolean);
      fields = { ...fields };
      for (const line of lines) {
        const i = line.indexOf(":");
        fields[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
    } else messages.push(flags & 1 ? gunzipSync(data) : data);
    at = end;
  }
  const status = Number(fields["grpc-status"] ?? Number.NaN);
  return {
    status: a.status,
    code: GRPC_CODES[status] ?? `http ${a.status}`,
    message: decodeURIComponent(fields["grpc-message"] ?? ""),
    reason: fields["fieldseal-reason"],
    body: messages[0] ?? Buffer.alloc(0),
  };
}

const scope = { id: { case: "sessionId" as const, value: "s-malformed" } };

function encryptRequest(name: ProtocolName, value: unknown): Buffer {
  if (PROTOCOLS[name].contentType === "application/json") {
    return Buffer.from(JSON.stringify({ scope: { sessionId: "s-malformed" }, fields: { card: value } }));
  }
  return Buffer.from(
    toBinary(
      EncryptFieldsRequestSchema,
      create(EncryptFieldsRequestSchema, {
        scope,
        fields: { card: { kind: { case: "stringValue", value: value as string } } },
      }),
    ),
  );
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function lengthDelimited(fieldNo: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((fieldNo << 3) | 2), varint(payload.length), payload]);
}

/** An EncryptFieldsRequest whose value is a google.protobuf.Value list nested `depth` deep. */
function deepBinary(depth: number): Buffer {
  let value: Buffer = Buffer.alloc(0);
  // Value.list_value = 6; ListValue.values = 1.
  for (let i = 0; i < depth; i++) value = lengthDelimited(6, lengthDelimited(1, value));
  const entry = Buffer.concat([lengthDelimited(1, Buffer.from("card")), lengthDelimited(2, value)]);
  return Buffer.concat([lengthDelimited(2, lengthDelimited(1, Buffer.from("s"))), lengthDelimited(3, entry)]);
}

function deepRequest(name: ProtocolName, depth: number): Buffer {
  if (PROTOCOLS[name].contentType === "application/json") {
    return Buffer.from(
      `{"scope":{"sessionId":"s"},"fields":{"card":${"[".repeat(depth)}${"]".repeat(depth)}}}`,
    );
  }
  return deepBinary(depth);
}

/** An EncryptFieldsRequest whose value holds the bytes `x FF FE` where UTF-8 text belongs. */
function invalidUtf8(name: ProtocolName): Buffer {
  const good = encryptRequest(name, "xQQ");
  const at = good.indexOf("xQQ");
  good[at + 1] = 0xff;
  good[at + 2] = 0xfe;
  return good;
}

const NAMES = Object.keys(PROTOCOLS) as ProtocolName[];

async function expectHealthy(): Promise<void> {
  for (const name of NAMES) {
    const health = await call(
      name,
      HEALTH,
      PROTOCOLS[name].contentType === "application/json"
        ? Buffer.from("{}")
        : Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))),
    );
    expect(health.code, name).toBe("ok");
    const sealed = await call(name, ENCRYPT, encryptRequest(name, "4111111111111111"));
    expect(sealed.code, name).toBe("ok");
  }
}

describe.each(NAMES)("%s", (name) => {
  it("refuses bytes that are not a message", async () => {
    const body =
      PROTOCOLS[name].contentType === "application/json"
        ? Buffer.from("{not json")
        : Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const answer = await call(name, ENCRYPT, body);
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toMatch(/^request (body )?is not (a )?valid/);
    if (!PROTOCOLS[name].framed) expect(answer.status).toBe(400);
  });

  it("refuses invalid UTF-8 where text belongs, and seals nothing", async () => {
    const answer = await call(name, ENCRYPT, invalidUtf8(name));
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toMatch(/UTF-8|utf-8/);
    expect(answer.body.includes("fs1.")).toBe(false);
  });

  it("refuses a value nested 10,000 deep", async () => {
    const answer = await call(name, ENCRYPT, deepRequest(name, 10_000));
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toMatch(/nests deeper|recursion depth/);
  });

  it("accepts a large message that arrives in many chunks", async () => {
    const answer = await call(name, ENCRYPT, encryptRequest(name, "7".repeat(60_000)));
    expect(answer.code, answer.message).toBe("ok");
  });

  it("refuses a message over the size limit, naming the setting", async () => {
    const answer = await call(name, ENCRYPT, encryptRequest(name, "x".repeat(MAX)));
    expect(answer).toMatchObject({ code: "resource_exhausted", reason: "too_large" });
    expect(answer.message).toContain("FIELDSEAL_MAX_REQUEST_BYTES");
    expect(answer.message).not.toContain("readMaxBytes");
  });
});

describe.each(NAMES.filter((n) => PROTOCOLS[n].framed))("%s framing", (name) => {
  // A Connect unary body is the message itself; these are faults of the 5-byte message envelopes.
  it.each([
    ["no message", Buffer.alloc(0)],
    ["a truncated envelope", Buffer.from([0, 0, 0])],
    ["two messages for a unary method", Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.alloc(0))])],
    ["an undefined envelope flag", frame(Buffer.alloc(0), 0x40)],
  ])("refuses %s", async (_what, body) => {
    const answer = await call(name, HEALTH, body, true);
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
  });
});

describe("Connect JSON", () => {
  it("refuses invalid UTF-8 rather than sealing replacement characters", async () => {
    const body = Buffer.concat([
      Buffer.from('{"scope":{"sessionId":"s"},"fields":{"card":"x'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]);
    const answer = await call("Connect JSON, HTTP/1.1", ENCRYPT, body);
    expect(answer).toMatchObject({
      status: 400,
      code: "invalid_argument",
      reason: "invalid_argument",
      message: "request body is not valid UTF-8",
    });
  });

  it("never echoes a value that failed to decode", async () => {
    const body = Buffer.from('{"scope":{"sessionId":"s"},"keyring":{"secret":"4111111111111111"}}');
    const answer = await call("Connect JSON, HTTP/1.1", ENCRYPT, body);
    expect(answer).toMatchObject({ status: 400, code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toContain("EncryptFieldsRequest");
    expect(answer.body.toString()).not.toContain("4111");
  });

  it.each(["Connect JSON, HTTP/1.1", "Connect JSON, HTTP/2"] as const)(
    "refuses an object with a key twice, with a reason and without quoting it (%s)",
    async (name) => {
      // connect's own decoder refuses it too, but without a fieldseal-reason and quoting the key.
      for (const body of [
        '{"scope":{"sessionId":"s"},"fields":{"card4111":"x","card4111":"y"}}',
        '{"scope":{"sessionId":"s"},"scope":{"userId":"card4111"},"fields":{"c":"x"}}',
        '{"scope":{"sessionId":"s"},"fields":{"c":{"card4111":1,"card4111":2}}}',
      ]) {
        const answer = await call(name, ENCRYPT, Buffer.from(body));
        expect(answer).toMatchObject({
          status: 400,
          code: "invalid_argument",
          reason: "invalid_argument",
          message: "request is not a valid JSON fieldseal.v1.EncryptFieldsRequest: an object has a key twice",
        });
        expect(answer.body.toString()).not.toContain("4111");
      }
    },
  );

  it.each([
    [1, "application/grpc-web+json"],
    [2, "application/grpc+json"],
  ] as const)("refuses a key twice in a +json message too (HTTP/%i, %s)", async (v, contentType) => {
    const body = frame(Buffer.from('{"scope":{"sessionId":"s"},"fields":{"card4111":"x","card4111":"y"}}'));
    const headers = { "content-type": contentType, authorization: `Bearer ${fs.tokens.admin}` };
    const a = await send(v, "POST", ENCRYPT, v === 2 ? { ...headers, te: "trailers" } : headers, body);
    const answer = outcome({ http: v, contentType, framed: true }, a);
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toMatch(/an object has a key twice$/);
    expect(a.body.toString() + JSON.stringify(a.headers)).not.toContain("4111");
  });

  it("accepts the deepest value the engine seals", async () => {
    const value = JSON.parse(`${"[".repeat(MAX_VALUE_DEPTH)}1${"]".repeat(MAX_VALUE_DEPTH)}`);
    const answer = await call("Connect JSON, HTTP/2", ENCRYPT, encryptRequest("Connect JSON, HTTP/2", value));
    expect(answer.code).toBe("ok");
  });
});

describe("gRPC through connect-node, compressed", () => {
  const send = (payload: Buffer) =>
    call("gRPC (connect-node, gzip declared)", ENCRYPT, frame(payload, 1), true);

  it("refuses gzip data that does not inflate", async () => {
    const answer = await send(Buffer.from("not gzip at all"));
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toBe("message is not valid gzip data");
  });

  it("refuses a gzip bomb by its inflated size", async () => {
    const answer = await send(gzipSync(Buffer.alloc(MAX * 4)));
    expect(answer).toMatchObject({ code: "resource_exhausted", reason: "too_large" });
    expect(answer.message).toContain("FIELDSEAL_MAX_REQUEST_BYTES");
  });

  it("refuses garbage inside valid gzip", async () => {
    const answer = await send(gzipSync(Buffer.from([0xff, 0xff, 0xff])));
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
  });
});

describe("compressed Connect and gRPC bodies", () => {
  const big = Buffer.alloc(MAX * 4, 0x20);
  it.each([
    ["Connect JSON unary, gzip", "application/json", { "content-encoding": "gzip" }, gzipSync(big), false],
    [
      "Connect binary unary, br",
      "application/proto",
      { "content-encoding": "br" },
      brotliCompressSync(big),
      false,
    ],
    [
      "gRPC, br",
      "application/grpc",
      { "grpc-encoding": "br", te: "trailers" },
      brotliCompressSync(big),
      true,
    ],
    [
      "Connect streaming, gzip",
      "application/connect+proto",
      { "connect-content-encoding": "gzip" },
      gzipSync(big),
      true,
    ],
  ] as const)(
    "refuse a decompression bomb by its inflated size (%s)",
    async (_name, contentType, headers, bomb, framed) => {
      const path = contentType === "application/connect+proto" ? "/grpc.health.v1.Health/Watch" : ENCRYPT;
      const a = await send(
        2,
        "POST",
        path,
        { "content-type": contentType, authorization: `Bearer ${fs.tokens.admin}`, ...headers },
        framed ? frame(bomb, 1) : bomb,
      );
      const text = a.body.toString("latin1") + JSON.stringify(a.headers);
      expect(a.status).toBe(framed ? 200 : 429);
      expect(text).toMatch(/resource_exhausted|"grpc-status":"8"|grpc-status.{0,3}8/);
      expect(text).toContain("too_large");
      // Health.Watch answers without credentials: held to the open services' fixed limit.
      expect(text).toContain(
        path === ENCRYPT
          ? "FIELDSEAL_MAX_REQUEST_BYTES"
          : "the fixed limit of services that need no credentials",
      );
    },
  );
});

describe("content-types connect does not serve", () => {
  it.each([
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
    "application/json; charset=latin1",
    "application/json; charset=utf-16",
    "application/connectproto",
    "text/plain",
  ])("%s gets 415 with a JSON body and a reason, its body unread", async (contentType) => {
    const a = await send(2, "POST", ENCRYPT, { "content-type": contentType }, Buffer.from("AAAAAAA="));
    expect(a.status).toBe(415);
    expect(a.headers["fieldseal-reason"]).toBe("invalid_argument");
    expect((JSON.parse(a.body.toString()) as { message: string }).message).toMatch(
      /^unsupported content-type/,
    );
  });
});

describe("request heads", () => {
  const health = Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)));
  const head = (name: ProtocolName, headers: Record<string, string>) => {
    const p: Protocol = PROTOCOLS[name];
    return send(
      p.http,
      "POST",
      HEALTH,
      { "content-type": p.contentType, ...(p.http === 2 && p.framed ? { te: "trailers" } : {}), ...headers },
      p.framed ? frame(health) : health,
    ).then((a) => outcome(p, a));
  };

  it("refuses an unparseable gRPC deadline", async () => {
    for (const name of ["gRPC (fast path)", "gRPC-Web"] as const) {
      const answer = await head(name, { "grpc-timeout": "soon" });
      expect(answer, name).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
      expect(answer.message).toMatch(/^grpc-timeout must be/);
    }
  });

  it.each([
    ["10 digits", "1000000000"],
    ["16 digits, the most connect reads", "9007199254740991"],
  ])(
    "refuses a Connect body announced over the limit (HTTP/1.1, %s) with a reason",
    async (_what, length) => {
      // Node's HTTP/1.1 server hands the request over with its head, so the refusal comes before the body.
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(fs.port, "127.0.0.1");
        let text = "";
        socket.setEncoding("latin1");
        socket.on("data", (d: string) => {
          text += d;
          if (text.includes("}")) socket.destroy();
        });
        socket.on("error", () => {});
        socket.on("close", () => resolve(text));
        socket.end(
          `POST ${ENCRYPT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
            `content-length: ${length}\r\n\r\n{}`,
        );
      });
      expect(answer).toMatch(/^HTTP\/1\.1 429 /);
      expect(answer).toMatch(/\r\nfieldseal-reason: too_large\r\n/);
      expect(answer).toContain("FIELDSEAL_MAX_REQUEST_BYTES");
      expect(answer).not.toContain("readMaxBytes");
    },
  );

  it("refuses an unparseable Connect deadline", async () => {
    const answer = await head("Connect binary, HTTP/1.1", { "connect-timeout-ms": "-1" });
    expect(answer).toMatchObject({ status: 400, code: "invalid_argument", reason: "invalid_argument" });
  });

  it.each([
    ["gRPC-Web", { "grpc-timeout": "99999999H" }],
    ["gRPC (connect-node, gzip declared)", { "grpc-timeout": "99999999S" }],
    ["Connect binary, HTTP/2", { "connect-timeout-ms": "9999999999" }],
  ] as const)("treats a deadline too far away for a timer as none over %s", async (name, headers) => {
    // Node fires a timer longer than 2^31-1 ms after 1 ms, warning on stderr; the call must not expire.
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const p: Protocol = PROTOCOLS[name];
      const a = await send(
        p.http,
        "POST",
        ENCRYPT,
        {
          "content-type": p.contentType,
          authorization: `Bearer ${fs.tokens.admin}`,
          ...(p.http === 2 && p.framed ? { te: "trailers" } : {}),
          ...p.headers,
          ...headers,
        },
        p.framed
          ? p.headers?.["grpc-encoding"] === "gzip"
            ? frame(gzipSync(encryptRequest(name, "4111111111111111")), 1)
            : frame(encryptRequest(name, "4111111111111111"))
          : encryptRequest(name, "4111111111111111"),
      );
      expect(outcome(p, a).code).toBe("ok");
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("answers an unknown compression as gRPC's compression spec says, with a reason", async () => {
    const answer = await head("gRPC (fast path)", { "grpc-encoding": "zstd" });
    expect(answer).toMatchObject({ code: "unimplemented", reason: "invalid_argument" });
    expect(answer.message).toBe("unknown compression: supported encodings are gzip,br");
  });
});

describe("a bidirectional stream (server reflection)", () => {
  const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
  const listServices = frame(
    toBinary(
      ServerReflectionRequestSchema,
      create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
    ),
  );

  /** Writes `first`, waits for its answer, then writes `second` and ends: as grpcurl talks. */
  function converse(second: Buffer, headers: Record<string, string> = {}): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": REFLECTION,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      let head: Record<string, string> = {};
      let tail: Record<string, string> = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        head = flatten(h);
      });
      stream.on("trailers", (t) => {
        tail = flatten(t);
      });
      stream.on("data", (c: Buffer) => {
        if (chunks.length === 0) stream.end(second);
        chunks.push(c);
      });
      stream.on("error", reject);
      stream.on("end", () =>
        resolve(
          outcome(PROTOCOLS["gRPC (fast path)"], {
            status: Number(head[":status"]),
            headers: { ...head, ...tail },
            body: Buffer.concat(chunks),
          }),
        ),
      );
      stream.write(listServices);
    });
  }

  it("is answered message by message, not after the whole body", async () => {
    // A server that waited for the whole body would never answer the first message: the call would hang.
    const answer = await converse(listServices);
    expect(answer.code).toBe("ok");
  }, 10_000);

  it("refuses a malformed later message with INVALID_ARGUMENT", async () => {
    const answer = await converse(frame(Buffer.from([0xff, 0xff, 0xff])));
    expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    expect(answer.message).toMatch(
      /^request is not a valid binary grpc\.reflection\.v1\.ServerReflectionRequest/,
    );
  });

  it("refuses an over-size later message with RESOURCE_EXHAUSTED", async () => {
    const answer = await converse(frame(Buffer.alloc(MAX + 1)));
    expect(answer).toMatchObject({ code: "resource_exhausted", reason: "too_large" });
  });
});

describe("Connect streaming (Health.Watch)", () => {
  it.each([1, 2] as const)("refuses a malformed message in its end-stream answer (HTTP/%i)", async (v) => {
    const a = await send(
      v,
      "POST",
      "/grpc.health.v1.Health/Watch",
      { "content-type": "application/connect+proto" },
      frame(Buffer.from([0xff, 0xff, 0xff])),
    );
    expect(a.status).toBe(200);
    // The last envelope, flagged 0x02, is the end-stream JSON with the error and its metadata.
    expect(a.body[0]).toBe(0x02);
    const end = JSON.parse(a.body.subarray(5).toString()) as {
      error: { code: string; message: string };
      metadata: Record<string, string[]>;
    };
    expect(end.error.code).toBe("invalid_argument");
    expect(end.error.message).toMatch(/^request is not a valid binary grpc\.health\.v1\.HealthCheckRequest/);
    expect(end.metadata["fieldseal-reason"]).toEqual(["invalid_argument"]);
  });
});

describe("a server-streaming method (Health.Watch) given no message or two", () => {
  const WATCH = "/grpc.health.v1.Health/Watch";
  const empty = frame(Buffer.alloc(0));
  it.each([
    ["gRPC", 2, "application/grpc"],
    ["gRPC-Web", 1, "application/grpc-web+proto"],
    ["Connect streaming", 2, "application/connect+proto"],
  ] as const)("is refused with INVALID_ARGUMENT and a reason over %s", async (_name, v, contentType) => {
    for (const [body, says] of [
      [Buffer.alloc(0), "protocol error: missing input message for server-streaming method"],
      [
        Buffer.concat([empty, empty]),
        "protocol error: received extra input message for server-streaming method",
      ],
    ] as const) {
      const a = await send(
        v,
        "POST",
        WATCH,
        { "content-type": contentType, ...(v === 2 ? { te: "trailers" } : {}) },
        body,
      );
      if (contentType === "application/connect+proto") {
        // No message comes before it: the only envelope is the end-stream one, flagged 0x02.
        expect(a.body[0]).toBe(0x02);
        const end = JSON.parse(a.body.subarray(5).toString()) as {
          error: { code: string; message: string };
          metadata: Record<string, string[]>;
        };
        expect(end.error).toEqual({ code: "invalid_argument", message: says });
        expect(end.metadata["fieldseal-reason"]).toEqual(["invalid_argument"]);
      } else {
        const answer = outcome({ http: v, contentType, framed: true }, a);
        expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument", message: says });
      }
    }
  });
});

describe("refusals before any handler", () => {
  const refusedCount = async () => {
    const { text } = await fs.server.metrics.scrape();
    const m =
      /fieldseal_rpc_calls_total\{rpc="fieldseal\.v1\.FieldsealService\/EncryptFields",code="invalid_argument"\} (\d+)/.exec(
        text,
      );
    return Number(m?.[1] ?? 0);
  };

  it("are logged and counted like any other call, without the request's bytes", async () => {
    const before = fs.logs.length;
    const counted = await refusedCount();
    const answer = await call(
      "Connect JSON, HTTP/1.1",
      ENCRYPT,
      Buffer.from('{"fields":{"card":"4111111111111111"'),
    );
    expect(answer.code).toBe("invalid_argument");
    const lines = fs.logs.slice(before).filter((l) => l.includes("rpc refused"));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      rpc: "fieldseal.v1.FieldsealService/EncryptFields",
      code: "invalid_argument",
    });
    expect(fs.logs.join("\n")).not.toContain("4111111111111111");
    expect(await refusedCount()).toBe(counted + 1);
  });
});

describe("a malformed message to a streaming method", () => {
  /** Every fieldseal_rpc_calls_total line for `rpc`, by code. */
  const counts = async (rpc: string) => {
    const { text } = await fs.server.metrics.scrape();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^fieldseal_rpc_calls_total\{rpc="([^"]+)",code="([^"]+)"\} (\d+)$/gm))
      if (m[1] === rpc) out[m[2] as string] = Number(m[3]);
    return out;
  };

  it("is counted once, with its reason (server-streaming Health.Watch)", async () => {
    const before = await counts("grpc.health.v1.Health/Watch");
    const a = await send(
      2,
      "POST",
      "/grpc.health.v1.Health/Watch",
      { "content-type": "application/grpc", te: "trailers" },
      frame(Buffer.from([0xff, 0xff])),
    );
    expect(outcome(PROTOCOLS["gRPC (fast path)"], a).code).toBe("invalid_argument");
    const after = await counts("grpc.health.v1.Health/Watch");
    const total = (c: Record<string, number>) => Object.values(c).reduce((x, y) => x + y, 0);
    expect(total(after) - total(before)).toBe(1);
    expect((after.invalid_argument ?? 0) - (before.invalid_argument ?? 0)).toBe(1);
  });
});

describe("Connect protocol errors", () => {
  const refusal = async (a: Raw, status: number, code: string, says: RegExp) => {
    expect(a.status).toBe(status);
    expect(a.headers["fieldseal-reason"]).toBe("invalid_argument");
    expect(a.headers["content-type"]).toMatch(/^application\/json/);
    const json = JSON.parse(a.body.toString()) as { code: string; message: string };
    expect(json.code).toBe(code);
    expect(json.message).toMatch(says);
  };

  it.each([1, 2] as const)("says which content-types to send (HTTP/%i)", async (v) => {
    const body = Buffer.from("{}");
    await refusal(await send(v, "POST", ENCRYPT, {}, body), 415, "invalid_argument", /application\/json/);
    await refusal(
      await send(v, "POST", ENCRYPT, { "content-type": "application/x-www-form-urlencoded" }, body),
      415,
      "invalid_argument",
      /application\/proto/,
    );
  });

  it.each([1, 2] as const)("says to use POST (HTTP/%i)", async (v) => {
    const a = await send(v, "GET", ENCRYPT, {}, undefined);
    await refusal(a, 405, "invalid_argument", /use POST/);
    expect(a.headers.allow).toBe("POST");
  });

  it("refuses a bidirectional stream over HTTP/1.1 as the caller's mistake, not a 5xx", async () => {
    const a = await send(
      1,
      "POST",
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      { "content-type": "application/connect+json" },
      Buffer.alloc(0),
    );
    await refusal(a, 400, "invalid_argument", /needs HTTP\/2/);
  });

  it.each([1, 2] as const)("names the services at an unknown path (HTTP/%i)", async (v) => {
    const a = await send(
      v,
      "POST",
      "/fieldseal.v1.FieldsealService/Nope",
      { "content-type": "application/json" },
      Buffer.from("{}"),
    );
    await refusal(a, 404, "unimplemented", /fieldseal\.v1\.FieldsealService/);
  });
});

describe("arbitrary bytes", () => {
  it.each(NAMES)("never get INTERNAL or a 5xx over %s", async (name) => {
    const framed = PROTOCOLS[name].framed;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 256 }),
        fc.boolean(),
        fc.constantFrom(ENCRYPT, HEALTH, COMPUTE_INDEX, FORGET_SCOPE),
        async (bytes, wrap, path) => {
          // Framed protocols get the bytes both as a whole body and as one well-framed message.
          const answer = await call(name, path, Buffer.from(bytes), !(framed && wrap));
          expect(answer.status).toBeLessThan(500);
          expect(["internal", "unknown", "data_loss"]).not.toContain(answer.code);
          if (answer.code !== "ok") expect(answer.reason, answer.message).toBeDefined();
        },
      ),
      { numRuns: 80, seed: 11 },
    );
  });

  it.each([
    ["Health.Watch over gRPC", "/grpc.health.v1.Health/Watch", "application/grpc"],
    ["Health.Watch over Connect streaming", "/grpc.health.v1.Health/Watch", "application/connect+proto"],
    ["Health.Watch over Connect streaming JSON", "/grpc.health.v1.Health/Watch", "application/connect+json"],
    ["Health.Watch over gRPC-Web", "/grpc.health.v1.Health/Watch", "application/grpc-web+proto"],
    [
      "server reflection over gRPC",
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "application/grpc",
    ],
    [
      "server reflection over gRPC +json",
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "application/grpc+json",
    ],
  ])(
    "never get INTERNAL or a 5xx on streaming %s",
    async (_name, path, contentType) => {
      // A valid Watch stays open: its first answer is all this needs, then the stream is cancelled.
      const stream = (body: Buffer) =>
        new Promise<Raw>((resolve, reject) => {
          const s = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": contentType,
            te: "trailers",
          });
          let head: Record<string, string> = {};
          let tail: Record<string, string> = {};
          const chunks: Buffer[] = [];
          const done = () => {
            clearTimeout(timer);
            resolve({
              status: Number(head[":status"]),
              headers: { ...head, ...tail },
              body: Buffer.concat(chunks),
            });
          };
          const timer = setTimeout(() => {
            s.close(http2.constants.NGHTTP2_CANCEL);
            done();
          }, 2000);
          s.on("response", (h) => {
            head = flatten(h);
          });
          s.on("trailers", (t) => {
            tail = flatten(t);
          });
          s.on("data", (c: Buffer) => chunks.push(c));
          s.on("error", reject);
          s.on("end", done);
          s.end(body);
        });
      const json = contentType.endsWith("json");
      const envelope = fc
        .tuple(
          fc.constantFrom(0, 0, 1, 2, 0x80),
          json ? fc.json().map((t) => Buffer.from(t)) : fc.uint8Array({ maxLength: 64 }),
        )
        .map(([flags, payload]) => frame(Buffer.from(payload), flags));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.array(envelope, { maxLength: 3 }).map((e) => Buffer.concat(e)),
            fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
          ),
          async (body) => {
            const a = await stream(body);
            expect(a.status).toBeLessThan(500);
            const fields: Record<string, string> = { ...a.headers };
            // gRPC-Web's trailers and Connect's end-stream message come in the body.
            const text = a.body.toString("latin1");
            for (const m of text.matchAll(/(grpc-status|fieldseal-reason): ?([\w]+)/g))
              fields[m[1] as string] = m[2] as string;
            const end = /\{"error":\{"code":"(\w+)"/.exec(text);
            const code = end?.[1] ?? GRPC_CODES[Number(fields["grpc-status"] ?? 0)];
            expect(["internal", "unknown", "data_loss"]).not.toContain(code);
            if (code !== "ok")
              expect(fields["fieldseal-reason"] ?? /"fieldseal-reason"/.exec(text)?.[0], code).toBeDefined();
          },
        ),
        { numRuns: 40, seed: 12 },
      );
    },
    60_000,
  );

  it("are refused alike in a concurrent burst over every protocol", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => NAMES.map((name) => call(name, ENCRYPT, garbage))).flat(),
    );
    for (const answer of answers) {
      expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
    }
  });

  it("leave the server healthy on every protocol", async () => {
    await expectHealthy();
    // Nothing above was a bug: no unexpected failure was logged.
    expect(fs.logs.filter((l) => /rpc answer failed|rpc failed unexpectedly/.test(l))).toEqual([]);
  });
});

describe("a value JSON has no form of", () => {
  /** EncryptFields of one field `card` holding `value` (a google.protobuf.Value init), in binary. */
  const binary = (value: object) =>
    Buffer.from(
      toBinary(
        EncryptFieldsRequestSchema,
        create(EncryptFieldsRequestSchema, { scope, fields: { card: value } }),
      ),
    );
  // JSON cannot leave a Value's kind unset: its variants put an infinite number at other depths instead.
  const shapes: Record<string, { binary: Buffer; json: string }> = {
    "an infinite number": {
      binary: binary({ kind: { case: "numberValue", value: Number.POSITIVE_INFINITY } }),
      json: "1e400",
    },
    "a negative infinite number": {
      binary: binary({ kind: { case: "numberValue", value: Number.NEGATIVE_INFINITY } }),
      json: "-1e400",
    },
    NaN: { binary: binary({ kind: { case: "numberValue", value: Number.NaN } }), json: "[1e400]" },
    "a Value with no kind": { binary: binary({}), json: '{"a":[-1e999]}' },
    "a Value with no kind inside a list": {
      binary: binary({ kind: { case: "listValue", value: { values: [{}] } } }),
      json: '{"a":{"b":1e309}}',
    },
  };

  describe.each(NAMES)("over %s", (name) => {
    it.each(Object.keys(shapes))("refuses %s with INVALID_ARGUMENT, never INTERNAL", async (shape) => {
      const s = shapes[shape] as { binary: Buffer; json: string };
      const body =
        PROTOCOLS[name].contentType === "application/json"
          ? Buffer.from(`{"scope":{"sessionId":"s"},"fields":{"card":${s.json}}}`)
          : s.binary;
      const answer = await call(name, ENCRYPT, body);
      expect(answer).toMatchObject({ code: "invalid_argument", reason: "invalid_argument" });
      expect(answer.message).toBe(
        'field "card": the value has no JSON form (a number that is NaN or infinite, or a Value with no kind set)',
      );
      if (!PROTOCOLS[name].framed) expect(answer.status).toBe(400);
    });
  });
});

/** One message in the protocol's encoding: JSON for Connect JSON, binary otherwise. */
function encode<D extends DescMessage>(name: ProtocolName, schema: D, init: MessageInitShape<D>): Buffer {
  const message = create(schema, init);
  return PROTOCOLS[name].contentType === "application/json"
    ? Buffer.from(toJsonString(schema, message))
    : Buffer.from(toBinary(schema, message));
}

/** `good` with the text `xQQ` in it turned into the bytes `x FF FE` (invalid UTF-8). */
function breakUtf8(good: Buffer): Buffer {
  const out = Buffer.from(good);
  const at = out.indexOf("xQQ");
  if (at < 0) throw new Error("no xQQ to break");
  out[at + 1] = 0xff;
  out[at + 2] = 0xfe;
  return out;
}

// A card number that fails Luhn: it must never come back in a message, a header or a trailer.
const BAD_PAN = "4111111111111112";

interface Attack {
  readonly path: string;
  readonly body: (name: ProtocolName) => Buffer;
  readonly code: string;
  readonly reason: string;
  readonly message: RegExp;
}

const NEW_RPC_ATTACKS: Record<string, Attack> = {
  "ComputeIndex with no field": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { value: BAD_PAN }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /^field is required$/,
  },
  "ComputeIndex with a NUL in the field name": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { field: "p\u0000an", value: "x" }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /NUL/,
  },
  "ComputeIndex with a field name of 10,000 bytes": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { field: "f".repeat(10_000), value: "x" }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /field name is longer than/,
  },
  "ComputeIndex of a card number failing Luhn": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { field: "pan", value: BAD_PAN }),
    code: "invalid_argument",
    reason: "field_format_invalid",
    message: /"pan" does not fit its format "card"/,
  },
  "ComputeIndex with invalid UTF-8 in the value": {
    path: COMPUTE_INDEX,
    body: (n) => breakUtf8(encode(n, ComputeIndexRequestSchema, { field: "note", value: "xQQ" })),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /UTF-8|utf-8/,
  },
  "ComputeIndex with invalid UTF-8 in the field name": {
    path: COMPUTE_INDEX,
    body: (n) => breakUtf8(encode(n, ComputeIndexRequestSchema, { field: "xQQ", value: "v" })),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /UTF-8|utf-8/,
  },
  "ComputeIndex under a keyring name that is a path": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { keyring: "../keys", field: "note", value: "v" }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /keyring name .* is invalid/,
  },
  "ComputeIndex under a keyring that does not exist": {
    path: COMPUTE_INDEX,
    body: (n) => encode(n, ComputeIndexRequestSchema, { keyring: "nowhere", field: "note", value: "v" }),
    code: "not_found",
    reason: "keyring_not_found",
    message: /keyring "nowhere" does not exist/,
  },
  "ForgetScope with no scope": {
    path: FORGET_SCOPE,
    body: (n) => encode(n, ForgetScopeRequestSchema, { keyring: "crm" }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /scope is required/,
  },
  "ForgetScope of an empty session id": {
    path: FORGET_SCOPE,
    body: (n) =>
      encode(n, ForgetScopeRequestSchema, {
        keyring: "crm",
        scope: { id: { case: "sessionId", value: "" } },
      }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /session id is empty/,
  },
  "ForgetScope with invalid UTF-8 in the user id": {
    path: FORGET_SCOPE,
    body: (n) =>
      breakUtf8(
        encode(n, ForgetScopeRequestSchema, {
          keyring: "crm",
          scope: { id: { case: "userId", value: "xQQ" } },
        }),
      ),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /UTF-8|utf-8/,
  },
  "ForgetScope of a user id of 100,000 bytes": {
    path: FORGET_SCOPE,
    body: (n) =>
      encode(n, ForgetScopeRequestSchema, {
        keyring: "crm",
        scope: { id: { case: "userId", value: "u".repeat(100_000) } },
      }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /longer than/,
  },
  "ForgetScope on a keyring that is not erasable": {
    path: FORGET_SCOPE,
    body: (n) =>
      encode(n, ForgetScopeRequestSchema, {
        keyring: "default",
        scope: { id: { case: "userId", value: "u" } },
      }),
    code: "failed_precondition",
    reason: "failed_precondition",
    message: /is not erasable/,
  },
  "ForgetScope on a keyring that does not exist": {
    path: FORGET_SCOPE,
    body: (n) =>
      encode(n, ForgetScopeRequestSchema, { keyring: "crn", scope: { id: { case: "userId", value: "u" } } }),
    code: "not_found",
    reason: "keyring_not_found",
    message: /keyring "crn" does not exist/,
  },
  "EncryptFields with index_fields naming no field": {
    path: ENCRYPT,
    body: (n) =>
      encode(n, EncryptFieldsRequestSchema, {
        scope,
        fields: { note: { kind: { case: "stringValue", value: "v" } } },
        indexFields: ["nope"],
      }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /index_fields\[0\].*names no field/,
  },
  "EncryptFields with invalid UTF-8 in index_fields": {
    path: ENCRYPT,
    body: (n) =>
      breakUtf8(
        encode(n, EncryptFieldsRequestSchema, {
          scope,
          fields: { note: { kind: { case: "stringValue", value: "v" } } },
          indexFields: ["xQQ"],
        }),
      ),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /UTF-8|utf-8/,
  },
  "EncryptFields of a formatted field failing Luhn, indexed": {
    path: ENCRYPT,
    body: (n) =>
      encode(n, EncryptFieldsRequestSchema, {
        scope,
        fields: {
          note: { kind: { case: "stringValue", value: "fine" } },
          pan: { kind: { case: "stringValue", value: BAD_PAN } },
        },
        indexFields: ["pan", "note"],
      }),
    code: "invalid_argument",
    reason: "field_format_invalid",
    message: /"pan" does not fit its format "card"/,
  },
  "EncryptFields of a formatted field holding an object": {
    path: ENCRYPT,
    body: (n) =>
      encode(n, EncryptFieldsRequestSchema, {
        scope,
        fields: {
          pan: {
            kind: {
              case: "structValue",
              value: { fields: { n: { kind: { case: "stringValue", value: BAD_PAN } } } },
            },
          },
        },
      }),
    code: "invalid_argument",
    reason: "field_format_invalid",
    message: /"pan" does not fit its format "card"/,
  },
  "EncryptFields on an erasable keyring with a scope id of 100,000 bytes": {
    path: ENCRYPT,
    body: (n) =>
      encode(n, EncryptFieldsRequestSchema, {
        keyring: "crm",
        scope: { id: { case: "userId", value: "u".repeat(100_000) } },
        fields: { note: { kind: { case: "stringValue", value: "v" } } },
      }),
    code: "invalid_argument",
    reason: "invalid_argument",
    message: /longer than/,
  },
};

/** Every answer's bytes (body, headers, trailers) must not quote the bad card number. */
function expectNoLeak(answer: Outcome | { message: string; raw: string }): void {
  const text =
    "raw" in answer ? answer.raw + answer.message : answer.body.toString("latin1") + answer.message;
  expect(text).not.toContain(BAD_PAN);
  expect(text).not.toContain("411111111111");
}

describe.each(NAMES)("the newer RPCs' bad requests over %s", (name) => {
  it.each(Object.keys(NEW_RPC_ATTACKS))("refuse %s with a specific reason", async (what) => {
    const attack = NEW_RPC_ATTACKS[what] as Attack;
    const answer = await call(name, attack.path, attack.body(name));
    expect(answer, answer.message).toMatchObject({ code: attack.code, reason: attack.reason });
    expect(answer.message).toMatch(attack.message);
    expect(answer.body.includes("fs1.")).toBe(false);
    expect(answer.body.includes("fx1.")).toBe(false);
    expectNoLeak(answer);
    if (!PROTOCOLS[name].framed) expect(answer.status).toBeLessThan(500);
  });

  it("refuse structured garbage (any strings, any flags) without INTERNAL or a leak", async () => {
    // Names (keyring, field, scope id) may be quoted back; values (BAD_PAN among them) never.
    const label = fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.constant(""));
    const text = fc.oneof(label, fc.constant(BAD_PAN));
    const request = fc.oneof(
      fc
        .record({
          keyring: label,
          field: fc.oneof(label, fc.constant("pan")),
          value: text,
          allVersions: fc.boolean(),
        })
        .map((r) => ({ path: COMPUTE_INDEX, body: encode(name, ComputeIndexRequestSchema, r) })),
      fc
        .record({ keyring: fc.constantFrom("crm", "default", ""), user: label, session: fc.boolean() })
        .map((r) => ({
          path: FORGET_SCOPE,
          body: encode(name, ForgetScopeRequestSchema, {
            keyring: r.keyring,
            scope: { id: { case: r.session ? "sessionId" : "userId", value: r.user } },
          }),
        })),
      fc
        .record({
          keyring: fc.constantFrom("crm", "default"),
          fields: fc.dictionary(fc.constantFrom("pan", "note", "card", ""), text, { maxKeys: 3 }),
          indexFields: fc.array(fc.constantFrom("pan", "note", "card", "", "other"), { maxLength: 4 }),
        })
        .map((r) => ({
          path: ENCRYPT,
          body: encode(name, EncryptFieldsRequestSchema, {
            keyring: r.keyring,
            scope: { id: { case: "userId", value: "u-garbage" } },
            fields: Object.fromEntries(
              Object.entries(r.fields).map(([k, v]) => [
                k,
                { kind: { case: "stringValue" as const, value: v } },
              ]),
            ),
            indexFields: r.indexFields,
          }),
        })),
    );
    await fc.assert(
      fc.asyncProperty(request, async ({ path, body }) => {
        const answer = await call(name, path, body);
        expect(answer.status).toBeLessThan(500);
        expect(["internal", "unknown", "data_loss"], answer.message).not.toContain(answer.code);
        if (answer.code !== "ok") {
          expect(answer.reason, answer.message).toBeDefined();
          expectNoLeak(answer);
        }
      }),
      { numRuns: 40, seed: 15 },
    );
  });
});

describe("the newer RPCs' bad bytes through @grpc/grpc-js", () => {
  /** A grpc-js client that sends the given bytes as the message, unchanged. */
  let client: grpc.Client;
  beforeAll(() => {
    const raw = (path: string) => ({
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    });
    const Client = grpc.makeGenericClientConstructor(
      { encrypt: raw(ENCRYPT), computeIndex: raw(COMPUTE_INDEX), forgetScope: raw(FORGET_SCOPE) },
      "raw",
    );
    client = new Client(`127.0.0.1:${fs.port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => client.close());

  function rawCall(path: string, body: Buffer): Promise<{ code: number; message: string; raw: string }> {
    const method = path === ENCRYPT ? "encrypt" : path === COMPUTE_INDEX ? "computeIndex" : "forgetScope";
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${fs.tokens.admin}`);
    return new Promise((resolve) => {
      const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[method] as (
        ...a: unknown[]
      ) => unknown;
      fn.call(client, body, metadata, { deadline: Date.now() + 20_000 }, (err: grpc.ServiceError | null) => {
        if (err === null) resolve({ code: 0, message: "", raw: "" });
        else
          resolve({
            code: err.code,
            message: err.details,
            raw: JSON.stringify(err.metadata.getMap()),
          });
      });
    });
  }

  it.each(Object.keys(NEW_RPC_ATTACKS))("refuses %s with a specific reason", async (what) => {
    const attack = NEW_RPC_ATTACKS[what] as Attack;
    const answer = await rawCall(attack.path, attack.body("gRPC (fast path)"));
    expect(GRPC_CODES[answer.code], answer.message).toBe(attack.code);
    expect(answer.message).toMatch(attack.message);
    expect(JSON.parse(answer.raw)["fieldseal-reason"]).toBe(attack.reason);
    expectNoLeak(answer);
  });

  it("never answers arbitrary bytes with INTERNAL", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom(ENCRYPT, COMPUTE_INDEX, FORGET_SCOPE),
        async (bytes, path) => {
          const answer = await rawCall(path, Buffer.from(bytes));
          expect([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS]).not.toContain(
            answer.code,
          );
          if (answer.code !== 0)
            expect(JSON.parse(answer.raw)["fieldseal-reason"], answer.message).toBeDefined();
        },
      ),
      { numRuns: 60, seed: 16 },
    );
  });

  it("leaves no unexpected failure in the log", () => {
    expect(fs.logs.filter((l) => /rpc answer failed|rpc failed unexpectedly/.test(l))).toEqual([]);
    expect(fs.logs.join("\n")).not.toContain(BAD_PAN);
  });
});
