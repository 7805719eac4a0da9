/**
 * Graceful shutdown seen by HTTP/1.1 clients that open a new connection for every call (keep-alive off),
 * one process and two workers: while the server drains, every request it took in is answered (in full, or
 * refused with 503 and `connection: close`), and once the port is closed new connections are refused.
 * None is reset after the client sent its request.
 */
import * as http from "node:http";
import { describe, expect, it } from "vitest";
import { startFieldsealProcess } from "../support/fieldseal-process.js";

const CLIENTS = 24;
const GRACE_MS = 15_000;
const BODY = JSON.stringify({ scope: { sessionId: "s-drain" }, fields: { card: "4111111111111111" } });

/** One Connect call over a connection of its own; "ok", "refused" (503 shutting down), "port closed", or a failure. */
function call(port: number, token: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        agent: false,
        method: "POST",
        path: "/fieldseal.v1.FieldsealService/EncryptFields",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(BODY),
          authorization: `Bearer ${token}`,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          if (res.statusCode === 200 && text.includes('"card"')) resolve("ok");
          else if (res.statusCode === 503 && /shutting down/.test(text)) resolve("refused");
          else resolve(`other: ${res.statusCode} ${text.slice(0, 80)}`);
        });
        res.on("error", (e) => resolve(`other: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("client timeout")));
    req.on("error", (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      // Refused at connect: the port is closed, nothing was sent.
      resolve(code === "ECONNREFUSED" ? "port closed" : `other: ${code ?? e.message}`);
    });
    req.end(BODY);
  });
}

async function drainWithNewConnectionPerCall(args: string[]): Promise<void> {
  const proc = await startFieldsealProcess({
    args,
    env: { FIELDSEAL_SHUTDOWN_GRACE_MS: String(GRACE_MS), FIELDSEAL_LOG_LEVEL: "warn" },
  });
  try {
    const token = proc.tokens.bot ?? "";
    let sigterm = false;
    const outcomes: string[] = [];
    const loops = Array.from({ length: CLIENTS }, async () => {
      // Bounded: stops at the first "port closed" after SIGTERM, or after 2,000 calls.
      for (let i = 0; i < 2000; i++) {
        const after = sigterm;
        const o = await call(proc.port, token);
        outcomes.push(o.startsWith("other") ? `${o} (${after ? "after" : "before"} SIGTERM)` : o);
        if (sigterm && o === "port closed") return;
        if (o.startsWith("other")) return;
      }
    });
    await new Promise((r) => setTimeout(r, 700));
    proc.child.kill("SIGTERM");
    sigterm = true;
    await Promise.all(loops);
    const exit = await proc.exited;
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    console.log(`${args.join(" ") || "one process"}: ${JSON.stringify(counts)}`);
    expect(outcomes.filter((o) => o.startsWith("other"))).toEqual([]);
    expect(counts.ok ?? 0).toBeGreaterThan(0);
    // Every sealing the server audited was answered to its client.
    const audited = proc
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"action":"encrypt"') && l.includes('"outcome":"ok"')).length;
    expect(audited).toBe(counts.ok);
    expect(exit).toBe(0);
  } finally {
    await proc.stop();
  }
}

describe("SIGTERM with HTTP/1.1 clients opening a connection per call", () => {
  it("one process: every request it read is answered; none is reset", async () => {
    await drainWithNewConnectionPerCall([]);
  }, 60_000);
  it("two workers: every request they read is answered; none is reset", async () => {
    await drainWithNewConnectionPerCall(["--workers", "2"]);
  }, 60_000);
});
