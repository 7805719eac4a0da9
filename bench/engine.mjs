/**
 * Part 1 (engine) and the value-size half of part 5 (scaling): Fieldseal's engine against a plain
 * node:crypto AES-256-GCM loop on one core, same plaintext bytes, same AAD length, fresh random nonce each.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildAad, openField, parseEnvelope, sealField } from "../dist/src/engine/index.js";
import { Keyrings } from "../dist/src/keys/keyrings.js";
import { LocalFileKeyStore } from "../dist/src/keys/local-file-store.js";
import { ScopeKeys } from "../dist/src/scopes/scope-keys.js";
import { SqliteScopeKeyStore } from "../dist/src/scopes/sqlite-store.js";
import { Sealer } from "../dist/src/sealer.js";
import { fmt, interleave, opsPerSecond } from "./lib.mjs";
import { CARD, JSON_1K, stringOfSize } from "./values.mjs";

const material = randomBytes(32);
const engineKey = { keyring: "default", version: 1, material };
const ctx = { scope: { kind: "session", id: "sess_8f3a2c1d" }, field: "credit_card" };

/**
 * The reference: what a hand-written node:crypto loop does per value, and nothing more. It turns the value
 * into bytes and back (UTF-8 for a string, JSON for anything else: no loop can encrypt an object without
 * serializing it), but writes no envelope, no type byte and no base64, and validates nothing.
 */
function referenceLoop(value, aad) {
  const key = createSecretKey(material);
  const isString = typeof value === "string";
  const toBytes = () => Buffer.from(isString ? value : JSON.stringify(value), "utf8");
  // Nonces in batches of 512 per CSPRNG call, as the engine does: the fastest honest nonce source.
  const pool = Buffer.alloc(12 * 512);
  let next = 512;
  let iv = pool.subarray(0, 12);
  let ct = Buffer.alloc(0);
  let tag = Buffer.alloc(16);
  const sealOnce = () => {
    if (next === 512) {
      randomFillSync(pool);
      next = 0;
    }
    iv = pool.subarray(next * 12, ++next * 12);
    const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
    c.setAAD(aad);
    ct = c.update(toBytes());
    c.final();
    tag = c.getAuthTag();
  };
  sealOnce();
  const openIv = Buffer.from(iv);
  const openCt = ct;
  const openTag = tag;
  const openOnce = () => {
    const d = createDecipheriv("aes-256-gcm", key, openIv, { authTagLength: 16 });
    d.setAuthTag(openTag);
    d.setAAD(aad);
    const text = d.update(openCt).toString("utf8");
    d.final();
    return isString ? text : JSON.parse(text);
  };
  return { sealOnce, openOnce };
}

function engineLoop(value) {
  const sealOnce = () => sealField(engineKey, ctx, value);
  const text = sealField(engineKey, ctx, value);
  const openOnce = () => openField(engineKey, ctx, parseEnvelope(text));
  return { sealOnce, openOnce, text };
}

async function compare(value, rounds, ms) {
  const aad = buildAad(engineKey.keyring, engineKey.version, ctx);
  const ref = referenceLoop(value, aad);
  const eng = engineLoop(value);
  const seal = await interleave(
    { engine: eng.sealOnce, nodeCrypto: ref.sealOnce },
    "nodeCrypto",
    rounds,
    (op) => opsPerSecond(op, ms),
  );
  const open = await interleave(
    { engine: eng.openOnce, nodeCrypto: ref.openOnce },
    "nodeCrypto",
    rounds,
    (op) => opsPerSecond(op, ms),
  );
  const valueBytes = Buffer.byteLength(typeof value === "string" ? value : JSON.stringify(value));
  const valueBase64 = Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString(
    "base64",
  );
  return {
    valueBytes,
    envelopeChars: eng.text.length,
    valueBase64Chars: valueBase64.length,
    overheadChars: eng.text.length - valueBase64.length,
    seal,
    open,
  };
}

/**
 * Ops per second of process CPU time (user + system) of an async op run one at a time: on a shared machine
 * the other processes' load moves wall-clock figures by a factor of several, CPU time much less.
 */
async function cpuOpsPerSecond(op, ms) {
  for (let i = 0; i < 200; i++) await op();
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + ms;
  while (performance.now() < until) {
    for (let i = 0; i < 64; i++) await op();
    n += 64;
  }
  const used = process.cpuUsage(start);
  return (n * 1e6) / (used.user + used.system);
}

/**
 * An erasable keyring against a plain one, through the Sealer (key lookup included) on one local keyring
 * store: sealing and opening the 16-byte value of one scope with a warm scope-key cache (SQLite database,
 * TTL longer than the run) versus today's fs1 path. Same run, interleaved rounds, ops per CPU second;
 * medians.
 */
