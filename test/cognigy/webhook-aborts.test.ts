/**
 * Requests that end early or are cut off, against a real Fieldseal server over loopback: a body cut off by
 * the client (an HTTP/2 RST_STREAM before END_STREAM, an HTTP/1.1 connection closed mid-body) is never sealed
 * from its truncated bytes and never logged as a 500; an HTTP/2 body over the limit gets its 413 and then
 * its stream is closed by the server, as HTTP/1.1 closes the connection.
 */
import * as http2 from "node:http2";
import { connect as netConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const CARD = "4111111111111111";

describe("webhook requests cut off or over the limit", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({ principals: [{ name: "bot", scopes: ["encrypt"] }] });
  });
  afterAll(async () => {
    await fs.close();
  });

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const webhookLogs = () => fs.logs.filter((line) => line.includes('"webhook refused"'));
  /** Waits (at most 10 s) until the server has logged `count` webhook refusals and served nothing. */
  async function untilLogged(count: number): Promise<string[]> {
    for (let i = 0; i < 200 && webhookLogs().length < count; i++) await sleep(50);
    for (let i = 0; i < 200 && fs.server.inFlight() > 0; i++) await sleep(50);
    return webhookLogs();
  }
  const h2Headers = (extra: http2.OutgoingHttpHeaders = {}) => ({
    ":method": "POST",
    ":path": "/webhooks/cognigy",
    "content-type": "application/x-www-form-urlencoded",
    authorization: `Bearer ${fs.tokens.bot}`,
    "x-sensitive-metadata": "field:credit_card",
    ...extra,
  });

  it("does not seal an HTTP/2 body the client reset half-way, though its bytes so far are a valid form", async () => {
    const before = webhookLogs().length;
    fs.audit.events.length = 0;
    const session = http2.connect(fs.url);
    session.on("error", () => {});
    const stream = session.request(h2Headers());
    stream.on("error", () => {});
    // A complete-looking form: with the rest of the digits it would be another card number.
    stream.write(`sessionId=s-cut&variables[credit_card]=${CARD.slice(0, 8)}`);
    await sleep(300);
    stream.destroy(); // RST_STREAM(CANCEL) without END_STREAM: the body never ended
    const logs = await untilLogged(before + 1);
    session.destroy();
    expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
    const line = JSON.parse(logs[before] ?? "{}") as { status?: number; code?: string };
    expect(line).toMatchObject({ status: 499, code: "client_closed_request" });
    expect(logs.join("")).not.toContain(CARD.slice(0, 8));
    expect((await fetch(`${fs.url}/healthz`)).status).toBe(200);
  });

  it("logs an HTTP/1.1 connection closed mid-body as the client's doing, not as a 500", async () => {
    const before = webhookLogs().length;
    fs.audit.events.length = 0;
    const socket = netConnect(fs.port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(
      "POST /webhooks/cognigy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
        `authorization: Bearer ${fs.tokens.bot}\r\nx-sensitive-metadata: field:credit_card\r\n` +
        'content-length: 1000\r\n\r\n{"sessionId":"s-cut","variables":{"credit_card":"',
    );
    await sleep(300);
    socket.destroy();
    const logs = await untilLogged(before + 1);
    expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
    expect(JSON.parse(logs[before] ?? "{}")).toMatchObject({ status: 499, code: "client_closed_request" });
    expect(logs.some((l) => l.includes('"status":500'))).toBe(false);
  });

  it("takes a body of exactly the limit and refuses one byte more, on both protocols, declared or not", async () => {
    const LIMIT = 64 * 1024;
    /** A JSON body of exactly `size` bytes that seals (the padding is an unflagged variable). */
    const sized = (size: number) => {
      const head = '{"sessionId":"s-limit","variables":{"credit_card":"4111","pad":"';
      return Buffer.from(`${head}${"p".repeat(size - head.length - 3)}"}}`);
    };
    expect(sized(LIMIT).length).toBe(LIMIT);
    const session = http2.connect(fs.url);
    session.on("error", () => {});
    try {
      for (const [size, expected] of [
        [LIMIT, 200],
        [LIMIT + 1, 413],
      ] as const) {
        for (const declared of [true, false]) {
          const body = sized(size);
          const h2 = await new Promise<number>((resolve, reject) => {
            const stream = session.request(
              h2Headers({
                "content-type": "application/json",
                ...(declared ? { "content-length": String(body.length) } : {}),
              }),
            );
            let status = 0;
            stream.on("response", (h) => {
              status = Number(h[":status"]);
            });
            stream.on("data", () => {});
            stream.on("close", () => resolve(status));
            stream.on("error", reject);
            stream.end(body);
          });
          expect(h2, `HTTP/2 ${size} declared=${declared}`).toBe(expected);
          const h1 = await fetch(`${fs.url}/webhooks/cognigy`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${fs.tokens.bot}`,
              "x-sensitive-metadata": "field:credit_card",
            },
            // A stream body goes out chunked, without content-length.
            body: declared ? body : new Blob([body]).stream(),
            ...(declared ? {} : { duplex: "half" }),
          } as RequestInit);
          await h1.arrayBuffer();
          expect(h1.status, `HTTP/1.1 ${size} declared=${declared}`).toBe(expected);
        }
      }
    } finally {
      session.destroy();
    }
  });

  it("does not seal an HTTP/2 body longer or shorter than its content-length", async () => {
    fs.audit.events.length = 0;
    const session = http2.connect(fs.url);
    session.on("error", () => {});
    try {
      const body = Buffer.from(`sessionId=s-lie&variables[credit_card]=${CARD}`);
      for (const declared of [body.length - 4, body.length + 4]) {
        const status = await new Promise<number>((resolve) => {
          const stream = session.request(h2Headers({ "content-length": String(declared) }));
          let answered = 0;
          stream.on("response", (h) => {
            answered = Number(h[":status"]);
          });
          stream.on("data", () => {});
          stream.on("close", () => resolve(answered));
          stream.on("error", () => {});
          stream.end(body);
        });
        // nghttp2 resets a stream whose DATA does not add up to its content-length (RFC 9113 8.1.1): no
        // answer at all, and in any case never a seal or a 5xx.
        expect(status === 0 || (status >= 400 && status < 500), `declared ${declared}: ${status}`).toBe(true);
      }
      for (let i = 0; i < 100 && fs.server.inFlight() > 0; i++) await sleep(50);
      expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
      expect(fs.logs.some((l) => l.includes('"status":500'))).toBe(false);
    } finally {
      session.destroy();
    }
  });

  it("answers an HTTP/2 body over the limit with 413, then closes the stream the client left open", async () => {
    const session = http2.connect(fs.url);
    session.on("error", () => {});
    try {
      for (const extra of [{}, { "content-length": "70000" }]) {
        const stream = session.request(h2Headers(extra));
        stream.on("error", () => {});
        let status = 0;
        let reason: unknown;
        let text = "";
        stream.on("response", (headers) => {
          status = Number(headers[":status"]);
          reason = headers["fieldseal-reason"];
        });
        stream.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
        });
        const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
        // More than the limit, and the client never ends its side.
        stream.write(Buffer.alloc(70_000, 0x61));
        const outcome = await Promise.race([closed.then(() => "closed"), sleep(10_000).then(() => "open")]);
        expect(outcome).toBe("closed");
        expect(status).toBe(413);
        expect(reason).toBe("too_large");
        expect(JSON.parse(text)).toMatchObject({ status: 413, code: "too_large" });
        expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      }
      for (let i = 0; i < 100 && fs.server.inFlight() > 0; i++) await sleep(50);
      expect(fs.server.inFlight()).toBe(0);
    } finally {
      session.destroy();
    }
  });
});

describe("multipart bodies cut off or left hanging", () => {
  let fs: TestFieldseal;
  const BOUNDARY = "cutBoundary";
  const complete =
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\ns-mp-cut\r\n` +
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="variables[credit_card]"\r\n\r\n${CARD}\r\n` +
    `--${BOUNDARY}--\r\n`;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [{ name: "bot", scopes: ["encrypt"] }],
      settings: { limits: { bodyTimeoutMs: 500 } },
    });
  });
  afterAll(async () => {
    await fs.close();
  });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const head = (length: number) =>
    "POST /webhooks/cognigy HTTP/1.1\r\nhost: x\r\n" +
    `content-type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
    `authorization: Bearer ${fs.tokens.bot}\r\nx-sensitive-metadata: field:credit_card\r\n` +
    `content-length: ${length}\r\n\r\n`;

  it("does not seal a complete-looking multipart body whose connection closed before its declared length", async () => {
    fs.audit.events.length = 0;
    const socket = netConnect(fs.port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(head(complete.length + 100) + complete);
    await sleep(200);
    socket.destroy();
    for (let i = 0; i < 100 && !fs.logs.some((l) => l.includes("client_closed_request")); i++)
      await sleep(50);
    expect(fs.logs.some((l) => l.includes("client_closed_request"))).toBe(true);
    expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
  });

  it("a half-open client holding a multipart body open is cut off by the body timeout, and the server stays healthy", async () => {
    fs.audit.events.length = 0;
    const socket = netConnect(fs.port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
    });
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(head(complete.length) + complete.slice(0, 60));
    // The body timeout is 500 ms; the connection must end well within 10 s.
    const ended = await Promise.race([closed.then(() => true), sleep(10_000).then(() => false)]);
    socket.destroy();
    expect(ended).toBe(true);
    expect(answer).not.toContain(CARD);
    expect(fs.audit.events.filter((e) => e.action === "encrypt")).toEqual([]);
    expect((await fetch(`${fs.url}/healthz`)).status).toBe(200);
  });
});
