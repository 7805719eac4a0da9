/**
 * Attacks on the listener bounds (docs/security.md, "Connection limits") by clients that never read what
 * the server sends, or that pipeline far ahead of their answers, each against a real `fieldseal serve`
 * process with short deadlines: the server must drop them within the stated time, hold little memory
 * meanwhile, and keep serving others.
 */
import { readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../support/certs.js";
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

/** Long enough that the answer to it (about 6 MB) is more than the socket buffers take unread. */
const LARGE_CALL_BODY = JSON.stringify({
  scope: { sessionId: "s-slow-reader" },
  fields: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, "x".repeat(9000)])),
});

/**
 * Makes an authenticated HTTP/1.1 call with a large answer on `socket` and never reads: the server must
 * let go of the socket about a body deadline later (the kernel still owns the bytes it queued, so the
 * client sees no close until it reads them; the server's descriptors show it).
 */
async function expectLargeAnswerDropped(
  proc: FieldsealProcess,
  open: () => Promise<net.Socket>,
): Promise<void> {
  const pid = proc.child.pid ?? 0;
  // Let connections of earlier tests finish closing.
  await new Promise((r) => setTimeout(r, 300));
  const idleFds = openFds(pid);
  const socket = await open();
  await until(() => openFds(pid) > idleFds, SLACK_MS);
  socket.on("error", () => {});
  socket.pause();
  socket.write(
    `POST /fieldseal.v1.FieldsealService/EncryptFields HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${proc.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(LARGE_CALL_BODY)}\r\n\r\n${LARGE_CALL_BODY}`,
  );
  const start = Date.now();
  try {
    await until(() => openFds(pid) <= idleFds, 2 * BODY_MS + SLACK_MS);
    expect(Date.now() - start).toBeGreaterThanOrEqual(BODY_MS * 0.5);
  } finally {
    socket.destroy();
  }
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

  it("keeps the body deadline for a request answered before its body ended", async () => {
    const s = await connect(proc.port);
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    s.on("error", () => {});
    const closed = new Promise((r) => s.once("close", r));
    // /healthz answers at once; Node then reads the announced megabyte off the wire, trickled here.
    s.write("POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n");
    const trickle = setInterval(() => {
      if (!s.destroyed) s.write("a");
    }, 200);
    try {
      await within(closed, BODY_MS + SLACK_MS);
    } finally {
      clearInterval(trickle);
    }
    // Cut by the body deadline; before, it waited for a next head (keep-alive + 1 s + head time) and
    // answered that 408 in the middle of the body.
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got).not.toMatch(/ 408 /);
  });

  it("drops an HTTP/1.1 connection whose client stops taking a large answer", async () => {
    await expectLargeAnswerDropped(proc, () => connect(proc.port));
  });
});

