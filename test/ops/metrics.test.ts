import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { startCognigySimulator } from "../support/cognigy-simulator.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const CANARY = "CANARY-4111-1111-1111-1111";
const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

/** The value of one sample line, e.g. `fieldseal_rpc_calls_total{rpc="...",code="ok"}`; 0 when absent. */
function sample(exposition: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]] as const),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return res.text();
}

describe("GET /metrics", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal();
  });
  afterAll(async () => {
    await fs.close();
  });

  it("counts calls, fields, key events and rotations, and never shows a value", async () => {
    const before = await scrape(fs.url);
    const bot = fs.client("bot");
    const sealed = await bot.encryptFields({
      scope: session("s-metrics"),
      fields: { credit_card: text(CANARY), note: text(`${CANARY}-note`) },
    });
    const card = sealed.sealed.credit_card ?? "";
    const admin = fs.client("admin");
    await admin.decryptField({ scope: session("s-metrics"), field: "credit_card", sealed: card });
    // Moved to another session: the opening fails as tampered.
    await expect(
      admin.decryptField({ scope: session("s-other"), field: "credit_card", sealed: card }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(
      fs.client("billing").decryptField({ scope: session("s-metrics"), field: CANARY, sealed: card }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
    await admin.rotateKey({});
    // The new primary starts with nothing reserved; one more seal reserves a block of it.
    await bot.encryptFields({ scope: session("s-metrics"), fields: { attempts: text("3") } });
    const after = await scrape(fs.url);

    const rpc = (m: string) => `fieldseal.v1.FieldsealService/${m}`;
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(moved("fieldseal_rpc_calls_total", { rpc: rpc("EncryptFields"), code: "ok" })).toBe(2);
    expect(moved("fieldseal_rpc_calls_total", { rpc: rpc("DecryptField"), code: "ok" })).toBe(1);
    expect(moved("fieldseal_rpc_calls_total", { rpc: rpc("DecryptField"), code: "envelope_tampered" })).toBe(
      1,
    );
    expect(moved("fieldseal_rpc_calls_total", { rpc: rpc("DecryptField"), code: "permission_denied" })).toBe(
      1,
    );
    expect(moved("fieldseal_rpc_duration_seconds_count", { rpc: rpc("DecryptField") })).toBe(3);
    expect(moved("fieldseal_fields_sealed_total")).toBe(3);
    expect(moved("fieldseal_fields_opened_total", { outcome: "ok" })).toBe(1);
    expect(moved("fieldseal_fields_opened_total", { outcome: "envelope_tampered" })).toBe(1);
    expect(moved("fieldseal_key_rotations_total", { reason: "on_demand" })).toBe(1);
    expect(sample(after, "fieldseal_key_cache_events_total", { event: "hit" })).toBeGreaterThan(0);
    expect(sample(after, "fieldseal_key_store_duration_seconds_count", { op: "cas" })).toBeGreaterThan(0);
    const ratio = sample(after, "fieldseal_primary_seals_reserved_ratio", { keyring: "default" });
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(sample(after, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(after).toMatch(/^process_cpu_user_seconds_total /m);

    expect(after).not.toContain(CANARY);
    expect(after).not.toContain(card);
    // Labels carry RPC names and codes, never field names.
    expect(after).not.toContain("credit_card");
  });
});

describe("GET /metrics when metrics are disabled", () => {
  it("is not served", async () => {
    const fs = await startTestFieldseal({ settings: { metrics: { enabled: false } } });
    try {
      const res = await fetch(`${fs.url}/metrics`);
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain("fieldseal_rpc_calls_total");
    } finally {
      await fs.close();
    }
  });
});

describe("push metrics", () => {
  it("count attempts by status class and pushes by outcome", async () => {
    const sim = await startCognigySimulator();
    const fs = await startTestFieldseal({
      settings: { cognigy: { baseUrl: sim.url, apiKey: sim.apiKey, baseBackoffMs: 1, backoffCapMs: 2 } },
    });
    try {
      const bot = fs.client("bot");
      const push = (sessionId: string) =>
        bot.pushSession({
          sessionId,
          userId: "u",
          context: {
            __enc_credit_card: text("fs1.default.1.AAAA"),
            credit_card: { kind: { case: "nullValue", value: 0 } },
          },
        });
      // One push that succeeds on its second attempt, one that Cognigy refuses outright.
      sim.setFaults([{ status: 503 }]);
      await push("s-push-1");
      sim.setFaults([{ status: 404 }]);
      await expect(push("s-push-2")).rejects.toMatchObject({ code: Code.FailedPrecondition });
      const scraped = await scrape(fs.url);
      expect(sample(scraped, "fieldseal_push_attempts_total", { outcome: "5xx" })).toBe(1);
      expect(sample(scraped, "fieldseal_push_attempts_total", { outcome: "2xx" })).toBe(1);
      expect(sample(scraped, "fieldseal_push_attempts_total", { outcome: "4xx" })).toBe(1);
      expect(sample(scraped, "fieldseal_push_total", { outcome: "ok" })).toBe(1);
      expect(sample(scraped, "fieldseal_push_total", { outcome: "push_failed" })).toBe(1);
      expect(scraped).not.toContain("s-push-1");
    } finally {
      await fs.close();
      await sim.close();
    }
  });
});
