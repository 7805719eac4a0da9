/**
 * A loopback TCP proxy that holds back everything the upstream answers for a fixed delay before passing it
 * on: a slow Fieldseal, as a node sees one, without changing the server.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface DelayingProxy {
  readonly url: string;
  close(): Promise<void>;
}

/** Proxies 127.0.0.1:<any> to 127.0.0.1:`targetPort`, delaying each chunk of the answer by `delayMs`. */
export async function startDelayingProxy(targetPort: number, delayMs: number): Promise<DelayingProxy> {
  const open = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!client.destroyed) client.write(chunk);
      }, delayMs);
      timers.add(timer);
    });
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("proxy has no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
