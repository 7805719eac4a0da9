import { EventEmitter, on } from "node:events";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";

/**
 * Serving status per service name ("" is the server as a whole), shared by grpc.health.v1 and the HTTP
 * /readyz endpoint so that both always agree.
 */
export class HealthStatus {
  readonly #statuses = new Map<string, Status>();
  readonly #changes = new EventEmitter();

  constructor(services: readonly string[]) {
    this.#changes.setMaxListeners(0);
    for (const name of ["", ...services]) this.#statuses.set(name, Status.NOT_SERVING);
  }

  /** Sets every known service's status. */
  setAll(status: Status): void {
    for (const name of this.#statuses.keys()) this.set(name, status);
  }

  set(service: string, status: Status): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    this.#changes.emit("change", service, status);
  }

  get(service: string): Status | undefined {
    return this.#statuses.get(service);
  }

  all(): ReadonlyMap<string, Status> {
    return this.#statuses;
  }

  /** Yields each change of `service`'s status until `signal` aborts. */
  async *changes(service: string, signal: AbortSignal): AsyncGenerator<Status> {
    try {
      for await (const [name, status] of on(this.#changes, "change", { signal })) {
        if (name === service) yield status as Status;
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}

/**
 * grpc.health.v1.Health over a HealthStatus. `refresh` runs before Check and List answer, as before
 * /readyz answers: a probe that only ever calls Check (the kubelet's gRPC probe) must see a status that
 * clears by itself, not one that waits for some other caller to re-examine it.
 */
export function createHealthService(
  health: HealthStatus,
  refresh: () => void = () => {},
): ServiceImpl<typeof Health> {
  return {
    check(req) {
      refresh();
      const status = health.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status };
    },
    list() {
      refresh();
      return { statuses: Object.fromEntries([...health.all()].map(([name, status]) => [name, { status }])) };
    },
    async *watch(req, ctx) {
      let last = health.get(req.service) ?? Status.SERVICE_UNKNOWN;
      yield { status: last };
      for await (const status of health.changes(req.service, ctx.signal)) {
        if (status === last) continue;
        last = status;
        yield { status };
      }
    },
  };
}

export { Status as ServingStatus };
