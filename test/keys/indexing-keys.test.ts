import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Keyrings } from "../../src/keys/keyrings.js";
import type { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { tempStore } from "./support.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("Keyrings.indexingKeys (blind index keys)", () => {
  let store: LocalFileKeyStore;
  let cleanup: () => Promise<void>;
  let k: Keyrings;

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore());
    k = new Keyrings(store);
  });
  afterEach(async () => {
    await k.close();
    await cleanup();
  });

  it("gives the primary, then with allVersions every version that still opens, newest first", async () => {
    await k.create("cards");
    for (let i = 0; i < 4; i++) await k.rotate("cards");
    expect((await k.indexingKeys("cards")).map((key) => key.version)).toEqual([5]);
    expect((await k.indexingKeys("cards", true)).map((key) => key.version)).toEqual([5, 4, 3, 2, 1]);
    for (const key of await k.indexingKeys("cards", true)) {
      expect(hex(key.material)).toBe(hex((await k.openingKey("cards", key.version)).material));
    }
  });

  it("leaves out retired and destroyed versions", async () => {
    await k.create("cards");
    for (let i = 0; i < 3; i++) await k.rotate("cards");
    await k.retire("cards", 3);
    expect((await k.indexingKeys("cards", true)).map((key) => key.version)).toEqual([4, 3]);
    await k.destroy("cards", 2);
    expect((await k.indexingKeys("cards", true)).map((key) => key.version)).toEqual([4, 3]);
  });

  it("reserves no seals and refuses unknown keyrings", async () => {
    await k.create("cards");
    const before = (await store.load("cards"))?.versions[0]?.sealsReserved;
    for (let i = 0; i < 10; i++) await k.indexingKeys("cards", true);
    expect((await store.load("cards"))?.versions[0]?.sealsReserved).toBe(before);
    await expect(k.indexingKeys("nope")).rejects.toMatchObject({ code: "keyring_not_found" });
    await expect(k.indexingKeys("Bad Name")).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
