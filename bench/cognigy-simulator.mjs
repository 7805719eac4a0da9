/**
 * The Cognigy.AI simulator for the end-to-end bench, in its own process: the test suite's simulator with
 * its defaults (idempotency keys honoured...) except the rate limit, which the bench lifts so that neither
 * design is throttled. Prints "cognigy simulator listening on <url>".
 */
import { startCognigySimulator } from "../test/support/cognigy-simulator.ts";

const sim = await startCognigySimulator({ rateLimit: { limit: Number.MAX_SAFE_INTEGER, windowSec: 1 } });
// The simulator keeps every request for tests to inspect; the bench only needs the counts.
setInterval(() => sim.requests.splice(0, sim.requests.length), 1000).unref();
process.stdout.write(`cognigy simulator listening on ${sim.url} ${sim.bearerToken}\n`);
const stop = () => void sim.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
