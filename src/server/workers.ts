/**
 * `fieldseal serve --workers N`: one primary process that runs N server processes on one port with
 * node:cluster, and supervises them. The primary serves nothing itself; it forks the workers, forwards
 * SIGTERM/SIGINT (drain) and SIGHUP (reload) to every one, and starts a new worker when one dies.
 *
 * Why node:cluster rather than SO_REUSEPORT (`reusePort` of net.Server.listen): the primary is the
 * supervisor a worker pool needs anyway (signals, restarts), cluster shares a port-0 listener between
 * workers (each `listen(0)` gets the same port; Node docs, cluster, "server.listen(0)"), and its
 * round-robin scheduling (the default everywhere but Windows) spreads connections evenly even when there
 * are few of them, which the kernel's hash of SO_REUSEPORT does not. HTTP/2 and HTTP/1.1 keep-alive
 * connections are long-lived: a connection, not a call, is what gets distributed.
 *
 * Each worker is a separate process started with spawn (cluster.fork is child_process.fork: no memory is
 * copied), so each draws its own nonces from its own CSPRNG, and each reserves its own blocks of seals from
 * the key store with a compare-and-swap (src/keys/keyrings.ts): no two workers ever share a reservation.
 */
import cluster, { type Worker } from "node:cluster";
import { isWorkerPortClosed, PoolPortBarrier } from "./pool-port.js";

/** What a worker tells the primary once it listens. */
export interface WorkerListening {
  readonly fieldseal: "listening";
  readonly url: string;
  readonly store: string;
}

/** True for the message a worker sends when it listens. */
export function isWorkerListening(message: unknown): message is WorkerListening {
  const m = message as Partial<WorkerListening> | null;
  return (
    typeof m === "object" &&
    m !== null &&
    m.fieldseal === "listening" &&
    typeof m.url === "string" &&
    typeof m.store === "string"
  );
}

/** What the primary sends each listening worker every HEARTBEAT_MS, and the worker sends back. */
export interface WorkerHeartbeat {
  readonly fieldseal: "ping" | "pong";
}

/** True for the primary's heartbeat message. */
export function isHeartbeatPing(message: unknown): boolean {
  return (message as Partial<WorkerHeartbeat> | null)?.fieldseal === "ping";
}

const HEARTBEAT_MS = 1_000;
/**
 * A listening worker that has not answered a heartbeat for this long is hung (its event loop is stuck or
 * the process is stopped): the primary kills it and starts another, as for a worker that died. Round-robin
 * would otherwise keep handing it connections that are never answered.
 */
export const HUNG_AFTER_MS = 10_000;

/** Restarts allowed within RESTART_WINDOW_MS; one more and the primary stops every worker and exits 1. */
export const RESTART_LIMIT = 5;
export const RESTART_WINDOW_MS = 60_000;
/** After the drain grace, workers get this much longer to release the key store before SIGKILL. */
const KILL_MARGIN_MS = 5_000;

