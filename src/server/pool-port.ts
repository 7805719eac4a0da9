/**
 * When the shared port of `serve --workers N` is really closed. In a cluster worker, net.Server.close() only
 * sends the primary a message ({act: 'close'}, lib/internal/cluster/child.js); the primary's round-robin
 * handle keeps accepting until it has read that message from every worker, and then closes the connections
 * it accepted and had not handed over yet (RoundRobinHandle.prototype.remove,
 * lib/internal/cluster/round_robin_handle.js). A connection it hands to a worker that has closed comes back
 * refused ({accepted: false}) and is queued again on a handle no worker takes from: it is reset when the
 * primary exits. So a worker holds the refusals of calls that came while draining (their clients would
 * reconnect at once) until the primary says the port of the whole pool is closed.
 *
 * The worker's message follows cluster's own close message on the same IPC channel, and the primary reads
 * them in order (handleMessage in lib/internal/child_process.js), so when the primary sees it, that worker's
 * share of the port is gone.
 */
import cluster, { type Worker } from "node:cluster";

/** What a worker sends once it has closed its share of the port. */
export interface WorkerPortClosed {
  readonly fieldseal: "port-closed";
}

/** What the primary answers once no worker listens any more (or at once, while the pool keeps serving). */
export interface PoolPortClosed {
  readonly fieldseal: "pool-port-closed";
}

/** True for a worker's message saying it closed its share of the port. */
export function isWorkerPortClosed(message: unknown): boolean {
  return (message as Partial<WorkerPortClosed> | null)?.fieldseal === "port-closed";
}

/**
 * Resolves once the port no longer takes connections anywhere: at once outside a cluster worker (the caller
 * has closed the only listening socket); in a worker, once the primary says so or is gone.
 */
export function poolPortClosed(): Promise<void> {
  const worker = cluster.worker;
  if (!cluster.isWorker || worker === undefined || !worker.isConnected()) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      process.off("message", onMessage);
      process.off("disconnect", done);
      resolve();
    };
    const onMessage = (message: unknown): void => {
      if ((message as Partial<PoolPortClosed> | null)?.fieldseal === "pool-port-closed") done();
    };
    process.on("message", onMessage);
    process.once("disconnect", done);
    process.send?.({ fieldseal: "port-closed" } satisfies WorkerPortClosed, undefined, {}, (e) => {
      if (e) done();
    });
  });
}

/**
 * The primary's side: collects the workers' "port-closed" and answers every one once each live worker has
 * sent it (while stopping), or the sender at once while the pool keeps serving (a worker drained alone:
 * the others still listen, so its clients' new connections go to them).
 */
export class PoolPortBarrier {
  private readonly closed = new Set<Worker>();
  private stopping = false;

  constructor(private readonly live: () => Iterable<Worker>) {}

  /** A worker said it closed its share of the port. */
  workerClosed(worker: Worker): void {
    if (!this.stopping) {
      send(worker);
      return;
    }
    this.closed.add(worker);
    this.check();
  }

  /** The pool is stopping: answer only once every live worker has closed its share. */
  stop(): void {
    this.stopping = true;
    this.check();
  }

  /** A worker exited: cluster removed its share of the port, so it no longer keeps the others waiting. */
  exited(worker: Worker): void {
    this.closed.delete(worker);
    this.check();
  }

  private check(): void {
    if (!this.stopping || this.closed.size === 0) return;
    const live = [...this.live()];
    if (!live.every((w) => this.closed.has(w))) return;
    for (const w of live) send(w);
    this.closed.clear();
  }
}

function send(worker: Worker): void {
  if (worker.isConnected()) worker.send({ fieldseal: "pool-port-closed" } satisfies PoolPortClosed);
}
