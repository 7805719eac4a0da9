import { randomUUID } from "node:crypto";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { describe, expect, inject, it } from "vitest";
import { DEFAULT_STORE_WRITES_PER_DAY, type KeyEvent, Keyrings } from "../../src/keys/keyrings.js";
import { SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import { motoClient } from "../support/moto.js";
import { manualClock, sealLoad } from "./seal-load.js";

const endpoint = inject("motoEndpoint");
const KEYRING = "busy";
const HOUR_S = 3_600;

/** Counts the calls that create a secret version, at the SDK client, for one secret. */
function countVersionWrites(client: SecretsManagerClient, secretId: string) {
  const counts = { PutSecretValueCommand: 0, CreateSecretCommand: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { SecretId?: string; Name?: string };
      const command = context.commandName as keyof typeof counts;
      if (command in counts && (input.SecretId ?? input.Name) === secretId) counts[command]++;
      return next(args);
    },
    { step: "initialize", name: "countVersionWrites" },
  );
  return counts;
}

describe("seal reservations on Secrets Manager stay within the daily write budget", () => {
  it("two replicas sealing 5,000/s each for a simulated day, a 1,000-field-batch burst and a rotation: at most 48 new secret versions", async () => {
    const secretPrefix = `budget-${randomUUID()}/`;
    const clock = manualClock();
    const replicas = [0, 1].map(() => {
      const client = motoClient(endpoint);
      const counts = countVersionWrites(client, `${secretPrefix}${KEYRING}`);
      const events: KeyEvent[] = [];
      const store = new SecretsManagerKeyStore({ client, secretPrefix });
      const keyrings = new Keyrings(store, { now: clock.now, onEvent: (e) => events.push(e) });
      return { client, counts, events, keyrings };
    });
    const both = replicas.map((r) => r.keyrings);
    try {
      const used = await sealLoad(both, clock, {
        keyring: KEYRING,
        perSecond: [5_000, 5_000],
        seconds: 11 * HOUR_S,
      });
      // An encrypt-only caller drives one replica at 60,000 fields/s (1,000-field calls) for an hour.
      await sealLoad(both, clock, { keyring: KEYRING, perSecond: [60_000, 5_000], seconds: HOUR_S, used });
      await replicas[1]?.keyrings.rotate(KEYRING);
      await sealLoad(both, clock, {
        keyring: KEYRING,
        perSecond: [5_000, 5_000],
        seconds: 12 * HOUR_S,
        used,
      });

      const puts = replicas.reduce((n, r) => n + r.counts.PutSecretValueCommand, 0);
      const creates = replicas.reduce((n, r) => n + r.counts.CreateSecretCommand, 0);
      // About 1.06 billion seals: fixed blocks of 65,536 would have made about 16,000 new versions.
      expect(puts + creates).toBeLessThanOrEqual(DEFAULT_STORE_WRITES_PER_DAY);
      expect(creates).toBeGreaterThanOrEqual(1);

      const state = await new SecretsManagerKeyStore({ client: replicas[0]?.client, secretPrefix }).load(
        KEYRING,
      );
      // Every landed write is one revision; failed compare-and-swaps may have put a version that lost.
      expect(state?.revision).toBeLessThanOrEqual(puts + creates);
      // One version's budget (2^28) is smaller than the day's seals: the usage rotations are in the count too.
      expect(state?.versions.length).toBeGreaterThanOrEqual(4);
      for (const [version, count] of used) {
        const reserved = state?.versions[version - 1]?.sealsReserved ?? 0;
        expect(count).toBeLessThanOrEqual(reserved);
        expect(reserved).toBeLessThanOrEqual(2 ** 28);
      }
    } finally {
      for (const r of replicas) await r.keyrings.close();
      for (const r of replicas) r.client.destroy();
    }
  }, 120_000);
});
