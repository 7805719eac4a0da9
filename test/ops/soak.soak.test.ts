/**
 * SOAK TEST. A bounded run (FIELDSEAL_SOAK_SECONDS, default 60) of mixed calls at 64 in flight against a
 * child `fieldseal serve`, with RotateKey every few seconds. It asserts zero unexpected errors and bounded
 * heap growth (read from the server's own /metrics), never latency.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";

const SECONDS = Number(process.env.FIELDSEAL_SOAK_SECONDS ?? "60");
const IN_FLIGHT = 64;
const ROTATE_EVERY_MS = 3000;
const HEAP_GROWTH_BOUND = 64 * 1024 * 1024;
const scope = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const num = (value: number) => ({ kind: { case: "numberValue" as const, value } });

async function heapUsed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  if (m?.[1] === undefined) throw new Error("no nodejs_heap_size_used_bytes in /metrics");
  return Number(m[1]);
}

describe("soak", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({ env: { FIELDSEAL_LOG_LEVEL: "warn" } });
  });
  afterAll(async () => {
    await proc.stop(5000);
  });

  it(`serves mixed calls at ${IN_FLIGHT} in flight for ${SECONDS}s with zero unexpected errors and bounded heap`, {
    timeout: (SECONDS + 60) * 1000,
  }, async () => {
    const client = createClient(
      FieldsealService,
      createGrpcTransport({ baseUrl: proc.url, interceptors: [bearer(proc.tokens.admin ?? "")] }),
    );
    const counts = { calls: 0, expectedErrors: 0, unexpected: [] as string[] };
    /** One mixed iteration; returns normally when every call had the outcome it should. */
    const iteration = async (worker: number, n: number) => {
      const s = scope(`soak-${worker}-${n % 50}`);
      const sealed = await client.encryptFields({ scope: s, fields: { a: num(n), b: num(-n) } });
      const a = sealed.sealed.a ?? "";
      const one = await client.decryptField({ scope: s, field: "a", sealed: a });
      if (one.value?.kind.value !== n) throw new Error("DecryptField returned another value");
      const many = await client.decryptFields({
        scope: s,
        items: [
          { field: "a", sealed: a },
          { field: "b", sealed: sealed.sealed.b ?? "" },
          { field: "b", sealed: a },
        ],
      });
      const cases = many.results.map((r) => (r.outcome.case === "error" ? r.outcome.value.reason : "ok"));
      if (cases.join() !== "ok,ok,envelope_tampered") throw new Error(`DecryptFields gave ${cases}`);
      const rewrapped = await client.rewrapFields({ scope: s, items: [{ field: "a", sealed: a }] });
      if (rewrapped.results[0]?.outcome.case !== "sealed") throw new Error("RewrapFields failed an item");
      counts.calls += 4;
      // Invalid calls, each expecting its own error.
      const invalid: Array<[() => Promise<unknown>, Code]> = [
        [() => client.encryptFields({ scope: s, fields: {} }), Code.InvalidArgument],
        [() => client.decryptField({ scope: s, field: "a", sealed: "fs1.nope" }), Code.InvalidArgument],
        [() => client.decryptField({ field: "a", sealed: a }), Code.InvalidArgument],
      ];
      const picked = invalid[n % invalid.length];
      if (picked === undefined) throw new Error("no invalid call picked");
      const [call, code] = picked;
      try {
        await call();
        throw new Error("an invalid call succeeded");
      } catch (err) {
        if (!(err instanceof ConnectError) || err.code !== code) throw err;
        counts.expectedErrors++;
      }
      counts.calls++;
    };

    const runFor = async (ms: number) => {
      const until = Date.now() + ms;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async (_, worker) => {
          for (let n = 0; Date.now() < until; n++) {
            try {
              await iteration(worker, n);
            } catch (err) {
              counts.unexpected.push(String(err));
              if (counts.unexpected.length > 20) return;
            }
          }
        }),
      );
    };

    // Warm up (JIT, caches, connection pools), then measure from a settled baseline.
    await runFor(Math.min(5000, SECONDS * 100));
    // Heap used swings with garbage not yet collected; the low points (just after a GC) show what is
    // really retained, so compare the lowest sample of the first fifth of the run with that of the last.
    const samples: number[] = [];
    const sampler = setInterval(() => {
      void heapUsed(proc.url).then((h) => samples.push(h));
    }, 500);
    let rotations = 0;
    const rotator = setInterval(() => {
      void client.rotateKey({}).then(
        () => rotations++,
        (err) => counts.unexpected.push(`RotateKey: ${String(err)}`),
      );
    }, ROTATE_EVERY_MS);
    try {
      await runFor(SECONDS * 1000);
    } finally {
      clearInterval(rotator);
      clearInterval(sampler);
    }
    const fifth = Math.max(1, Math.floor(samples.length / 5));
    const heapAfterWarmUp = Math.min(...samples.slice(0, fifth));
    const heapAtEnd = Math.min(...samples.slice(-fifth));
    const growth = heapAtEnd - heapAfterWarmUp;
    console.log(
      `soak: ${SECONDS}s, ${counts.calls} calls (${counts.expectedErrors} expected errors), ` +
        `${rotations} rotations, ${counts.unexpected.length} unexpected errors, heap used ` +
        `${(heapAfterWarmUp / 2 ** 20).toFixed(1)} -> ${(heapAtEnd / 2 ** 20).toFixed(1)} MiB ` +
        `(growth ${(growth / 2 ** 20).toFixed(1)} MiB; lowest samples of the first and last fifth)`,
    );
    expect(counts.unexpected).toEqual([]);
    expect(rotations).toBeGreaterThan(0);
    expect(growth).toBeLessThan(HEAP_GROWTH_BOUND);
  });
});
