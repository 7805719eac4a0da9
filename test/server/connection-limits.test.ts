/**
 * Every listener bounds what a client can hold before its request is complete. Each attack runs against a
 * real `fieldseal serve` process, cleartext and TLS, with short deadlines set through the environment.
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { createTestPki, type TestPki } from "../support/certs.js";
import { type FieldsealProcess, startFieldsealProcess } from "../support/fieldseal-process.js";
import { rawH2 } from "../support/raw-h2.js";

const FIRST_BYTES_MS = 600;
const HEAD_MS = 1200;
const BODY_MS = 1200;
const KEEP_ALIVE_MS = 800;
/** Node closes an idle keep-alive connection up to a second after keepAliveTimeout (its own buffer). */
const NODE_KEEP_ALIVE_BUFFER_MS = 1000;
/** Deadlines are checked by timers on a busy 2-core machine: a close may come this much later. */
const SLACK_MS = 4000;

const SHORT_DEADLINES = {
  FIELDSEAL_FIRST_BYTES_TIMEOUT_MS: String(FIRST_BYTES_MS),
  FIELDSEAL_HEAD_TIMEOUT_MS: String(HEAD_MS),
  FIELDSEAL_BODY_TIMEOUT_MS: String(BODY_MS),
  FIELDSEAL_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_MS),
  FIELDSEAL_LOG_LEVEL: "warn",
};

interface Probe {
  readonly socket: net.Socket;
  /** Milliseconds from connect to close, and what the server sent. */
  readonly closed: Promise<{ ms: number; received: string }>;
}

