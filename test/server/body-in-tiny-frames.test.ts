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
// before the fast path buffered chunks this way it joined its buffer on every chunk, which took 12.6 s of
// server CPU for 256 KiB (quadratic: about 200 s for 1 MiB), against 0.7 s on connect-node's path.
//
// The bounds are an order of magnitude above what a linear reader needs on a loaded machine and an order
// below what a quadratic one takes, so the test says which one it is without timing anything finely.

const ENCRYPT = "/fieldseal.v1.FieldsealService/EncryptFields";
const BODY_BYTES = 512 * 1024;
/** Server CPU for the whole call: linear ~0.5 s; quadratic ~50 s. */
const CPU_BOUND_MS = 10_000;
/** Growth of the server's peak resident memory: a Buffer per byte held would be ~100 MB. */
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

const body = frame(
  toBinary(
    EncryptFieldsRequestSchema,
    create(EncryptFieldsRequestSchema, {
      scope: { id: { case: "sessionId", value: "s-tiny-frames" } },
      fields: { card: { kind: { case: "stringValue", value: "7".repeat(BODY_BYTES) } } },
    }),
  ),
);

describe.runIf(process.platform === "linux").each(["on", "off"])(
  "FIELDSEAL_GRPC_FAST_PATH=%s",
  (fastPath) => {
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
      try {
        const pid = server.child.pid as number;
        const cpuBefore = cpuMs(pid);
        const peakBefore = peakKb(pid);
        // A quadratic reader is cut off at the bound rather than left to run for a minute.
        let overBound: NodeJS.Timeout | undefined;
        const cut = new Promise<"over">((resolve) => {
          overBound = setInterval(() => {
            if (cpuMs(pid) - cpuBefore > CPU_BOUND_MS) resolve("over");
          }, 250);
        });
        const answer = await Promise.race([
          rawCall(session, ENCRYPT, body, { authorization: `Bearer ${server.tokens.admin}` }),
          cut,
        ]);
        clearInterval(overBound);
        expect(answer, `more than ${CPU_BOUND_MS} ms of server CPU`).not.toBe("over");
        if (answer === "over") return;
        // The whole body was read and parsed: the field's own size limit, not a framing fault, refused it.
        expect(answer.trailer["grpc-status"]).toBe("8");
        expect(decodeURIComponent(String(answer.trailer["grpc-message"]))).toMatch(/^field "card": value is/);
        expect(proxy.dataFrames()).toBeGreaterThan(BODY_BYTES);
        expect(cpuMs(pid) - cpuBefore).toBeLessThan(CPU_BOUND_MS);
        if (fastPath === "on") expect(peakKb(pid) - peakBefore).toBeLessThan(PEAK_GROWTH_BOUND_KB);
      } finally {
        session.close();
        await proxy.close();
      }
    }, 40_000);
  },
);