export interface WorkerPoolOptions {
  readonly count: number;
  /** How long in-flight calls may finish after SIGTERM (each worker's FIELDSEAL_SHUTDOWN_GRACE_MS). */
  readonly shutdownGraceMs: number;
  /** Called once, when every first-generation worker listens, with the URL they share. */
  readonly onListening: (url: string, store: string) => void;
  /** One line for a person (standard output) and one for a problem (standard error). */
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/**
 * Runs the worker pool in the primary until SIGTERM or SIGINT (exit code 0 when every worker drained and
 * exited 0), or until it cannot keep the pool up (1): a worker that fails before listening, or more than
 * RESTART_LIMIT restarts within RESTART_WINDOW_MS.
 */
export function runWorkerPool(options: WorkerPoolOptions): Promise<number> {
  const { count, out, err } = options;
  const live = new Set<Worker>();
  /** The URL each worker reported listening on. */
  const urls = new Map<Worker, string>();
  const restarts: number[] = [];
  let url: string | undefined;
  let stopping = false;
  let failed = false;
  let killTimer: NodeJS.Timeout | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  /** The port closes once every worker has closed its share; until then each holds its refusals. */
  const portBarrier = new PoolPortBarrier(() => live);
  /** When each listening worker last answered (or started listening). */
  const answered = new Map<Worker, number>();
  const heartbeat = setInterval(() => {
    if (stopping) return;
    const now = Date.now();
    for (const [worker, at] of answered) {
      if (now - at > HUNG_AFTER_MS) {
        err(
          `fieldseal: worker ${worker.process.pid} has not answered for ${HUNG_AFTER_MS / 1000} s (hung); killing it`,
        );
        answered.delete(worker);
        worker.process.kill("SIGKILL");
        continue;
      }
      if (worker.isConnected()) worker.send({ fieldseal: "ping" } satisfies WorkerHeartbeat);
    }
  }, HEARTBEAT_MS);

  const fork = (): void => {
    const worker = cluster.fork();
    live.add(worker);
    worker.on("message", (message: unknown) => {
      if ((message as Partial<WorkerHeartbeat> | null)?.fieldseal === "pong") {
        if (answered.has(worker)) answered.set(worker, Date.now());
        return;
      }
      if (isWorkerPortClosed(message)) {
        portBarrier.workerClosed(worker);
        return;
      }
      if (!isWorkerListening(message)) return;
      answered.set(worker, Date.now());
      urls.set(worker, message.url);
      if (url === undefined) {
        if (urls.size < count) return;
        const distinct = new Set(urls.values());
        if (distinct.size !== 1) {
          err(`fieldseal: workers listen on different addresses (${[...distinct].join(", ")}); stopping`);
          stopAll(true);
          return;
        }
        url = message.url;
        options.onListening(url, message.store);
        return;
      }
      if (message.url !== url) {
        err(`fieldseal: worker ${worker.process.pid} listens on ${message.url}, not ${url}; stopping`);
        stopAll(true);
        return;
      }
      out(`fieldseal: worker ${worker.process.pid} listening`);
    });
    worker.once("exit", (code, signal) => {
      live.delete(worker);
      urls.delete(worker);
      answered.delete(worker);
      portBarrier.exited(worker);
      if (stopping) {
        // Killed by the SIGTERM it was sent: it had not installed its handlers yet (still starting), so it
        // had nothing in flight. Any other way out but exit code 0 is a failure.
        if (code !== 0 && signal !== "SIGTERM") failed = true;
        if (live.size === 0) {
          if (killTimer) clearTimeout(killTimer);
          removeSignalHandlers();
          finish(failed ? 1 : 0);
        }
        return;
      }
      const how = signal ?? `exit code ${code}`;
      if (url === undefined) {
        err(`fieldseal: worker ${worker.process.pid} stopped before listening (${how}); stopping`);
        stopAll(true);
        return;
      }
      const now = Date.now();
      while (restarts.length > 0 && (restarts[0] ?? now) <= now - RESTART_WINDOW_MS) restarts.shift();
      if (restarts.length >= RESTART_LIMIT) {
        err(
          `fieldseal: worker ${worker.process.pid} stopped (${how}); ${RESTART_LIMIT} restarts within ${RESTART_WINDOW_MS / 1000} s already, stopping`,
        );
        stopAll(true);
        return;
      }
      restarts.push(now);
      err(`fieldseal: worker ${worker.process.pid} stopped (${how}); starting another`);
      fork();
    });
  };

  const stopAll = (asFailure: boolean): void => {
    if (asFailure) failed = true;
    if (stopping) return;
    stopping = true;
    portBarrier.stop();
    for (const worker of live) worker.process.kill("SIGTERM");
    killTimer = setTimeout(() => {
      for (const worker of live) worker.process.kill("SIGKILL");
    }, options.shutdownGraceMs + KILL_MARGIN_MS);
    if (live.size === 0) {
      removeSignalHandlers();
      finish(failed ? 1 : 0);
    }
  };

  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    out(
      `fieldseal: ${signal}: every worker finishes its in-flight calls (up to ${options.shutdownGraceMs} ms)`,
    );
    stopAll(false);
  };
  const onReload = (): void => {
    for (const worker of live) worker.process.kill("SIGHUP");
  };
  const removeSignalHandlers = (): void => {
    clearInterval(heartbeat);
    process.off("SIGTERM", onStop);
    process.off("SIGINT", onStop);
    process.off("SIGHUP", onReload);
  };
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  process.on("SIGHUP", onReload);
  for (let i = 0; i < count; i++) fork();
  return done;
}
