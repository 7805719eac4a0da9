/**
 * Attacks on the listener bounds (docs/security.md, "Connection limits") by clients that never read what
 * the server sends, or that pipeline far ahead of their answers, each against a real `fieldseal serve`
 * process with short deadlines: the server must drop them within the stated time, hold little memory
 * meanwhile, and keep serving others.
 */
import { readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { rawH2 } from "../support/raw-h2.js";

const IDLE_MS = 800;
const BODY_MS = 1500;
const KEEP_ALIVE_MS = 800;
/** Deadlines are checked by timers on a busy 2-core machine: a close may come this much later. */
const SLACK_MS = 5000;

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
  ]);
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

async function connect(port: number, localAddress = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress }, () => resolve(s));
    s.once("error", reject);
  });
}

/** GET /healthz on a fresh connection; resolves with what the server sent. */
async function healthz(port: number, localAddress = "127.0.0.1"): Promise<string> {
  const s = await connect(port, localAddress);
  let got = "";
  s.on("data", (d: Buffer) => {
    got += d.toString("latin1");
  });
  s.on("error", () => {});
  s.write("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
  await within(new Promise((r) => s.once("close", r)), SLACK_MS);
  return got;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  await within(
    (async () => {
      while (!cond()) await new Promise((r) => setTimeout(r, 50));
    })(),
    ms,
  );
}

/** An HTTP/2 PING frame (RFC 9113 §6.7). */
const PING_FRAME = Buffer.concat([Buffer.from([0, 0, 8, 0x6, 0, 0, 0, 0, 0]), Buffer.alloc(8)]);

describe("clients that never read the answer", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: {
        FIELDSEAL_H2_IDLE_TIMEOUT_MS: String(IDLE_MS),
        FIELDSEAL_BODY_TIMEOUT_MS: String(BODY_MS),
        FIELDSEAL_HEAD_TIMEOUT_MS: String(BODY_MS),
        FIELDSEAL_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_MS),
        // Room for an answer larger than the kernel's socket buffers (up to 4 MiB here) take unread.
        FIELDSEAL_MAX_REQUEST_BYTES: String(8 * 1024 * 1024),
        FIELDSEAL_LOG_LEVEL: "warn",
      },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("resets HTTP/2 answers a client never opens its window for, and closes the session", async () => {
    // SETTINGS_INITIAL_WINDOW_SIZE 0: the server may send headers but no byte of any answer's body.
    const conns = await Promise.all(
      Array.from({ length: 10 }, () => rawH2({ port: proc.port, path: "/healthz", initialWindowSize: 0 })),
    );
    for (const c of conns) c.openStreams(100, true);
    // Every answer is reset (CANCEL) and every session, told to go away when idle, closes.
    await within(Promise.all(conns.map((c) => c.closed)), IDLE_MS + BODY_MS + SLACK_MS);
    for (const c of conns) {
      expect(c.resets.get(8)).toBe(100);
      expect(c.goaways).toBeGreaterThanOrEqual(1);
    }
    expect(await healthz(proc.port)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("resets such answers even while the client keeps the session busy with PINGs", async () => {
    const c = await rawH2({ port: proc.port, path: "/healthz", initialWindowSize: 0 });
    c.openStreams(100, true);
    const pinger = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write(PING_FRAME);
    }, 200);
    try {
      await until(() => c.resetIds.size === 100, BODY_MS + SLACK_MS);
      expect(c.resets.get(8)).toBe(100);
    } finally {
      clearInterval(pinger);
      c.socket.destroy();
    }
  });

  it("closes an HTTP/1.1 connection that pipelines thousands of requests and reads nothing, holding little memory", async () => {
    const pid = proc.child.pid ?? 0;
    const before = rssBytes(pid);
    const socks = await Promise.all(Array.from({ length: 10 }, () => connect(proc.port)));
    const closed = socks.map((s) => new Promise((r) => s.once("close", r)));
    for (const s of socks) {
      s.on("error", () => {});
      s.pause();
      // About 700 KB of requests: every 64 KiB read holds nearly 2,000 of them.
      s.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(20_000));
    }
    await within(Promise.all(closed), SLACK_MS);
    // Unbounded, 10 such connections took the server from 95 MB to 555 MB RSS (every answer kept until
    // the ones before it were sent) and were never closed. What remains is the garbage of parsing the rest
    // of one read (about 2,000 requests, 7 MB) per connection, which the next collection frees.
    expect(rssBytes(pid) - before).toBeLessThan(128 * 1024 * 1024);
    expect(await healthz(proc.port)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("still answers a few pipelined requests in full", async () => {
    const s = await connect(proc.port);
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    s.write(
      `${"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n".repeat(15)}GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
    );
    await within(new Promise((r) => s.once("close", r)), SLACK_MS);
    expect(got.match(/HTTP\/1\.1 200 /g)).toHaveLength(16);
  });

  it("drops an HTTP/1.1 connection whose client stops taking a large answer", async () => {
    const pid = proc.child.pid ?? 0;
    const idleFds = openFds(pid);
    const s = await connect(proc.port);
    s.on("error", () => {});
    // An authenticated call whose answer (about 6 MB) is more than the socket buffers take unread.
    const body = JSON.stringify({
      scope: { sessionId: "s-slow-reader" },
      fields: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, "x".repeat(9000)])),
    });
    s.pause();
    s.write(
      `POST /fieldseal.v1.FieldsealService/EncryptFields HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${proc.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await until(() => openFds(pid) > idleFds, SLACK_MS);
    const start = Date.now();
    // The server lets go of the socket (the kernel still owns the bytes it queued, so this client sees
    // no close until it reads them).
    await until(() => openFds(pid) <= idleFds, 2 * BODY_MS + SLACK_MS);
    expect(Date.now() - start).toBeGreaterThanOrEqual(BODY_MS * 0.5);
    s.destroy();
  });
});
