/**
 * Part 2: Fieldseal's engine against the AWS Encryption SDK for JavaScript with a raw AES keyring, on the
 * same values and the same binding (the ESDK's encryption context carries scope and field).
 */
import { randomBytes } from "node:crypto";
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  getLocalCryptographicMaterialsCache,
  NodeCachingMaterialsManager,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { openField, parseEnvelope, sealField } from "../dist/src/engine/index.js";
import { asyncOpsPerSecond, fmt, interleave, opsPerSecond } from "./lib.mjs";
import { CARD, JSON_1K } from "./values.mjs";

const material = randomBytes(32);
const engineKey = { keyring: "default", version: 1, material };
const ctx = { scope: { kind: "session", id: "sess_8f3a2c1d" }, field: "credit_card" };
const encryptionContext = { scope: "session:sess_8f3a2c1d", field: "credit_card" };

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const keyring = new RawAesKeyringNode({
  keyName: "default-v1",
  keyNamespace: "fieldseal-bench",
  unencryptedMasterKey: new Uint8Array(material),
  wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
});

/**
 * The SDK tuned for speed as its documentation suggests: a caching materials manager over the same keyring
 * with a local cache, so data keys are reused instead of derived and wrapped per message. Materials are
 * cached per (suite, encryption context): the bench's context is the same every call (one session, one
 * field), its best case; with a context per session, as sealing here binds values, each new session misses.
 */
const cachingCmm = new NodeCachingMaterialsManager({
  backingMaterials: keyring,
  cache: getLocalCryptographicMaterialsCache(1000),
  partition: "fieldseal-bench",
  maxAge: 60_000,
  maxMessagesEncrypted: 1_000_000,
});

const SUITES = {
  // Key commitment, no signature: the fairest comparison (Fieldseal signs nothing either).
  committing: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
  // The SDK's default: key commitment plus an ECDSA P-384 signature per message.
  default: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
};

/** Times a synchronous op for `ms` but yields once per batch so it can be interleaved with async work. */
async function syncRate(op, ms) {
  return opsPerSecond(op, ms);
}

export async function runAwsEsdk({ rounds = 5, ms = 400, log = console.log } = {}) {
  const out = {};
  for (const [name, value] of [
    ["value16B", CARD],
    ["json1KiB", JSON_1K],
  ]) {
    const bytes = Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
    const envelope = sealField(engineKey, ctx, value);
    const entry = { fieldseal: { envelopeChars: envelope.length }, esdk: {} };
    const subjectsSeal = { fieldseal: () => sealField(engineKey, ctx, value) };
    const subjectsOpen = { fieldseal: () => openField(engineKey, ctx, parseEnvelope(envelope)) };
    for (const [suiteName, suiteId] of Object.entries(SUITES)) {
      const { result } = await encrypt(keyring, bytes, { encryptionContext, suiteId });
      entry.esdk[suiteName] = { messageBytes: result.length, base64Chars: result.toString("base64").length };
      subjectsSeal[`esdk_${suiteName}`] = () => encrypt(keyring, bytes, { encryptionContext, suiteId });
      subjectsOpen[`esdk_${suiteName}`] = () => decrypt(keyring, result);
    }
    // The committing suite again, through the caching materials manager (seal and open).
    const suiteId = SUITES.committing;
    const { result: cachedResult } = await encrypt(cachingCmm, bytes, { encryptionContext, suiteId });
    subjectsSeal.esdk_committing_cached = () => encrypt(cachingCmm, bytes, { encryptionContext, suiteId });
    subjectsOpen.esdk_committing_cached = () => decrypt(cachingCmm, cachedResult);
    const measure = (op, subject) => (subject === "fieldseal" ? syncRate(op, ms) : asyncOpsPerSecond(op, ms));
    entry.seal = await interleave(subjectsSeal, "esdk_committing", rounds, measure);
    entry.open = await interleave(subjectsOpen, "esdk_committing", rounds, measure);
    // Ratios against the default suite too, from the same samples.
    for (const op of ["seal", "open"]) {
      const s = entry[op].samples;
      entry[op].fieldsealOverDefault = median(s.fieldseal.map((v, i) => v / s.esdk_default[i]));
      entry[op].fieldsealOverCached = median(s.fieldseal.map((v, i) => v / s.esdk_committing_cached[i]));
      log(
        `  ${op} ${name}: fieldseal ${fmt(entry[op].medians.fieldseal)}/s, ESDK committing ` +
          `${fmt(entry[op].medians.esdk_committing)}/s (x${fmt(entry[op].ratios.fieldseal, 1)}), ESDK default ` +
          `${fmt(entry[op].medians.esdk_default)}/s (x${fmt(entry[op].fieldsealOverDefault, 1)}), ESDK committing + caching CMM ` +
          `${fmt(entry[op].medians.esdk_committing_cached)}/s (x${fmt(entry[op].fieldsealOverCached, 1)}; caching makes the SDK ` +
          `x${fmt(entry[op].ratios.esdk_committing_cached, 2)}) (target x25)`,
      );
    }
    log(
      `  size ${name}: fieldseal ${envelope.length} chars; ESDK committing ${entry.esdk.committing.messageBytes} B ` +
        `(${entry.esdk.committing.base64Chars} base64 chars), default ${entry.esdk.default.messageBytes} B ` +
        `(${entry.esdk.default.base64Chars} chars)`,
    );
    entry.valueBytes = bytes.length;
    out[name] = entry;
  }
  return out;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