describe("clients that never read the answer, over TLS", () => {
  let pki: TestPki;
  let proc: FieldsealProcess;
  beforeAll(async () => {
    pki = createTestPki();
    proc = await startFieldsealProcess({
      env: {
        FIELDSEAL_H2_IDLE_TIMEOUT_MS: String(IDLE_MS),
        FIELDSEAL_BODY_TIMEOUT_MS: String(BODY_MS),
        FIELDSEAL_MAX_REQUEST_BYTES: String(8 * 1024 * 1024),
        FIELDSEAL_LOG_LEVEL: "warn",
      },
      settings: { tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
    pki?.remove();
  });

  it("resets HTTP/2 answers a client never opens its window for", async () => {
    const c = await rawH2({
      port: proc.port,
      path: "/healthz",
      initialWindowSize: 0,
      tls: { ca: pki.ca.cert },
    });
    c.openStreams(100, true);
    await within(c.closed, IDLE_MS + 2 * BODY_MS + SLACK_MS);
    expect(c.resets.get(8)).toBe(100);
  });

  it("drops an HTTP/1.1 connection whose client stops taking a large answer", async () => {
    await expectLargeAnswerDropped(proc, async () => {
      const tcp = await connect(proc.port);
      const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect(
          { socket: tcp, servername: "localhost", ca: pki.ca.cert, ALPNProtocols: ["http/1.1"] },
          () => resolve(s),
        );
        s.once("error", reject);
      });
      tcp.pause();
      return socket;
    });
  });
});

/** An HTTP/2 frame (RFC 9113 §4.1). */
function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/**
 * Writes `batch()` until the server drops the connection; fails if it has not within `ms` (plus slack).
 * Returns how many batches went.
 */
async function floodUntilDropped(socket: net.Socket, batch: () => Buffer, ms: number): Promise<number> {
  const start = Date.now();
  let sent = 0;
  while (!socket.destroyed && Date.now() - start < ms) {
    socket.write(batch());
    sent++;
    await new Promise((r) => setImmediate(r));
  }
  // Still open after `ms` of flooding: this close is ours, and `within` fails on it only if it hangs.
  if (!socket.destroyed) throw new Error(`the server did not end the connection within ${ms} ms`);
  await within(new Promise((r) => (socket.destroyed ? r(undefined) : socket.once("close", r))), SLACK_MS);
  return sent;
}

describe("connection churn and HTTP/2 control-frame floods", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_MAX_CONNECTIONS_PER_PEER: "8", FIELDSEAL_LOG_LEVEL: "warn" },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("forgets connections closed at once, half-closed or refused: a peer is served after 5,000 of them", async () => {
    const pid = proc.child.pid ?? 0;
    const idleFds = openFds(pid);
    for (let round = 0; round < 50; round++) {
      // 100 at a time from one address, past its cap of 8: many are refused as they arrive.
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const s = await connect(proc.port, "127.0.0.3").catch(() => undefined);
          if (s === undefined) return;
          s.on("error", () => {});
          s.resume();
          const closed = new Promise((r) => s.once("close", r));
          if (i % 3 === 0) s.destroy();
          else if (i % 3 === 1)
            s.end(); // FIN before any byte
          else s.end("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"); // FIN right after a request
          await within(closed, SLACK_MS);
        }),
      );
    }
    await until(() => openFds(pid) <= idleFds, SLACK_MS);
    expect(await healthz(proc.port, "127.0.0.3")).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("ends connections that flood RST_STREAM, CONTINUATION, SETTINGS/PING or WINDOW_UPDATE/PRIORITY, holding little memory", async () => {
    const pid = proc.child.pid ?? 0;
    const before = rssBytes(pid);
    const rst = Buffer.from([0, 0, 0, 8]); // CANCEL
    // Rapid reset (CVE-2023-44487): open a stream and reset it at once, over and over.
    const a = await rawH2({ port: proc.port, localAddress: "127.0.0.4" });
    await floodUntilDropped(
      a.socket,
      () => {
        const frames: Buffer[] = [];
        for (let k = 0; k < 200; k++) {
          const id = a.opened() * 2 + 1;
          a.openStreams(1);
          frames.push(h2Frame(0x3, 0, id, rst));
        }
        return Buffer.concat(frames);
      },
      10_000,
    );
    // A header block that never ends (CVE-2024-27316): HEADERS without END_HEADERS, then CONTINUATIONs.
    const b = await rawH2({ port: proc.port, localAddress: "127.0.0.5" });
    b.socket.write(h2Frame(0x1, 0, 1, Buffer.from([0x83, 0x86])));
    const field = Buffer.concat([
      Buffer.from([0x00, 3]),
      Buffer.from("x-a"),
      Buffer.from([1]),
      Buffer.from("b"),
    ]);
    const continuations = Buffer.concat(Array.from({ length: 100 }, () => h2Frame(0x9, 0, 1, field)));
    await floodUntilDropped(b.socket, () => continuations, 10_000);
    // SETTINGS and PING whose acknowledgements are never read.
    const c = await rawH2({ port: proc.port, localAddress: "127.0.0.6" });
    c.socket.pause();
    const acks = Buffer.concat(
      Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0 ? h2Frame(0x4, 0, 0, Buffer.alloc(0)) : h2Frame(0x6, 0, 0, Buffer.alloc(8)),
      ),
    );
    await floodUntilDropped(c.socket, () => acks, 10_000);
    // WINDOW_UPDATE on the connection and PRIORITY for streams never opened.
    const d = await rawH2({ port: proc.port, localAddress: "127.0.0.7" });
    const increment = Buffer.from([0, 0, 0, 1]);
    const priority = Buffer.from([0, 0, 0, 0, 15]);
    const noise = Buffer.concat(
      Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0 ? h2Frame(0x8, 0, 0, increment) : h2Frame(0x2, 0, 2 * i + 1, priority),
      ),
    );
    await floodUntilDropped(d.socket, () => noise, 10_000);
    // Measured: no growth above the idle server's 92 MB.
    expect(rssBytes(pid) - before).toBeLessThan(32 * 1024 * 1024);
    expect(await healthz(proc.port)).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("shutdown under attack", () => {
  it("exits within the shutdown grace while clients hold connections they never finish or read", async () => {
    // Default deadlines: only the shutdown can end these connections within the test.
    const proc = await startFieldsealProcess({
      env: { FIELDSEAL_SHUTDOWN_GRACE_MS: "2000", FIELDSEAL_LOG_LEVEL: "warn" },
    });
    const pid = proc.child.pid ?? 0;
    const held: net.Socket[] = [];
    try {
      // Answers never read (HTTP/2 window shut), a request head never ended, a body never sent, one byte.
      const h2 = await rawH2({ port: proc.port, path: "/healthz", initialWindowSize: 0 });
      h2.openStreams(100, true);
      held.push(h2.socket);
      const bodyless = await rawH2({ port: proc.port });
      bodyless.openStreams(100);
      held.push(bodyless.socket);
      for (const text of [
        "GET /healthz HTTP/1.1\r\nhost: x\r\n",
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\n\r\n",
        "P",
      ]) {
        const s = await connect(proc.port);
        s.on("error", () => {});
        s.write(text);
        held.push(s);
      }
      await until(() => h2.responses >= 100, SLACK_MS);
      expect(openFds(pid)).toBeGreaterThanOrEqual(held.length);
      const start = Date.now();
      // SIGKILL after 20 s if it hangs.
      expect(await proc.stop(20_000)).toBe(0);
      expect(Date.now() - start).toBeLessThan(2000 + SLACK_MS);
    } finally {
      for (const s of held) s.destroy();
      await proc.stop(2000);
    }
  });
});
