/**
 * A loopback HTTP proxy in front of moto that answers Secrets Manager writes as AWS answers a caller whose
 * IAM role lacks the permission (HTTP 400, `AccessDeniedException`, AWS JSON protocol), and forwards
 * everything else. A test can refuse and allow writes at will, as an operator fixing a policy would.
 */
import { createServer, request } from "node:http";

/** The Secrets Manager actions that change a secret. */
const WRITES = new Set([
  "secretsmanager.PutSecretValue",
  "secretsmanager.CreateSecret",
  "secretsmanager.UpdateSecret",
  "secretsmanager.UpdateSecretVersionStage",
]);

export interface WriteRefusingProxy {
  /** `http://127.0.0.1:<port>`: the endpoint the client under test is given. */
  readonly url: string;
  /** Whether writes are refused now. Default true. */
  refuseWrites: boolean;
  /** How many writes were refused so far. */
  readonly refused: number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (any free port), forwarding to `target` (moto's endpoint). */
export async function startWriteRefusingProxy(target: string): Promise<WriteRefusingProxy> {
  const upstream = new URL(target);
  let refused = 0;
  const state = { refuseWrites: true };
  const server = createServer((req, res) => {
    const action = String(req.headers["x-amz-target"] ?? "");
    if (state.refuseWrites && WRITES.has(action)) {
      refused++;
      req.resume();
      const body = JSON.stringify({
        __type: "AccessDeniedException",
        Message: `User is not authorized to perform: ${action.replace(".", ":")}`,
      });
      res.writeHead(400, {
        "content-type": "application/x-amz-json-1.1",
        "x-amzn-errortype": "AccessDeniedException",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    const forward = request(
      {
        host: "127.0.0.1",
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    get refuseWrites() {
      return state.refuseWrites;
    },
    set refuseWrites(value: boolean) {
      state.refuseWrites = value;
    },
    get refused() {
      return refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
