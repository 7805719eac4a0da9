import { describe, expect, it } from "vitest";
import { decodeKeyring, encodeKeyring } from "../../src/keys/keyring-codec.js";
import {
  keyringStateProblem,
  successorProblem,
  versionChangeProblem,
  withNewPrimary,
  withVersionsDestroyed,
} from "../../src/keys/keyring-state.js";
import type { KeyringState } from "../../src/keys/types.js";
import { keyringState } from "./key-store-contract.js";

const NOW = Date.parse("2026-12-04T12:00:00.000Z");

/** `count` versions, all retired below `min`. */
function retired(count: number, min: number): KeyringState {
  return { ...keyringState("payments", 1, count), minDecryptVersion: min };
}

describe("tombstones of destroyed versions", () => {
  it("round-trips through the codec as format 2 with one compact entry per destruction", () => {
    const once = withVersionsDestroyed(retired(10, 6), 6, NOW) as KeyringState;
    const twice = withVersionsDestroyed({ ...once, minDecryptVersion: 8 }, 8, NOW + 1) as KeyringState;
    const text = encodeKeyring(twice);
    const raw = JSON.parse(text) as Record<string, unknown>;
    expect(raw.format).toBe("fieldseal-keyring/2");
    expect(raw.destroyed).toEqual([
      { through: 5, at: "2026-12-04T12:00:00.000Z" },
      { through: 7, at: "2026-12-04T12:00:00.001Z" },
    ]);
    const decoded = decodeKeyring(text, "payments");
    expect(decoded).toEqual(twice);
    expect(decoded.versions.map((v) => v.version)).toEqual([8, 9, 10]);
    // A keyring that never destroyed anything keeps format 1, byte for byte as before.
    expect(JSON.parse(encodeKeyring(retired(3, 1))).format).toBe("fieldseal-keyring/1");
  });

  it("refuses malformed tombstones in stored text without quoting it", () => {
    const good = JSON.parse(encodeKeyring(withVersionsDestroyed(retired(4, 3), 3, NOW) as KeyringState));
    const cases: Array<Record<string, unknown>> = [
      { ...good, destroyed: [] },
      { ...good, destroyed: [{ through: "2", at: "x" }] },
      { ...good, destroyed: [{ through: 3, at: "2026-12-04T12:00:00.000Z" }] },
      { ...good, destroyed: [{ through: 2, at: "not a time" }] },
      { ...good, format: "fieldseal-keyring/1" },
      { ...good, destroyed: undefined },
    ];
    for (const bad of cases) {
      expect(() => decodeKeyring(JSON.stringify(bad), "payments")).toThrow(
        /stored keyring "payments" is malformed/,
      );
    }
  });

  it("allows destroying only below the minimum decryption version, and never any other change of material", () => {
    const base = retired(6, 4);
    const destroyed = withVersionsDestroyed(base, 4, NOW) as KeyringState;
    expect(successorProblem(base, destroyed)).toBeUndefined();
    // At or above the minimum: not a legal state.
    const tooFar = withVersionsDestroyed(base, 5, NOW) as KeyringState;
    expect(keyringStateProblem(tooFar)).toMatch(/minimum decryption version/);
    expect(successorProblem(base, tooFar)).toBeDefined();
    // Resurrection of destroyed material.
    expect(versionChangeProblem(destroyed, { ...base, revision: 3 })).toMatch(/restore destroyed/);
    // Changed material of a retired (not destroyed) version.
    const changed: KeyringState = {
      ...base,
      revision: 2,
      versions: base.versions.map((v) => (v.version === 2 ? { ...v, material: new Uint8Array(32) } : v)),
    };
    expect(successorProblem(base, changed)).toBe("it would change the material of version 2");
    // Rewriting an earlier tombstone's time.
    const later = withVersionsDestroyed({ ...withNewPrimary(destroyed, NOW), minDecryptVersion: 5 }, 5, NOW);
    const rewritten = {
      ...(later as KeyringState),
      destroyed: [
        { from: 1, through: 3, destroyedAt: "2020-01-01T00:00:00.000Z" },
        ...(later?.destroyed ?? []).slice(1),
      ],
    };
    expect(successorProblem(withNewPrimary(destroyed, NOW), rewritten as KeyringState)).toBeDefined();
    // Nothing to destroy: no new state.
    expect(withVersionsDestroyed(destroyed, 4, NOW)).toBeUndefined();
    expect(withVersionsDestroyed(base, 1, NOW)).toBeUndefined();
  });

  it("gives the size arithmetic of docs/keys.md", () => {
    let state: KeyringState = { ...keyringState("payments", 1, 1), versions: [] };
    state = withNewPrimary({ ...state, primary: 0 }, NOW);
    for (let i = 0; i < 99; i++) {
      state = withNewPrimary(state, NOW);
      // Realistic seal counts: a full 2^28 budget reserved on every version.
      state = {
        ...state,
        versions: state.versions.map((v) => ({ ...v, sealsReserved: 268_435_456 })),
      };
    }
    const writer = "00000000-0000-4000-8000-000000000000";
    const hundredText = encodeKeyring(state, writer);
    const hundred = Buffer.byteLength(hundredText);
    const entries = (JSON.parse(hundredText).versions as unknown[]).map((v) =>
      Buffer.byteLength(JSON.stringify(v)),
    );
    const perVersion = entries.reduce((a, b) => a + b + 1, 0) / entries.length;
    const withTombstone = withVersionsDestroyed({ ...state, minDecryptVersion: 91 }, 91, NOW) as KeyringState;
    const ten = Buffer.byteLength(encodeKeyring(withTombstone, writer));
    const removed = entries.slice(0, 90).reduce((a, b) => a + b + 1, 0);
    const tombstoneBytes = ten - (hundred - removed);
    console.info(
      `keyring text: ${perVersion.toFixed(1)} bytes per live version, ${hundred} bytes for 100 versions, ` +
        `${ten} bytes after destroying 90 of them (tombstone ${tombstoneBytes.toFixed(0)} bytes)`,
    );
    expect(perVersion).toBeGreaterThan(120);
    expect(perVersion).toBeLessThan(150);
    expect(tombstoneBytes).toBeLessThan(70);
  });
});