/** Opens a TCP (or TLS) connection from `localAddress` and resolves once it is established. */
async function probe(
  port: number,
  opts: { localAddress?: string; tls?: { ca: Buffer; alpn?: string } } = {},
): Promise<Probe> {
  const start = Date.now();
  const tcp = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress: opts.localAddress ?? "127.0.0.1" }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  const { tls: secure } = opts;
  const socket =
    secure === undefined
      ? tcp
      : await new Promise<net.Socket>((resolve, reject) => {
          const s = tls.connect(
            {
              socket: tcp,
              servername: "localhost",
              ca: secure.ca,
              ALPNProtocols: [secure.alpn ?? "http/1.1"],
            },
            () => resolve(s),
          );
          s.once("error", reject);
          // A connection the server closes before the handshake ends fails the handshake.
          tcp.once("close", () => reject(new Error("closed before the TLS handshake ended")));
        });
  let received = "";
  socket.on("data", (d: Buffer) => {
    received += d.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<{ ms: number; received: string }>((resolve) =>
    socket.once("close", () => resolve({ ms: Date.now() - start, received })),
  );
  return { socket, closed };
}

/** A promise that rejects after `ms`, so a bound is asserted rather than waited on forever. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
  ]);
}

async function encryptOnce(proc: FieldsealProcess, opts: { ca?: Buffer; httpVersion: "1.1" | "2" }) {
  const client = createClient(
    FieldsealService,
    opts.httpVersion === "2"
      ? createGrpcTransport({
          baseUrl: proc.url,
          interceptors: [bearer(proc.tokens.admin)],
          ...(opts.ca === undefined ? {} : { nodeOptions: { ca: opts.ca } }),
        })
      : createConnectTransport({
          baseUrl: proc.url,
          httpVersion: "1.1",
          interceptors: [bearer(proc.tokens.admin)],
          ...(opts.ca === undefined ? {} : { nodeOptions: { ca: opts.ca } }),
        }),
  );
  const res = await client.encryptFields({
    scope: { id: { case: "sessionId", value: "s-limits" } },
    fields: { credit_card: { kind: { case: "stringValue", value: "4111111111111111" } } },
  });
  return res.sealed.credit_card;
}

describe("cleartext listener deadlines", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({ env: SHORT_DEADLINES });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("closes sockets that send one byte (or none) within the first-bytes deadline", async () => {
    const probes = await Promise.all(Array.from({ length: 50 }, () => probe(proc.port)));
    // "P" could begin the HTTP/2 preface, so the sniffer cannot decide on it: the attack on main.
    for (const [i, p] of probes.entries()) if (i % 2 === 0) p.socket.write("P");
    const closes = await within(Promise.all(probes.map((p) => p.closed)), FIRST_BYTES_MS + SLACK_MS);
    for (const c of closes) expect(c.ms).toBeGreaterThanOrEqual(FIRST_BYTES_MS * 0.8);
    expect(await encryptOnce(proc, { httpVersion: "2" })).toMatch(/^fs1\./);
  });

  it("answers 408 and closes an HTTP/1.1 request head that never completes, within the head deadline", async () => {
    const probes = await Promise.all(Array.from({ length: 30 }, () => probe(proc.port)));
    for (const p of probes)
      p.socket.write("POST /fieldseal.v1.FieldsealService/EncryptFields HTTP/1.1\r\nhost: x\r\n");
    // Trickling more header bytes does not extend the deadline.
    const trickle = setInterval(() => {
      for (const p of probes) if (!p.socket.destroyed) p.socket.write("x-slow: 1\r\n");
    }, 200);
    try {
      const closes = await within(Promise.all(probes.map((p) => p.closed)), HEAD_MS + SLACK_MS);
      for (const c of closes) {
        expect(c.ms).toBeGreaterThanOrEqual(HEAD_MS * 0.8);
        expect(c.received).toMatch(/^HTTP\/1\.1 408 /);
      }
    } finally {
      clearInterval(trickle);
    }
    expect(await encryptOnce(proc, { httpVersion: "1.1" })).toMatch(/^fs1\./);
  });

  it("closes an HTTP/1.1 connection whose request body does not end within the body deadline", async () => {
    const p = await probe(proc.port);
    p.socket.write(
      "POST /fieldseal.v1.FieldsealService/EncryptFields HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    );
    const c = await within(p.closed, BODY_MS + SLACK_MS);
    expect(c.ms).toBeGreaterThanOrEqual(BODY_MS * 0.8);
  });

  it("closes an idle keep-alive connection after its keep-alive time", async () => {
    const p = await probe(proc.port);
    p.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    const c = await within(p.closed, KEEP_ALIVE_MS + NODE_KEEP_ALIVE_BUFFER_MS + SLACK_MS);
    expect(c.received).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.ms).toBeGreaterThanOrEqual(KEEP_ALIVE_MS * 0.8);
  });

  it("bounds the second request head on a keep-alive connection too", async () => {
    const p = await probe(proc.port);
    p.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\n");
    const trickle = setInterval(() => {
      if (!p.socket.destroyed) p.socket.write("x-slow: 1\r\n");
    }, 200);
    try {
      const c = await within(p.closed, KEEP_ALIVE_MS + NODE_KEEP_ALIVE_BUFFER_MS + HEAD_MS + SLACK_MS);
      expect(c.received).toMatch(/^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });

  it("answers pipelined requests in full, with no 408 between them", async () => {
    const p = await probe(proc.port);
    const body = '{"scope":{"sessionId":"s-pipe"},"fields":{"a":"x"}}';
    const call = `POST /fieldseal.v1.FieldsealService/EncryptFields HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${proc.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    p.socket.write(`${call}${call}GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    const c = await within(p.closed, SLACK_MS);
    expect(c.received.match(/HTTP\/1\.1 200 /g)).toHaveLength(3);
    expect(c.received).not.toMatch(/ 408 /);
  });

  it("resets an HTTP/2 stream that sends headers but never a body, after the body deadline", async () => {
    const h2 = await rawH2({ port: proc.port });
    h2.openStreams(5);
    const start = Date.now();
    await within(
      (async () => {
        while (h2.resetIds.size < 5) await new Promise((r) => setTimeout(r, 50));
      })(),
      BODY_MS + SLACK_MS,
    );
    expect(Date.now() - start).toBeGreaterThanOrEqual(BODY_MS * 0.8);
    expect(h2.resets.get(8)).toBe(5); // CANCEL
    h2.socket.destroy();
  });

  it("refuses HTTP/2 streams past the concurrent-stream limit", async () => {
    const h2 = await rawH2({ port: proc.port });
    h2.openStreams(150);
    await within(
      (async () => {
        while ((h2.resets.get(7) ?? 0) < 50 && !h2.socket.destroyed)
          await new Promise((r) => setTimeout(r, 20));
      })(),
      SLACK_MS,
    );
    // 100 are taken (and later reset by the body deadline); the other 50 are refused at once.
    expect(h2.resets.get(7)).toBe(50); // REFUSED_STREAM
    h2.socket.destroy();
  });
});

describe("HTTP/2 idle sessions", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_H2_IDLE_TIMEOUT_MS: "800", FIELDSEAL_LOG_LEVEL: "warn" },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("sends GOAWAY to a session with no traffic and closes it", async () => {
    const h2 = await rawH2({ port: proc.port });
    await within(h2.closed, 800 + SLACK_MS);
    expect(h2.goaways).toBeGreaterThanOrEqual(1);
  });
});

describe("per-peer connection cap (cleartext)", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_MAX_CONNECTIONS_PER_PEER: "8", FIELDSEAL_LOG_LEVEL: "warn" },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("closes a peer's connections past the cap at once and still serves other peers", async () => {
    const held = await Promise.all(
      Array.from({ length: 8 }, () => probe(proc.port, { localAddress: "127.0.0.2" })),
    );
    // Let the server take them in before the extra ones arrive.
    await new Promise((r) => setTimeout(r, 200));
    // Each extra one asks for /healthz: admitted, it would be answered; refused, it is closed unanswered.
    const extra = await Promise.all(
      Array.from({ length: 5 }, () =>
        probe(proc.port, { localAddress: "127.0.0.2" }).then((p) => {
          p.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
          return p;
        }),
      ),
    );
    const closes = await within(Promise.all(extra.map((p) => p.closed)), SLACK_MS);
    for (const c of closes) expect(c.received).toBe("");
    for (const p of held) expect(p.socket.destroyed).toBe(false);
    // 127.0.0.1 is another peer: served over both protocols.
    expect(await encryptOnce(proc, { httpVersion: "2" })).toMatch(/^fs1\./);
    expect(await encryptOnce(proc, { httpVersion: "1.1" })).toMatch(/^fs1\./);
    // A slot freed is a slot for the same peer again.
    held[0]?.socket.destroy();
    await held[0]?.closed;
    await new Promise((r) => setTimeout(r, 200));
    const again = await probe(proc.port, { localAddress: "127.0.0.2" });
    again.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    expect((await within(again.closed, 3000)).received).toMatch(/^HTTP\/1\.1 200 /);
    for (const p of held) p.socket.destroy();
  });
});

describe("connection cap in all", () => {
  let proc: FieldsealProcess;
  beforeAll(async () => {
    proc = await startFieldsealProcess({
      env: { FIELDSEAL_MAX_CONNECTIONS: "6", FIELDSEAL_LOG_LEVEL: "warn" },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
  });

  it("closes connections past the total as they arrive, and takes new ones once others close", async () => {
    const held = await Promise.all(
      Array.from({ length: 6 }, (_, i) => probe(proc.port, { localAddress: `127.0.0.${2 + (i % 3)}` })),
    );
    await new Promise((r) => setTimeout(r, 200));
    const healthz = async () => {
      const p = await probe(proc.port, { localAddress: "127.0.0.5" });
      p.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
      return (await within(p.closed, SLACK_MS)).received;
    };
    // From a peer with no connection at all: the total, not a per-peer cap, refuses it.
    expect(await healthz()).toBe("");
    for (const p of held) expect(p.socket.destroyed).toBe(false);
    for (const p of held.slice(0, 2)) p.socket.destroy();
    await Promise.all(held.slice(0, 2).map((p) => p.closed));
    await new Promise((r) => setTimeout(r, 200));
    expect(await healthz()).toMatch(/^HTTP\/1\.1 200 /);
    for (const p of held) p.socket.destroy();
  });
});

describe("TLS listener", () => {
  let pki: TestPki;
  let proc: FieldsealProcess;
  beforeAll(async () => {
    pki = createTestPki();
    proc = await startFieldsealProcess({
      env: { ...SHORT_DEADLINES, FIELDSEAL_MAX_CONNECTIONS_PER_PEER: "8" },
      settings: { tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } },
    });
  });
  afterAll(async () => {
    await proc?.stop(2000);
    pki?.remove();
  });

  it("closes connections that do not finish the TLS handshake within the first-bytes deadline", async () => {
    const probes = await Promise.all(Array.from({ length: 6 }, () => probe(proc.port)));
    // One byte of a ClientHello record header, then nothing.
    for (const p of probes) p.socket.write(Buffer.from([0x16]));
    const closes = await within(Promise.all(probes.map((p) => p.closed)), FIRST_BYTES_MS + SLACK_MS);
    for (const c of closes) expect(c.ms).toBeGreaterThanOrEqual(FIRST_BYTES_MS * 0.8);
  });

  it("answers 408 to an HTTP/1.1 head over TLS that never completes, within the head deadline", async () => {
    const probes = await Promise.all(
      Array.from({ length: 6 }, () => probe(proc.port, { tls: { ca: pki.ca.cert } })),
    );
    for (const p of probes) p.socket.write("POST / HTTP/1.1\r\nhost: x\r\n");
    const closes = await within(Promise.all(probes.map((p) => p.closed)), HEAD_MS + SLACK_MS);
    for (const c of closes) {
      expect(c.ms).toBeGreaterThanOrEqual(HEAD_MS * 0.8);
      expect(c.received).toMatch(/^HTTP\/1\.1 408 /);
    }
  });

  it("resets an HTTP/2 stream over TLS whose body never comes", async () => {
    const h2 = await rawH2({ port: proc.port, tls: { ca: pki.ca.cert } });
    h2.openStreams(3);
    await within(
      (async () => {
        while (h2.resetIds.size < 3) await new Promise((r) => setTimeout(r, 50));
      })(),
      BODY_MS + SLACK_MS,
    );
    expect(h2.resets.get(8)).toBe(3);
    h2.socket.destroy();
  });

  it("closes a peer's connections past the cap before the handshake and still serves other peers", async () => {
    // HTTP/2 by ALPN: no request-head deadline applies to them, so they stay open through the test.
    const held = await Promise.all(
      Array.from({ length: 8 }, () =>
        probe(proc.port, { localAddress: "127.0.0.2", tls: { ca: pki.ca.cert, alpn: "h2" } }),
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    // A full handshake from the same peer: admitted, it would complete; refused, it fails.
    const extra = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        probe(proc.port, { localAddress: "127.0.0.2", tls: { ca: pki.ca.cert } }),
      ),
    );
    for (const r of extra) expect(r.status).toBe("rejected");
    for (const p of held) expect(p.socket.destroyed).toBe(false);
    expect(await encryptOnce(proc, { httpVersion: "2", ca: pki.ca.cert })).toMatch(/^fs1\./);
    expect(await encryptOnce(proc, { httpVersion: "1.1", ca: pki.ca.cert })).toMatch(/^fs1\./);
    // A slot freed is a slot for the same peer again.
    held[0]?.socket.destroy();
    await held[0]?.closed;
    await new Promise((r) => setTimeout(r, 200));
    const again = await probe(proc.port, { localAddress: "127.0.0.2", tls: { ca: pki.ca.cert } });
    again.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    expect((await within(again.closed, SLACK_MS)).received).toMatch(/^HTTP\/1\.1 200 /);
    for (const p of held) p.socket.destroy();
  });
});

describe("TLS shutdown", () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki?.remove());

  it("exits promptly on SIGTERM while a connection is stuck in its TLS handshake", async () => {
    const proc = await startFieldsealProcess({
      env: { FIELDSEAL_FIRST_BYTES_TIMEOUT_MS: "120000", FIELDSEAL_LOG_LEVEL: "warn" },
      settings: { tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } },
    });
    const stuck = await probe(proc.port);
    stuck.socket.write(Buffer.from([0x16]));
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    // Killed (SIGKILL) after 20 s if it hangs on the half-done handshake.
    expect(await proc.stop(20_000)).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    await within(stuck.closed, SLACK_MS);
  });
});
