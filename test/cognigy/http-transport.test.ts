import * as http from "node:http";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { keepAliveTransport } from "../../src/cognigy/http-transport.js";
import { freePort } from "../support/moto.js";

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A raw TCP server that answers every connection with `reply` (bytes written as they are). */
async function rawServer(reply: (socket: net.Socket) => void): Promise<string> {
  const server = net.createServer((socket) => socket.once("data", () => reply(socket)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

const init = (signal = new AbortController().signal) => ({
  method: "PUT",
  headers: { "content-type": "application/json" },
  body: '{"variables":{}}',
  signal,
});

describe("keepAliveTransport", () => {
  it("sends the body with its length and returns status, headers and text over one kept-alive connection", async () => {
    const connections = new Set<net.Socket>();
    const seen: Array<{ method?: string; length?: string; body: string }> = [];
    const server = http.createServer((req, res) => {
      connections.add(req.socket);
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        seen.push({ method: req.method, length: req.headers["content-length"], body });
        res.writeHead(201, { "x-trace-id": "t-1", "content-type": "application/json" });
        res.end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/api/v1/sessions/s/variables`;
    const send = keepAliveTransport();
    for (let i = 0; i < 3; i++) {
      const res = await send(url, init());
      expect(res.status).toBe(201);
      expect(res.headers.get("X-Trace-Id")).toBe("t-1");
      expect(res.headers.get("retry-after")).toBeNull();
      expect(await res.text()).toBe('{"ok":true}');
    }
    expect(seen).toEqual(Array(3).fill({ method: "PUT", length: "16", body: '{"variables":{}}' }));
    expect(connections.size).toBe(1);
    for (const s of connections) s.destroy();
  });

  it("fails with ECONNRESET when the answer is cut short", async () => {
    const url = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"par');
      setTimeout(() => socket.destroy(), 10);
    });
    await expect(keepAliveTransport()(url, init())).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("cuts an answer larger than the limit instead of buffering it", async () => {
    const url = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n${"x".repeat(4096)}`);
    });
    await expect(keepAliveTransport({ maxResponseBytes: 1024 })(url, init())).rejects.toMatchObject({
      code: "ERESPONSETOOLARGE",
    });
  });

  it("rejects with the signal's reason when the exchange is aborted, as fetch does", async () => {
    const url = await rawServer(() => {
      // never answers
    });
    const signal = AbortSignal.timeout(50);
    await expect(keepAliveTransport()(url, init(signal))).rejects.toMatchObject({ name: "TimeoutError" });
    const aborted = new AbortController();
    aborted.abort(new Error("gone"));
    await expect(keepAliveTransport()(url, init(aborted.signal))).rejects.toThrow("gone");
  });

  it("reports a refused connection by its system code", async () => {
    const port = await freePort();
    await expect(keepAliveTransport()(`http://127.0.0.1:${port}/`, init())).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  it("returns a redirect as the answer instead of following it", async () => {
    const url = await rawServer((socket) => {
      socket.write(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n",
      );
    });
    const res = await keepAliveTransport()(url, init());
    expect(res.status).toBe(307);
    expect(res.headers.get("location")).toBe("http://127.0.0.1:9/elsewhere");
  });

  it("refuses other schemes", async () => {
    await expect(keepAliveTransport()("ftp://127.0.0.1/", init())).rejects.toThrow(TypeError);
  });
});
