/**
 * Starts the Cognigy.AI simulator by hand: `npm run simulator -- [port]`.
 * Node runs this file directly (type stripping), which is why the simulator imports nothing from gen/.
 * COGNIGY_SIMULATOR_RATE_LIMIT and COGNIGY_SIMULATOR_RATE_WINDOW_SEC change its per-IP rate limit
 * (default 1000 requests per 300 s, Cognigy's shared SaaS limit).
 */
import { startCognigySimulator } from "../test/support/cognigy-simulator.ts";

const port = Number(process.argv[2] ?? process.env.COGNIGY_SIMULATOR_PORT ?? 0);
const limit = Number(process.env.COGNIGY_SIMULATOR_RATE_LIMIT ?? 1000);
const windowSec = Number(process.env.COGNIGY_SIMULATOR_RATE_WINDOW_SEC ?? 300);
for (const [name, value] of [
  ["COGNIGY_SIMULATOR_RATE_LIMIT", limit],
  ["COGNIGY_SIMULATOR_RATE_WINDOW_SEC", windowSec],
] as const) {
  if (!Number.isSafeInteger(value) || value <= 0) {
    process.stderr.write(`${name} must be a positive whole number\n`);
    process.exit(2);
  }
}
const sim = await startCognigySimulator({ port, rateLimit: { limit, windowSec } });
process.stdout.write(
  `Cognigy simulator listening on ${sim.url}\n` +
    `  API key:      ${sim.apiKey}    (X-API-Key header or ?api_key=)\n` +
    `  Bearer token: ${sim.bearerToken}\n` +
    `  POST ${sim.url}/new/v2.0/sessions/<sessionId>/context/inject  {"userId": "...", "context": {...}}\n` +
    `  PUT  ${sim.url}/api/v1/sessions/<sessionId>/variables          {"variables": {...}}  (tutorial only)\n` +
    `  Rate limit:   ${limit} requests per ${windowSec} s per client IP (429 with Retry-After)\n`,
);
const stop = (): void => {
  sim.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
