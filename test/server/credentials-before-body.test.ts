import * as http from "node:http";
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const ANNOUNCED = 1_000_000;

/** A gRPC frame header announcing `size` bytes, and the first few bytes of that message. */
function startOfFrame(size: number): Buffer {
  const head = Buffer.alloc(5 + 16);
  head.writeUInt32BE(size, 1);
  return head;
}

/**
 * Sends the head of a request and a sliver of a large body, never the rest, and resolves with the answer's
 * status and headers/trailers: a server that waited for the body would never answer.
 */
function h2Partial(
  url: string,
  headers: Record<string, string>,
  sliver: Buffer,
): Promise<{ status: number; fields: Record<string, string>; body: string; closedInMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": ENCRYPT, ...headers });
    const fields: Record<string, string> = {};
    let status = 0;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      for (const [k, v] of Object.entries(h)) fields[k] = String(v);
    });
    stream.on("trailers", (t) => {
      for (const [k, v] of Object.entries(t)) fields[k] = String(v);
    });
    let body = "";
    stream.on("data", (d: Buffer) => {
      body += d.toString("latin1");
    });
    // The server closes the stream once it has answered, without waiting for the body it will not read.
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 10_000);
    stream.on("close", () => {
      clearTimeout(timer);
      session.close();
      resolve({ status, fields, body, closedInMs: performance.now() - started });
    });
    stream.on("error", () => {});
    stream.write(sliver);
  });
}

describe("a call without credentials is refused on its headers, before its body is read", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({ principals: [{ name: "app", scopes: ["encrypt"] }] });
  });
  afterAll(async () => {
    await fs.close();
  });

  for (const [name, headers] of [
    ["gRPC (fast path)", { "content-type": "application/grpc", te: "trailers" }],
    ["gRPC-Web", { "content-type": "application/grpc-web+proto" }],
    ["gRPC with JSON (connect-node)", { "content-type": "application/grpc+json", te: "trailers" }],
  ] as const) {
    it(`over ${name}: UNAUTHENTICATED with a reason while the body is still on its way`, async () => {
      const answer = await h2Partial(fs.url, headers, startOfFrame(ANNOUNCED));
      expect(answer.status).toBe(200);
      // gRPC-Web carries its trailers in the body's last frame.
      const trailers = `${JSON.stringify(answer.fields)}${answer.body.toLowerCase()}`;
      expect(trailers).toMatch(/grpc-status"?:"?\s*16/);
      expect(trailers).toMatch(/fieldseal-reason"?:"?\s*unauthenticated/);
      expect(answer.closedInMs).toBeLessThan(5_000);
    });
  }

  it("over Connect on HTTP/2: 401 with a JSON body while the body is still on its way", async () => {
    const answer = await h2Partial(
      fs.url,
      { "content-type": "application/proto", "content-length": String(ANNOUNCED) },
      Buffer.alloc(16),
    );
    expect(answer.status).toBe(401);
    expect(answer.fields["fieldseal-reason"]).toBe("unauthenticated");
    expect(JSON.parse(answer.body)).toMatchObject({ code: "unauthenticated" });
    expect(answer.closedInMs).toBeLessThan(5_000);
  });

  it("over Connect on HTTP/1.1: 401 while the body is still on its way", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${fs.url}${ENCRYPT}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": String(ANNOUNCED),
          authorization: "Bearer fsk_not-a-token",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", reject);
      req.write("{".repeat(16));
    });
    expect(status).toBe(401);
  });

  it("records each refusal once, and still serves a caller with credentials", async () => {
    const before = fs.audit.events.filter((e) => e.action === "authenticate").length;
    await h2Partial(fs.url, { "content-type": "application/grpc", te: "trailers" }, startOfFrame(ANNOUNCED));
    const after = fs.audit.events.filter((e) => e.action === "authenticate");
    expect(after.length - before).toBe(1);
    expect(after.at(-1)).toMatchObject({
      outcome: "denied",
      rpc: "fieldseal.v1.FieldsealService/EncryptFields",
    });
    const sealed = await fs.client("app").encryptFields({
      scope: { id: { case: "sessionId", value: "s" } },
      fields: { card: { kind: { case: "stringValue", value: "4111111111111111" } } },
    });
    expect(sealed.keyVersion).toBe(1);
  });
});

describe("services that answer without credentials take only small requests", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({ principals: [{ name: "app", scopes: ["encrypt"] }] });
  });
  afterAll(async () => {
    await fs.close();
  });

  /** A HealthCheckRequest whose `service` (field 1) is `n` bytes long, framed for gRPC. */
  function healthCheck(n: number): Buffer {
    const service = Buffer.alloc(n, "a");
    const varint: number[] = [];
    for (let v = n; ; v >>>= 7) {
      if (v < 0x80) {
        varint.push(v);
        break;
      }
      varint.push((v & 0x7f) | 0x80);
    }
    const message = Buffer.concat([Buffer.from([0x0a, ...varint]), service]);
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(message.length, 1);
    return Buffer.concat([frame, message]);
  }

  function grpcCall(body: Buffer, contentType: string): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(fs.url);
      session.on("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": contentType,
        te: "trailers",
      });
      const fields: Record<string, string> = {};
      stream.on("response", (h) => Object.assign(fields, h));
      stream.on("trailers", (t) => Object.assign(fields, t));
      stream.on("data", () => {});
      stream.on("close", () => {
        session.close();
        resolve(fields);
      });
      stream.end(body);
    });
  }

  it("refuses a health check over 16 KiB with RESOURCE_EXHAUSTED on the fast path and through connect-node", async () => {
    for (const contentType of ["application/grpc", "application/grpc+proto"]) {
      const big = await grpcCall(healthCheck(20 * 1024), contentType);
      expect(big["grpc-status"], contentType).toBe("8");
      expect(big["fieldseal-reason"]).toBe("too_large");
      expect(decodeURIComponent(String(big["grpc-message"]))).toMatch(
        /larger than 16384 bytes, the fixed limit of services that need no credentials/,
      );
      const small = await grpcCall(healthCheck(0), contentType);
      expect(small["grpc-status"], contentType).toBe("0");
    }
  });

  it("still takes FieldsealService requests up to FIELDSEAL_MAX_REQUEST_BYTES from a caller with credentials", async () => {
    const card = "4".repeat(40 * 1024);
    const sealed = await fs.client("app").encryptFields({
      scope: { id: { case: "sessionId", value: "s" } },
      fields: { note: { kind: { case: "stringValue", value: card } } },
    });
    expect(sealed.sealed.note).toMatch(/^fs1\./);
  });
});
