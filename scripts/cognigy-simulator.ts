/**
 * Starts the Cognigy.AI simulator by hand: `npm run simulator -- [port]`.
 * Node runs this file directly (type stripping), which is why the simulator imports nothing from gen/.
 */
import { startCognigySimulator } from "../test/support/cognigy-simulator.ts";

const port = Number(process.argv[2] ?? process.env.COGNIGY_SIMULATOR_PORT ?? 0);
const sim = await startCognigySimulator({ port });
process.stdout.write(
  `Cognigy simulator listening on ${sim.url}\n` +
    `  API key:      ${sim.apiKey}    (X-API-Key header or ?api_key=)\n` +
    `  Bearer token: ${sim.bearerToken}\n` +
    `  POST ${sim.url}/new/v2.0/sessions/<sessionId>/context/inject  {"userId": "...", "context": {...}}\n` +
    `  PUT  ${sim.url}/api/v1/sessions/<sessionId>/variables          {"variables": {...}}\n`,
);
const stop = (): void => {
  sim.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
