/**
 * The end-to-end part's ceiling reference, always run in its own process: the least a Node process can do
 * for the webhook flow. It reads the webhook, parses the JSON, seals each flagged field with AES-256-GCM
 * under one key held in memory (no key store, no AAD rules, no envelope checks), PUTs the result to the
 * Cognigy simulator over a keep-alive connection and answers with the sealed values. No authentication,
 * validation, audit, metrics, retries or idempotency. What the load generator reaches against it is the
 * most this machine can show for the flow, simulator and load generator included.
 * Usage: node bench/bare-webhook.mjs <cognigy base url> <bearer> (prints the port, serves until killed).
 */
import { createCipheriv, randomBytes } from "node:crypto";
import http from "node:http";

const [cognigy, bearer] = process.argv.slice(2);
const key = randomBytes(32);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function seal(value) {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const ct = Buffer.concat([cipher.update(JSON.stringify(value)), cipher.final(), cipher.getAuthTag()]);
  return `fs1.default.1.${Buffer.concat([nonce, ct]).toString("base64url")}`;
}

function put(sessionId, variables) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ variables });
    const req = http.request(
      `${cognigy}/api/v1/sessions/${encodeURIComponent(sessionId)}/variables`,
      {
        method: "PUT",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${bearer}`,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    try {
      const payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const fields = String(req.headers["x-sensitive-metadata"] ?? "")
        .split(",")
        .map((f) => f.trim().replace(/^field:/, ""));
      const variables = {};
      for (const name of fields) {
        variables[`__enc_${name}`] = seal(payload.variables[name]);
        variables[name] = null;
      }
      const status = await put(payload.sessionId, variables);
      const text = JSON.stringify({
        sessionId: payload.sessionId,
        variables,
        pushed: { httpStatus: status },
      });
      res.writeHead(status < 300 ? 200 : 502, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    } catch {
      res.writeHead(500);
      res.end();
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`bare webhook listening on ${server.address().port}`));
