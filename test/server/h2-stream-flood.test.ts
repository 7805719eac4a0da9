/**
 * The memory ceiling docs/security.md states ("Connection limits"), measured: 100,000 half-open,
 * header-only gRPC streams without a token are attempted against a real `fieldseal serve` process with
 * its default limits, from one peer address, while a client at another address keeps calling. Each
 * connection first fills its stream limit with streams carrying the largest header list the server
 * accepts, then sends far past the limit.
 */
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { type RawH2Connection, rawH2 } from "../support/raw-h2.js";

const ATTEMPTS = 100_000;
/** The default per-peer cap and stream limit: the most one peer can hold open. */
const CONNECTIONS = 128;
const STREAMS_PER_CONNECTION = 100;
/**
 * docs/security.md, "Connection limits": what one held connection and one held header-only stream may
 * cost at most (measured: about 15 KiB and 10 KiB plus the header list, 22-32 KiB with a full list, peaks included).
 */
const BYTES_PER_CONNECTION = 16 * 1024;
const BYTES_PER_STREAM = 48 * 1024;
/** The stated worst case for one peer with the default limits, above the server's memory before it. */
const CEILING_ABOVE_BASELINE =
  CONNECTIONS * (BYTES_PER_CONNECTION + STREAMS_PER_CONNECTION * BYTES_PER_STREAM);
const ATTACK_BUDGET_MS = 30_000;
/** An x-pad value that brings a request's header list (RFC 7541 §4.1 sizes) near the 16 KiB limit. */
const PAD_BYTES = 16 * 1024 - 200;

function kib(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m?.[1] === undefined) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]) * 1024;
}

describe("HTTP/2 stream flood", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    // Default limits except the body deadline, shortened so the held streams are reset within the test.
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_BODY_TIMEOUT_MS: "5000", FIELDSEAL_LOG_LEVEL: "warn" },
    });
  });
  afterAll(async () => {
    await proc?.stop(3000);
  });

  it("holds memory under the stated ceiling, refuses the excess, resets the rest, and keeps serving", async () => {
    const pid = proc.child.pid ?? 0;
    const before = kib(pid, "VmRSS");
    const legit = createClient(
      FieldsealService,
      createGrpcTransport({ baseUrl: proc.url, interceptors: [bearer(proc.tokens.admin)] }),
    );
    // CONNECTIONS connections from 127.0.0.2, each filling its stream limit (held: their bodies never
    // come) and then sending far past it, ATTEMPTS streams in all.
    const started = Date.now();
    const conns = await Promise.all(
      Array.from({ length: CONNECTIONS }, () =>
        rawH2({ port: proc.port, localAddress: "127.0.0.2", padBytes: PAD_BYTES }),
      ),
    );
    const perConnection = Math.ceil(ATTEMPTS / CONNECTIONS);
    // The streams the server takes carry the largest header list it accepts; the refused ones need not.
    for (const c of conns) c.openStreams(STREAMS_PER_CONNECTION, false, true);
    for (const c of conns) c.openStreams(perConnection - STREAMS_PER_CONNECTION);
    const attempted = conns.reduce((n, c) => n + c.opened(), 0);
    // Past the limit each stream is refused (REFUSED_STREAM), or the connection told to go away (GOAWAY:
    // Node ends a session that keeps opening refused streams; streams above its last stream id are never
    // processed, RFC 9113 §6.8). Wait until every connection shows one or the other, within the budget.
    const excess = perConnection - STREAMS_PER_CONNECTION;
    const answered = (c: RawH2Connection) => (c.resets.get(7) ?? 0) >= excess || c.goaways > 0;
    while (!conns.every(answered) && Date.now() - started < ATTACK_BUDGET_MS)
      await new Promise((r) => setTimeout(r, 100));
    expect(conns.filter((c) => !answered(c))).toEqual([]);
    // The legitimate client at 127.0.0.1 is served while the held streams are open.
    const sealed = await legit.encryptFields({
      scope: { id: { case: "sessionId", value: "s-flood" } },
      fields: { credit_card: { kind: { case: "stringValue", value: "4111111111111111" } } },
    });
    expect(sealed.sealed.credit_card).toMatch(/^fs1\./);
    // Held a while longer, so that the server has taken in every stream before the peak is read.
    await new Promise((r) => setTimeout(r, 1000));
    const peak = kib(pid, "VmHWM");
    const refused = conns.reduce((n, c) => n + (c.resets.get(7) ?? 0), 0);
    const goaways = conns.reduce((n, c) => n + c.goaways, 0);
    console.log(
      `flood: ${attempted} streams attempted on ${conns.length} connections; ${refused} refused ` +
        `(REFUSED_STREAM), ${goaways} GOAWAY; RSS ${Math.round(before / 2 ** 20)} MiB before, peak ` +
        `${Math.round(peak / 2 ** 20)} MiB (ceiling ${Math.round((before + CEILING_ABOVE_BASELINE) / 2 ** 20)} MiB); ` +
        `${Date.now() - started} ms`,
    );
    expect(attempted).toBeGreaterThanOrEqual(ATTEMPTS);
    expect(peak - before).toBeLessThan(CEILING_ABOVE_BASELINE);
    expect(refused).toBeGreaterThan(0);
    for (const c of conns) c.socket.destroy();

    // Streams within the limit that never send a body are reset after the body deadline. (From another
    // address: the server may still be closing the flood's connections, which fill 127.0.0.2's cap.)
    const held = await Promise.all(
      Array.from({ length: 10 }, () => rawH2({ port: proc.port, localAddress: "127.0.0.3" })),
    );
    for (const c of held) c.openStreams(STREAMS_PER_CONNECTION);
    const until = Date.now() + 5000 + 10_000;
    while (held.some((c) => c.resetIds.size < STREAMS_PER_CONNECTION) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    for (const c of held) expect(c.resetIds.size).toBe(STREAMS_PER_CONNECTION);
    for (const c of held) c.socket.destroy();
    // Refusing and resetting are routine: nothing of it is logged as an error.
    expect(proc.stderr()).not.toMatch(/"level":"error"/);
  });
});
