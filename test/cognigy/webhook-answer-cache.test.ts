import { randomBytes } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { JsonObject } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type AnsweredRequest, WebhookAnswerCache } from "../../src/cognigy/webhook-answer-cache.js";

const answer = (sealed: string): AnsweredRequest => ({
  keyring: "default",
  keyVersion: 1,
  variables: { __enc_card: sealed, card: null },
});

describe("the webhook's memory of answered requests", () => {
  it("answers what was recorded until it expires", () => {
    let now = 0;
    const cache = new WebhookAnswerCache({ maxEntries: 10, maxBytes: 10_000, ttlMs: 1000, now: () => now });
    cache.set("k", answer("fs1.a"), "bot");
    now = 999;
    expect(cache.get("k")?.variables.__enc_card).toBe("fs1.a");
    now = 1000;
    expect(cache.get("k")).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it("evicts the least recently used entry past the entry bound", () => {
    const cache = new WebhookAnswerCache({ maxEntries: 2, maxBytes: 10_000, ttlMs: 1000, now: () => 0 });
    cache.set("a", answer("fs1.a"), "bot");
    cache.set("b", answer("fs1.b"), "bot");
    cache.get("a");
    cache.set("c", answer("fs1.c"), "bot");
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBeDefined();
    expect(cache.get("c")).toBeDefined();
  });

  it("holds no more bytes than its bound, counting replaced entries once, and keeps no value larger than it", () => {
    const probe = new WebhookAnswerCache({ maxEntries: 1, maxBytes: 1e9, ttlMs: 1000, now: () => 0 });
    probe.set("k0", answer("fs1.x"), "bot");
    const one = probe.bytes;
    const cache = new WebhookAnswerCache({ maxEntries: 100, maxBytes: one * 3, ttlMs: 1000, now: () => 0 });
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, answer("fs1.x"), "bot");
    expect(cache.size).toBe(3);
    expect(cache.bytes).toBe(one * 3);
    cache.set("k9", answer("fs1.y"), "bot");
    expect(cache.bytes).toBe(one * 3);
    cache.set("huge", answer("x".repeat(one * 4)), "bot");
    expect(cache.get("huge")).toBeUndefined();
    expect(cache.bytes).toBeLessThanOrEqual(one * 3);
  });

  it("evicts from the caller holding the most: a flood of distinct requests evicts its own answers", () => {
    const one = new WebhookAnswerCache({ maxEntries: 10, maxBytes: 1e9, ttlMs: 1000, now: () => 0 });
    one.set("v0", answer("fs1.victim"), "victim");
    const entry = one.bytes;
    const cache = new WebhookAnswerCache({
      maxEntries: 100,
      maxBytes: entry * 10,
      ttlMs: 1000,
      now: () => 0,
    });
    cache.set("v0", answer("fs1.victim"), "victim");
    cache.set("v1", answer("fs1.victim"), "victim");
    for (let i = 0; i < 1000; i++) cache.set(`f${i}`, answer("fs1.victim"), "flooder");
    expect(cache.get("v0")?.variables.__enc_card).toBe("fs1.victim");
    expect(cache.get("v1")).toBeDefined();
    expect(cache.bytesOf("victim")).toBe(entry * 2);
    expect(cache.bytes).toBeLessThanOrEqual(entry * 10);
    // The flooder keeps its most recent answers; its first ones went.
    expect(cache.get("f999")).toBeDefined();
    expect(cache.get("f0")).toBeUndefined();
    // The entry bound is shared out the same way.
    const byCount = new WebhookAnswerCache({ maxEntries: 5, maxBytes: 1e9, ttlMs: 1000, now: () => 0 });
    byCount.set("v", answer("fs1.victim"), "victim");
    for (let i = 0; i < 50; i++) byCount.set(`f${i}`, answer("fs1.f"), "flooder");
    expect(byCount.get("v")).toBeDefined();
    expect(byCount.size).toBe(5);
  });

  it("holds no more heap than its byte bound, measured, with answers of 1,000 small fields", () => {
    // Counted as JSON length, such answers pinned 2.8 times the bound (45 MiB for 16 MiB).
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const bound = 16 * 1024 * 1024;
    const manyFields = (): AnsweredRequest => {
      const variables: JsonObject = {};
      for (let f = 0; f < 1000; f++) {
        variables[`__enc_f${f}`] = `fs1.default.1.${randomBytes(8).toString("base64url")}`;
        variables[`f${f}`] = null;
      }
      return { keyring: "default", keyVersion: 1, variables };
    };
    gc();
    const before = process.memoryUsage().heapUsed;
    const cache = new WebhookAnswerCache({
      maxEntries: 10_000,
      maxBytes: bound,
      ttlMs: 60_000,
      now: () => 0,
    });
    for (let i = 0; i < 300; i++) cache.set(`key-${i}`, manyFields(), "flood");
    gc();
    const held = process.memoryUsage().heapUsed - before;
    expect(cache.bytes).toBeLessThanOrEqual(bound);
    expect(cache.size).toBeGreaterThan(10);
    expect(held).toBeLessThan(bound);
  });
});
