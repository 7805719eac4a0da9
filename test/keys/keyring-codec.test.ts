import { describe, expect, it } from "vitest";
import { decodeKeyring, encodeKeyring, KEYRING_FORMAT } from "../../src/keys/keyring-codec.js";
import { keyringState } from "./key-store-contract.js";

function tamper(
  edit: (stored: Record<string, unknown> & { versions: Record<string, unknown>[] }) => void,
): string {
  const stored = JSON.parse(encodeKeyring(keyringState("payments", 3, 2)));
  edit(stored);
  return JSON.stringify(stored);
}

describe("keyring codec", () => {
  it("round-trips a keyring, including a legacy label", () => {
    const base = keyringState("payments", 4, 3);
    const state = {
      ...base,
      versions: base.versions.map((v) => (v.version === 1 ? { ...v, legacyLabel: "v1" } : v)),
    };
    expect(decodeKeyring(encodeKeyring(state), "payments")).toEqual(state);
    expect(JSON.parse(encodeKeyring(state)).format).toBe(KEYRING_FORMAT);
  });

  it("refuses to encode a keyring that breaks the rules", () => {
    const state = keyringState("payments", 1, 2);
    expect(() => encodeKeyring({ ...state, primary: 3 })).toThrow(
      expect.objectContaining({ code: "internal" }),
    );
    expect(() => encodeKeyring({ ...state, versions: [...state.versions].reverse() })).toThrow(
      expect.objectContaining({ code: "internal" }),
    );
  });

  const malformed: Array<[string, string]> = [
    ["text that is not JSON", '{"versions": ['],
    ["a missing format marker", tamper((s) => delete s.format)],
    ["another format", tamper((s) => (s.format = "fieldseal-keyring/2"))],
    ["another keyring's name", tamper((s) => (s.name = "other"))],
    [
      "material that is not base64",
      tamper((s) => ((s.versions[0] as Record<string, unknown>).material = "%%%")),
    ],
    [
      "31 bytes of material",
      tamper(
        (s) => ((s.versions[0] as Record<string, unknown>).material = Buffer.alloc(31).toString("base64")),
      ),
    ],
    ["versions out of order", tamper((s) => s.versions.reverse())],
    ["a minimum above the primary", tamper((s) => (s.minDecryptVersion = 3))],
    ["a negative seal count", tamper((s) => ((s.versions[1] as Record<string, unknown>).sealsReserved = -1))],
  ];
  for (const [what, text] of malformed) {
    it(`rejects ${what} as internal, naming the keyring and quoting nothing`, () => {
      let caught: unknown;
      try {
        decodeKeyring(text, "payments");
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ code: "internal" });
      const message = (caught as Error).message;
      expect(message).toContain('"payments"');
      // No run of base64 long enough to be (part of) key material.
      expect(message).not.toMatch(/[A-Za-z0-9+/=]{16,}/);
      expect(message).not.toContain("%%%");
      expect((caught as Error).cause).toBeUndefined();
    });
  }
});
