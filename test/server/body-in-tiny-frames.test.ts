import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EncryptFieldsRequestSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { frame, rawCall } from "../support/grpc-raw.js";
import { startSplittingProxy } from "../support/h2-splitting-proxy.js";

// A hostile client sends a request body of half the default size limit (FIELDSEAL_MAX_REQUEST_BYTES,
// 1 MiB) one byte per HTTP/2 DATA frame, to a real `fieldseal serve` process, on the gRPC fast path and on
// connect-node's. Reading it must cost the server about what reading it whole costs, not once per byte:
// the fast path used to join its buffer on every chunk, which took 12.6 s of server CPU for 256 KiB
// (quadratic: about 200 s for 1 MiB); the guarded adapter kept a Buffer object per chunk, 143 MB of peak
// memory for this body. Both now gather chunks in a ByteAccumulator (src/server/byte-accumulator.ts).
//
// The bounds are an order of magnitude above what a linear reader needs on a loaded machine and an order
// below what a quadratic one takes, so the test says which one it is without timing anything finely.

const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const BODY_BYTES = 512 * 1024;
/** Server CPU for the whole call: linear ~0.5 s; quadratic ~50 s. */
const CPU_BOUND_MS = 10_000;
/** Growth of the server's peak resident memory: a Buffer object per byte held is ~140 MB. */
const PEAK_GROWTH_BOUND_KB = 48 * 1024;

/** User plus system CPU of process `pid`, in milliseconds (Linux /proc). */
function cpuMs(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Peak resident memory of process `pid`, in kB (Linux /proc). */
function peakKb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

const message = Buffer.from(
  toBinary(
    EncryptFieldsRequestSchema,
    create(EncryptFieldsRequestSchema, {
      scope: { id: { case: "sessionId", value: "s-tiny-frames" } },
      fields: { card: { kind: { case: "stringValue", value: "7".repeat(BODY_BYTES) } } },
    }),
  ),
);

/** How the body reaches the server: the gRPC fast path, and connect-node's path for gRPC and Connect. */
const WAYS = [
  { name: "gRPC, fast path", fastPath: "on", contentType: "application/grpc", body: frame(message) },
  {
    name: "gRPC, FIELDSEAL_GRPC_FAST_PATH=off",
    fastPath: "off",
    contentType: "application/grpc",
    body: frame(message),
  },
  { name: "Connect binary over HTTP/2", fastPath: "on", contentType: "application/proto", body: message },
] as const;

describe.runIf(process.platform === "linux").each(WAYS)("$name", ({ fastPath, contentType, body }) => {
  let server: FieldsealProcess;
  beforeAll(async () => {
    server = await startFieldsealProcess({ env: { FIELDSEAL_GRPC_FAST_PATH: fastPath } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("reads a body sent one byte per DATA frame in linear time and bounded memory", async () => {
    const proxy = await startSplittingProxy(server.port, 1);
    const session = http2.connect(proxy.url);
    let overBound: NodeJS.Timeout | undefined;
    try {
      const pid = server.child.pid as number;
      const cpuBefore = cpuMs(pid);
      const peakBefore = peakKb(pid);
      // A quadratic reader is cut off at the bound rather than left to run for a minute.
      const cut = new Promise<"over">((resolve) => {
        overBound = setInterval(() => {
          if (cpuMs(pid) - cpuBefore > CPU_BOUND_MS) resolve("over");
        }, 250);
      });
      const answer = await Promise.race([
        rawCall(session, ENCRYPT, body, {
          authorization: `Bearer ${server.tokens.admin}`,
          "content-type": contentType,
        }),
        cut,
      ]);
      expect(answer, `more than ${CPU_BOUND_MS} ms of server CPU`).not.toBe("over");
      if (answer === "over") return;
      // The whole body was read and parsed: the field's own size limit, not a framing fault, refused it.
      const connect = contentType === "application/proto";
      const said = connect
        ? {
            status: String(answer.header[":status"]),
            message: (JSON.parse(answer.body.toString()) as { message: string }).message,
          }
        : {
            status: String(answer.trailer["grpc-status"]),
            message: decodeURIComponent(String(answer.trailer["grpc-message"])),
          };
      expect(said.status).toBe(connect ? "429" : "8");
      expect(said.message).toMatch(/^field "card": value is/);
      expect(proxy.dataFrames()).toBeGreaterThan(BODY_BYTES);
      expect(cpuMs(pid) - cpuBefore).toBeLessThan(CPU_BOUND_MS);
      expect(peakKb(pid) - peakBefore).toBeLessThan(PEAK_GROWTH_BOUND_KB);
    } finally {
      clearInterval(overBound);
      session.close();
      await proxy.close();
    }
  }, 40_000);
});