async function compareErasable(rounds, ms) {
  const dir = mkdtempSync(join(tmpdir(), "fieldseal-bench-scopes-"));
  const keyrings = new Keyrings(new LocalFileKeyStore(join(dir, "keys")), { sealBlockSize: 1 << 20 });
  await keyrings.ensure("plain");
  await keyrings.ensure("erasable");
  const scopeKeys = new ScopeKeys(new SqliteScopeKeyStore(join(dir, "scopes.db")), keyrings, {
    erasable: new Map([["erasable", { reuseAfterForget: false }]]),
    cacheTtlMs: 60_000,
    cacheEntries: 10_000,
  });
  const sealer = new Sealer(keyrings, { legacyKeyring: "plain", scopes: scopeKeys });
  const scope = ctx.scope;
  const fields = [[ctx.field, CARD]];
  const sealWith = (keyring) => async () => (await sealer.sealFields(keyring, scope, fields)).sealed;
  const sealedPlain = (await sealWith("plain")()).get(ctx.field);
  const sealedErasable = (await sealWith("erasable")()).get(ctx.field);
  try {
    const seal = await interleave(
      { erasable: sealWith("erasable"), plain: sealWith("plain") },
      "plain",
      rounds,
      (op) => cpuOpsPerSecond(op, ms),
    );
    const open = await interleave(
      {
        erasable: () => sealer.open(ctx, sealedErasable),
        plain: () => sealer.open(ctx, sealedPlain),
      },
      "plain",
      rounds,
      (op) => cpuOpsPerSecond(op, ms),
    );
    return { envelopeChars: sealedErasable.length, seal, open };
  } finally {
    await scopeKeys.close();
    await keyrings.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Engine throughput and envelope size for the 16-byte value and the 1 KiB JSON object. */
export async function runEngine({ rounds = 7, ms = 300, log = console.log } = {}) {
  const out = {};
  const erasable = await compareErasable(rounds, ms);
  out.erasable16B = erasable;
  for (const op of ["seal", "open"]) {
    log(
      `  erasable ${op} value16B (warm scope-key cache): ${fmt(erasable[op].medians.erasable)}/CPU-s vs plain keyring ` +
        `${fmt(erasable[op].medians.plain)}/CPU-s = ${fmt(erasable[op].ratios.erasable * 100, 1)}% (target >= 90%)`,
    );
  }
  for (const [name, value] of [
    ["value16B", CARD],
    ["json1KiB", JSON_1K],
  ]) {
    const r = await compare(value, rounds, ms);
    out[name] = r;
    for (const op of ["seal", "open"]) {
      log(
        `  engine ${op} ${name}: ${fmt(r[op].medians.engine)}/s vs node:crypto ${fmt(r[op].medians.nodeCrypto)}/s` +
          ` = ${fmt(r[op].ratios.engine * 100, 1)}% (target >= 80%)`,
      );
    }
    log(`  envelope ${name}: ${r.envelopeChars} chars, ${r.overheadChars} beyond base64 (target <= 60)`);
  }
  return out;
}

/** Seal cost against value size (16 B .. 32 KiB), engine and reference, interleaved. */
export async function runValueSizeScaling({ rounds = 5, ms = 150, log = console.log } = {}) {
  const sizes = [16, 64, 256, 1024, 4096, 16384, 32768];
  const points = [];
  for (const size of sizes) {
    const value = stringOfSize(size);
    const aad = buildAad(engineKey.keyring, engineKey.version, ctx);
    const ref = referenceLoop(value, aad);
    const eng = engineLoop(value);
    const r = await interleave(
      { engine: eng.sealOnce, nodeCrypto: ref.sealOnce },
      "nodeCrypto",
      rounds,
      (op) => opsPerSecond(op, ms),
    );
    const point = {
      valueBytes: size,
      engineSealsPerSec: r.medians.engine,
      nodeCryptoSealsPerSec: r.medians.nodeCrypto,
      engineUsPerSeal: 1e6 / r.medians.engine,
      nodeCryptoUsPerSeal: 1e6 / r.medians.nodeCrypto,
      ratio: r.ratios.engine,
      envelopeChars: eng.text.length,
    };
    points.push(point);
    log(
      `  seal ${String(size).padStart(5)} B: engine ${fmt(point.engineUsPerSeal, 2)} us, node:crypto ` +
        `${fmt(point.nodeCryptoUsPerSeal, 2)} us (${fmt(point.ratio * 100, 1)}%)`,
    );
  }
  return points;
}
