import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { CognigyAttemptEvent } from "./cognigy/client.js";
import type { KeyEvent } from "./keys/keyrings.js";

/** A primary version's share of its seal budget, as Keyrings knows it from cache. */
export interface PrimaryUsage {
  readonly keyring: string;
  readonly sealsReserved: number;
  readonly sealBudget: number;
}

/**
 * Fieldseal's Prometheus metrics in a registry of their own (never the global one, so two servers in one
 * process, as in tests, do not share counters).
 *
 * Labels come only from small fixed vocabularies (RPC names, error codes, store operations, rotation
 * reasons) or from keyring names an operator created. Nothing from a request's values or field names ever
 * becomes a label: that would leak data into monitoring and let a caller blow up the series count.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #rpcCalls = new Counter({
    name: "fieldseal_rpc_calls_total",
    help: "Finished RPCs by method and outcome code (ok, or the error's code)",
    labelNames: ["rpc", "code"] as const,
    registers: [this.registry],
  });
  readonly #rpcDuration = new Histogram({
    name: "fieldseal_rpc_duration_seconds",
    help: "Time from an RPC's arrival to its answer",
    labelNames: ["rpc"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly #fieldsSealed = new Counter({
    name: "fieldseal_fields_sealed_total",
    help: "Fields sealed (EncryptFields and the sealing half of RewrapFields)",
    registers: [this.registry],
  });
  readonly #fieldsOpened = new Counter({
    name: "fieldseal_fields_opened_total",
    help: "Fields opened (DecryptField(s) and the opening half of RewrapFields) by outcome code",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly #unerasableOpened = new Counter({
    name: "fieldseal_unerasable_values_opened_total",
    help:
      "Plain fs1 values opened on a keyring this server treats as erasable (ForgetScope cannot erase them): " +
      "sealed before the keyring was made erasable, or by a replica without FIELDSEAL_ERASABLE_KEYRINGS",
    labelNames: ["keyring"] as const,
    registers: [this.registry],
  });
  readonly #keyCache = new Counter({
    name: "fieldseal_key_cache_events_total",
    help: "Key lookups served from memory (hit) or needing the key store (miss)",
    labelNames: ["event"] as const,
    registers: [this.registry],
  });
  readonly #storeDuration = new Histogram({
    name: "fieldseal_key_store_duration_seconds",
    help: "Key store calls by operation",
    labelNames: ["op"] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly #storeErrors = new Counter({
    name: "fieldseal_key_store_errors_total",
    help: "Key store calls that failed, by operation",
    labelNames: ["op"] as const,
    registers: [this.registry],
  });
  readonly #rotations = new Counter({
    name: "fieldseal_key_rotations_total",
    help: "Key rotations this process made, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly #storeConflicts = new Counter({
    name: "fieldseal_key_material_conflicts_total",
    help:
      "Keyring states read from the key store and refused: kind=material (a version's material would change) " +
      "or kind=store (the store refused the stored value, e.g. a tutorial-shaped secret over a Fieldseal keyring)",
    labelNames: ["keyring", "kind"] as const,
    registers: [this.registry],
  });
  readonly #pushAttempts = new Counter({
    name: "fieldseal_push_attempts_total",
    help: "HTTP attempts to push into a Cognigy.AI session, by status class (2xx, 4xx, 5xx) or 'error'",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly #pushes = new Counter({
    name: "fieldseal_push_total",
    help: "Session pushes after all retries, by outcome code",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly #grpcFastPathCalls = new Counter({
    name: "fieldseal_grpc_fast_path_calls_total",
    help: "Unary gRPC calls the fast path took (the rest of the RPCs went through connect-node)",
    registers: [this.registry],
  });

  /**
   * @param primaryUsage read on each scrape; must answer from memory (a scrape must never reach the key
   *   store, or a slow store would make monitoring slow too).
   */
  constructor(primaryUsage: () => readonly PrimaryUsage[] = () => []) {
    new Gauge({
      name: "fieldseal_primary_seals_reserved_ratio",
      help: "Seals reserved under each keyring's primary version over the seal budget (rotation at 1)",
      labelNames: ["keyring"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const u of primaryUsage()) this.set({ keyring: u.keyring }, u.sealsReserved / u.sealBudget);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The interceptor's CallObserver. */
  readonly rpcFinished = (rpc: string, code: string, ms: number): void => {
    this.#rpcCalls.inc({ rpc, code });
    this.#rpcDuration.observe({ rpc }, ms / 1000);
  };

  fieldsSealed(count: number): void {
    this.#fieldsSealed.inc(count);
  }

  fieldOpened(outcome: string): void {
    this.#fieldsOpened.inc({ outcome });
  }

  unerasableOpened(keyring: string): void {
    this.#unerasableOpened.inc({ keyring });
  }

  /** Keyrings' onEvent. */
  readonly keyEvent = (e: KeyEvent): void => {
    switch (e.type) {
      case "cache_hit":
      case "cache_miss":
        this.#keyCache.inc({ event: e.type === "cache_hit" ? "hit" : "miss" });
        return;
      case "store_call":
        this.#storeDuration.observe({ op: e.op }, e.ms / 1000);
        if (!e.ok) this.#storeErrors.inc({ op: e.op });
        return;
      case "rotated":
        this.#rotations.inc({ reason: e.reason });
        return;
      case "store_conflict":
        this.#storeConflicts.inc({ keyring: e.keyring, kind: e.kind });
        return;
      case "seal_block_reserved":
        // The ratio gauge reads Keyrings' cached state on scrape; nothing to count here.
        return;
      case "created":
      case "destroyed":
      case "store_conflict_cleared":
        // Logged and audited; rare operator events, not worth a series of their own.
        return;
    }
  };

  /** The Cognigy client's onAttempt. */
  readonly pushAttempt = (e: CognigyAttemptEvent): void => {
    this.#pushAttempts.inc({ outcome: e.status === undefined ? "error" : `${Math.floor(e.status / 100)}xx` });
  };

  pushFinished(outcome: string): void {
    this.#pushes.inc({ outcome });
  }

  /** One call taken by the gRPC fast path (FIELDSEAL_GRPC_FAST_PATH). */
  grpcFastPathCall(): void {
    this.#grpcFastPathCalls.inc();
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
