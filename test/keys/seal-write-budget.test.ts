import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isFieldsealError } from "../../src/errors.js";
import {
  DEFAULT_SEAL_BUDGET,
  DEFAULT_STORE_WRITES_PER_DAY,
  type KeyEvent,
  Keyrings,
  type KeyringsOptions,
} from "../../src/keys/keyrings.js";
import type { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { manualClock, sealLoad } from "./seal-load.js";
import { tempStore } from "./support.js";

const DAY_S = 86_400;
const HOUR_S = 3_600;

describe("seal blocks within the store's daily write budget", () => {
  let store: LocalFileKeyStore;
  let cleanup: () => Promise<void>;
  const open: Keyrings[] = [];
  const keyrings = (options: KeyringsOptions) => {
    const k = new Keyrings(store, options);
    open.push(k);
    return k;
  };
  /** Store writes so far: every successful compare-and-swap moves the revision by exactly one. */
  const writes = async () => (await store.load("busy"))?.revision ?? 0;

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore());
  });
  afterEach(async () => {
    for (const k of open.splice(0)) await k.close();
    await cleanup();
  });

  it("writes at most the daily budget at 2,000 seals/s for a day, an on-demand rotation included", async () => {
    const time = manualClock();
    const events: KeyEvent[] = [];
    const k = keyrings({ now: time.now, onEvent: (e) => events.push(e) });
    const used = await sealLoad([k], time, { keyring: "busy", perSecond: [2_000], seconds: DAY_S / 2 });
    await k.rotate("busy");
    await sealLoad([k], time, { keyring: "busy", perSecond: [2_000], seconds: DAY_S / 2, used });
    const w = await writes();
    // A fixed block of 65,536 would have written 2,637 times (172.8 million seals).
    expect(w).toBeLessThanOrEqual(DEFAULT_STORE_WRITES_PER_DAY);
    // The steady state is one reservation every 1.5 h (a third of the budget), plus start-up and the rotation.
    expect(w).toBeGreaterThanOrEqual(16);
    const state = await store.load("busy");
    for (const [version, count] of used) {
      expect(count).toBeLessThanOrEqual(state?.versions[version - 1]?.sealsReserved ?? 0);
    }
    const blocks = events.flatMap((e) => (e.type === "seal_block_reserved" ? [e.count] : []));
    expect(blocks[0]).toBe(65_536);
    // Sized for 1.5 h at 2,000/s (10.8 million seals); larger right after the rotation, which counted as
    // another write in the interval.
    const steady = blocks.filter((b) => b > 10_500_000 && b < 11_100_000);
    expect(steady.length).toBeGreaterThan(10);
    expect(Math.max(...blocks)).toBeLessThan(22_000_000);
  });

  it("stays within the budget when the rate jumps 200-fold and falls back, usage rotations included", async () => {
    const time = manualClock();
    const events: KeyEvent[] = [];
    const k = keyrings({ now: time.now, onEvent: (e) => events.push(e) });
    const used = await sealLoad([k], time, { keyring: "busy", perSecond: [100], seconds: 6 * HOUR_S });
    // An encrypt-only caller sending 1,000-field batches as fast as a replica seals (bench: ~72,000 fields/s
    // at 100 fields per call), then quiet again.
    await sealLoad([k], time, { keyring: "busy", perSecond: [20_000], seconds: 6 * HOUR_S, used });
    await sealLoad([k], time, { keyring: "busy", perSecond: [100], seconds: 12 * HOUR_S, used });
    expect(await writes()).toBeLessThanOrEqual(DEFAULT_STORE_WRITES_PER_DAY);
    // 432 million seals in the burst: more than one version's budget, so it rotated by usage.
    const rotations = events.filter((e) => e.type === "rotated" && e.reason === "usage");
    expect(rotations.length).toBeGreaterThanOrEqual(1);
    const state = await store.load("busy");
    for (const v of state?.versions ?? []) expect(v.sealsReserved).toBeLessThanOrEqual(DEFAULT_SEAL_BUDGET);
    for (const [version, count] of used) {
      expect(count).toBeLessThanOrEqual(state?.versions[version - 1]?.sealsReserved ?? 0);
    }
    // After the burst, blocks shrink by at most half per reservation.
    const blocks = events.flatMap((e) => (e.type === "seal_block_reserved" ? [e.count] : []));
    for (let i = 1; i < blocks.length; i++) {
      expect(blocks[i]).toBeGreaterThanOrEqual(Math.min(65_536, (blocks[i - 1] ?? 0) / 2) - 1);
    }
  });

  it("shares the budget: three replicas sealing 1,000/s each write at most the budget together", async () => {
    const time = manualClock();
    const replicas = [0, 1, 2].map(() => keyrings({ now: time.now }));
    await sealLoad(replicas, time, { keyring: "busy", perSecond: [1_000, 1_000, 1_000], seconds: DAY_S });
    expect(await writes()).toBeLessThanOrEqual(DEFAULT_STORE_WRITES_PER_DAY);
  });

  it("follows a configured budget: 12 writes a day", async () => {
    const time = manualClock();
    const k = keyrings({ now: time.now, storeWritesPerDay: 12 });
    await sealLoad([k], time, { keyring: "busy", perSecond: [500], seconds: DAY_S });
    expect(await writes()).toBeLessThanOrEqual(12);
  });

  it("never reserves more than half the seal budget, nor more than the version has left", async () => {
    const time = manualClock();
    const events: KeyEvent[] = [];
    const budget = 2 ** 20;
    const k = keyrings({
      now: time.now,
      policy: { sealBudget: budget },
      sealBlockSize: 1_000,
      onEvent: (e) => events.push(e),
    });
    const used = await sealLoad([k], time, { keyring: "busy", perSecond: [5_000], seconds: 2 * HOUR_S });
    const blocks = events.flatMap((e) => (e.type === "seal_block_reserved" ? [e.count] : []));
    expect(Math.max(...blocks)).toBe(budget / 2);
    const state = await store.load("busy");
    expect(state?.versions.length).toBeGreaterThan(30);
    for (const v of state?.versions ?? []) expect(v.sealsReserved).toBeLessThanOrEqual(budget);
    for (const [version, count] of used) {
      expect(count).toBeLessThanOrEqual(state?.versions[version - 1]?.sealsReserved ?? 0);
    }
    // The remainder of a version is reserved when it is at least the smallest block: some blocks are odd sizes.
    expect(blocks.some((b) => b !== budget / 2 && b !== 1_000 && b < budget / 4)).toBe(true);
  });

  it("eight replicas share a version without a storm: rotations only as fast as the seals need", async () => {
    // Blocks of all replicas must fit in one version together. When they did not (each up to a quarter of
    // the budget, eight replicas), reservations exhausted each version at once, rotated it, abandoned every
    // other replica's block and started over: hundreds of rotations a day instead of six.
    const time = manualClock();
    const budget = 2 ** 24;
    const replicas = Array.from({ length: 8 }, () =>
      keyrings({ now: time.now, policy: { sealBudget: budget }, sealBlockSize: 1_000 }),
    );
    const seconds = DAY_S;
    const used = await sealLoad(replicas, time, {
      keyring: "busy",
      perSecond: replicas.map(() => 125),
      seconds,
    });
    const state = await store.load("busy");
    const needed = Math.ceil((1_000 * seconds) / budget);
    // Seals reserved by other replicas are abandoned at each rotation: some waste, bounded.
    expect(state?.versions.length).toBeLessThanOrEqual(3 * needed);
    for (const v of state?.versions ?? []) expect(v.sealsReserved).toBeLessThanOrEqual(budget);
    for (const [version, count] of used) {
      expect(count).toBeLessThanOrEqual(state?.versions[version - 1]?.sealsReserved ?? 0);
    }
  });

  it("reserves hardly more than a one-shot command seals, however fast it sealed", async () => {
    // `fieldseal seal` reserves with blocks of 1. Its one seal a millisecond after start reads as 1,000 seals/s;
    // without a bound on growth, the block reserved ahead would be 1.5 hours of that: 5.4 million seals lost.
    const time = manualClock();
    await new Keyrings(store).create("busy");
    for (let run = 0; run < 3; run++) {
      const k = new Keyrings(store, { now: time.now, sealBlockSize: 1 });
      await k.sealingKey("busy");
      time.set(time.now() + 1);
      await k.sealingKey("busy");
      await k.close();
    }
    // Per run: a block of 1, then blocks of at most 64 times the seals taken.
    const reserved = (await store.load("busy"))?.versions[0]?.sealsReserved ?? 0;
    expect(reserved).toBeGreaterThanOrEqual(6);
    expect(reserved).toBeLessThanOrEqual(3 * (1 + 64 + 64));
  });

  it("refuses a write budget that is not a positive whole number", () => {
    for (const storeWritesPerDay of [0, -1, 1.5, Number.NaN]) {
      let caught: unknown;
      try {
        new Keyrings(store, { storeWritesPerDay });
      } catch (err) {
        caught = err;
      }
      expect(isFieldsealError(caught, "invalid_argument")).toBe(true);
    }
  });
});
