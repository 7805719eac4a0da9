/** A simulated sealing load over Keyrings with an injected clock: each call happens at its own instant. */
import type { Keyrings } from "../../src/keys/keyrings.js";

/** A clock the test moves by hand. */
export interface ManualClock {
  now: () => number;
  set: (ms: number) => void;
}

export function manualClock(start = Date.parse("2026-12-01T00:00:00Z")): ManualClock {
  let now = start;
  return {
    now: () => now,
    set: (ms) => {
      now = ms;
    },
  };
}

/**
 * Seals on `replicas[i]` at `perSecond[i]` seals a second for `seconds` of simulated time, in calls of `batch`
 * seals (an EncryptFields call with that many fields), spread evenly: the clock is set to each call's
 * instant. Lets background work reach the store once per simulated 10 s. Adds what each version handed out
 * to `used`.
 */
export async function sealLoad(
  replicas: readonly Keyrings[],
  clock: ManualClock,
  o: {
    keyring: string;
    perSecond: readonly number[];
    seconds: number;
    batch?: number;
    used?: Map<number, number>;
  },
): Promise<Map<number, number>> {
  if (o.perSecond.length !== replicas.length) throw new Error("one rate per replica");
  const batch = o.batch ?? 1_000;
  const used = o.used ?? new Map<number, number>();
  const start = clock.now();
  const end = start + o.seconds * 1_000;
  const gap = replicas.map((_, i) => (batch * 1_000) / (o.perSecond[i] ?? 0));
  const next = replicas.map((_, i) => start + (gap[i] ?? 0) * ((i + 1) / (replicas.length + 1)));
  let yieldAt = start + 10_000;
  // Sealing never creates a keyring: create it (or find it) as an operator would, before the load.
  await (replicas[0] as Keyrings).ensure(o.keyring);
  for (;;) {
    let i = 0;
    for (let j = 1; j < next.length; j++) if ((next[j] ?? end) < (next[i] ?? end)) i = j;
    const at = next[i] ?? end;
    if (at >= end) break;
    if (at >= yieldAt) {
      yieldAt += 10_000;
      await new Promise((resolve) => setImmediate(resolve));
    }
    clock.set(at);
    const { version } = await (replicas[i] as Keyrings).sealingKey(o.keyring, batch);
    used.set(version, (used.get(version) ?? 0) + batch);
    next[i] = at + (gap[i] ?? end);
  }
  clock.set(end);
  return used;
}
