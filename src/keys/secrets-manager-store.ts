/**
 * Keyrings in AWS Secrets Manager, one secret per keyring. Every secret version holds the whole keyring
 * (see docs/keys.md), so Secrets Manager pruning old versions never loses a key version, and a write is a
 * compare-and-swap: the new version is stored under a token derived from (keyring, revision), then the
 * AWSCURRENT label is moved only if it still sits on the version that was read.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  ListSecretsCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { FieldsealError } from "../errors.js";
import { decodeKeyring, encodeKeyring } from "./keyring-codec.js";
import { liveVersion, successorProblem, versionChangeProblem } from "./keyring-state.js";
import { isTutorialSecret, keyringFromTutorialSecret } from "./tutorial-secret.js";
import type { CasResult, KeyringState, KeyStore } from "./types.js";

/** Secrets Manager's limit on one secret value, in bytes. */
export const MAX_SECRET_BYTES = 65_536;
/** Label on a written but not yet promoted keyring version; AWSPENDING stays free for scheduled rotation. */
export const PENDING_STAGE = "FIELDSEAL_PENDING";
const CURRENT_STAGE = "AWSCURRENT";
const MAX_LIST_PAGES = 100;
const KEYRING_NAME = /^[A-Za-z0-9_+=.@-]{1,256}$/;

/** One call to Secrets Manager, for latency metrics. `op` is the API action name. */
export interface StoreCallEvent {
  readonly op: string;
  readonly ms: number;
  readonly ok: boolean;
}

export interface SecretsManagerKeyStoreOptions {
  /** Defaults to the SDK's region chain (AWS_REGION, profile...). */
  region?: string;
  /** Overrides the service endpoint, e.g. a local emulator. */
  endpoint?: string;
  /** Secret name = prefix + keyring name. Default "fieldseal/". */
  secretPrefix?: string;
  /** Keyring name -> existing secret name or ARN, for secrets created by the tutorial. */
  legacySecretIds?: Record<string, string>;
  /** A ready client; when given, region/endpoint/credentials/retry/timeout options are ignored. */
  client?: SecretsManagerClient;
  /** Attempts per call including the first, with the SDK's standard retry (backoff, throttling aware). Default 3. */
  maxAttempts?: number;
  /** Per-attempt request timeout in ms; the connection timeout is the smaller of this and 3 s. Default 5000. */
  requestTimeoutMs?: number;
  /** Defaults to the SDK's default credential chain. */
  credentials?: SecretsManagerClientConfig["credentials"];
  /** Called after every Secrets Manager call. */
  onStoreCall?: (e: StoreCallEvent) => void;
}

/** A secret version as read: its id, its text and when it was created. */
interface StoredVersion {
  readonly versionId: string;
  readonly text: string;
  readonly stages: readonly string[];
  readonly createdAt: string;
}

/** The KeyStore on AWS Secrets Manager. */
export class SecretsManagerKeyStore implements KeyStore {
  readonly kind = "aws";
  readonly #client: SecretsManagerClient;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #legacy: ReadonlyMap<string, string>;
  readonly #onStoreCall: ((e: StoreCallEvent) => void) | undefined;
  /** Keyrings whose secret is known to have held Fieldseal's format (see #heldFieldsealFormat). */
  readonly #fieldsealFormat = new Set<string>();

  constructor(options: SecretsManagerKeyStoreOptions = {}) {
    this.#prefix = options.secretPrefix ?? "fieldseal/";
    this.#legacy = new Map(Object.entries(options.legacySecretIds ?? {}));
    this.#onStoreCall = options.onStoreCall;
    if (options.client) {
      this.#client = options.client;
      this.#ownsClient = false;
    } else {
      this.#client = createSecretsManagerClient(options);
      this.#ownsClient = true;
    }
  }

  /** The secret name or ARN that holds keyring `name`. */
  secretIdFor(name: string): string {
    return this.#legacy.get(name) ?? this.#prefix + name;
  }

  async load(name: string): Promise<KeyringState | undefined> {
    checkName(name);
    const current = await this.#readCurrent(name);
    return current && this.#stateOf(current, name);
  }

  async list(): Promise<string[]> {
    const names = new Set<string>();
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const out = await this.#call("ListSecrets", "*", () =>
        this.#client.send(
          new ListSecretsCommand({
            Filters: [{ Key: "name", Values: [this.#prefix] }],
            MaxResults: 100,
            NextToken: nextToken,
          }),
        ),
      );
      for (const secret of out.SecretList ?? []) {
        const secretName = secret.Name;
        if (
          secretName?.startsWith(this.#prefix) &&
          KEYRING_NAME.test(secretName.slice(this.#prefix.length))
        ) {
          names.add(secretName.slice(this.#prefix.length));
        }
      }
      nextToken = out.NextToken;
      if (!nextToken) break;
    }
    for (const [name, secretId] of this.#legacy) {
      if (await this.#exists(name, secretId)) names.add(name);
    }
    return [...names].sort();
  }

  async compareAndSwap(expectedRevision: number, next: KeyringState): Promise<CasResult> {
    checkName(next.name);
    if (next.revision !== expectedRevision + 1) {
      throw new FieldsealError(
        "invalid_argument",
        `keyring "${next.name}": revision ${next.revision} does not follow ${expectedRevision}`,
      );
    }
    const name = next.name;
    // Two replicas reserving the same seal block from the same revision compute equal states. Were they
    // stored as equal texts, Secrets Manager would accept the second PutSecretValue as an idempotent retry of
    // the first and both replicas would hand out the same block: the seal count would miss one of them. A
    // writer id per state object keeps every writer's text its own, while a caller retrying the very same
    // object still writes the very same text.
    const text = encodeKeyring(next, writerIdFor(next));
    checkSize(name, text);
    const token = versionToken(name, next.revision);
    if (expectedRevision === 0) return this.#create(name, text, token, next);

    const current = await this.#readCurrent(name);
    if (!current) return { ok: false, current: undefined };
    const currentState = await this.#stateOf(current, name);
    if (currentState.revision !== expectedRevision) {
      // A retry of a write that already landed is a success, not a conflict.
      if (current.versionId === token && current.text === text) return { ok: true, state: next };
      return { ok: false, current: currentState };
    }
    // A key version's material never changes once it exists: a write that would drop or alter one is a bug
    // in the writer, refused and raised rather than stored.
    const problem = successorProblem(currentState, next);
    if (problem) {
      throw new FieldsealError("internal", `refusing to write keyring "${name}": ${problem}`);
    }

    const written = await this.#putPending(name, text, token);
    if (!written) {
      // The token is taken by another value: a concurrent writer of the same revision, or one that crashed
      // between writing and promoting. Finish its write if it is a true successor, then report the loss.
      await this.#adoptPending(name, token, current, currentState);
      return { ok: false, current: await this.load(name) };
    }
    await this.#promote(name, token, current.versionId);
    const confirmed = await this.#readVersion(name, token);
    if (confirmed?.stages.includes(CURRENT_STAGE) && confirmed.text === text)
      return { ok: true, state: next };
    const now = await this.load(name);
    // Another writer of this revision may have found our version pending and promoted it for us (see
    // #adoptPending), and a later write may already have replaced it. Our version then was current, and
    // reporting a loss would make the caller redo (a second seal block) or refuse (an expected-primary
    // rotation) a change that happened.
    if (confirmed?.text === text && now && descendsFrom(now, next)) return { ok: true, state: next };
    return { ok: false, current: now };
  }

  async close(): Promise<void> {
    if (this.#ownsClient) this.#client.destroy();
  }

  async #create(name: string, text: string, token: string, next: KeyringState): Promise<CasResult> {
    const secretId = this.secretIdFor(name);
    try {
      await this.#call("CreateSecret", name, () =>
        this.#client.send(
          new CreateSecretCommand({
            Name: secretId,
            SecretString: text,
            ClientRequestToken: token,
            Description: `Fieldseal keyring ${name}`,
          }),
        ),
      );
    } catch (err) {
      if (errorName(err) === "InvalidRequestException") {
        throw new FieldsealError(
          "failed_precondition",
          `keyring "${name}": its secret cannot be created (it may be scheduled for deletion)`,
          { cause: err },
        );
      }
      if (errorName(err) !== "ResourceExistsException") throw err;
    }
    const current = await this.#readCurrent(name);
    if (current?.versionId === token && current.text === text) return { ok: true, state: next };
    return { ok: false, current: current && (await this.#stateOf(current, name)) };
  }

  /** Stores `text` as version `token` without moving AWSCURRENT. False when the token holds another value. */
  async #putPending(name: string, text: string, token: string): Promise<boolean> {
    try {
      await this.#call("PutSecretValue", name, () =>
        this.#client.send(
          new PutSecretValueCommand({
            SecretId: this.secretIdFor(name),
            SecretString: text,
            ClientRequestToken: token,
            VersionStages: [PENDING_STAGE],
          }),
        ),
      );
      return true;
    } catch (err) {
      // Reusing a version id with a different value: moto and AWS answer ResourceExistsException; some
      // AWS documentation describes it as an invalid request. Either way, look at what the version holds.
      const code = errorName(err);
      if (code !== "ResourceExistsException" && code !== "InvalidRequestException") throw err;
      const existing = await this.#readVersion(name, token);
      return existing?.text === text;
    }
  }

  /** Moves AWSCURRENT to `token` only if it is still on `fromVersionId`; a refusal means someone else moved it. */
  async #promote(name: string, token: string, fromVersionId: string): Promise<void> {
    try {
      await this.#call("UpdateSecretVersionStage", name, () =>
        this.#client.send(
          new UpdateSecretVersionStageCommand({
            SecretId: this.secretIdFor(name),
            VersionStage: CURRENT_STAGE,
            MoveToVersionId: token,
            RemoveFromVersionId: fromVersionId,
          }),
        ),
      );
    } catch (err) {
      const code = errorName(err);
      if (code !== "InvalidParameterException" && code !== "InvalidRequestException") throw err;
    }
  }

  async #adoptPending(
    name: string,
    token: string,
    current: StoredVersion,
    currentState: KeyringState,
  ): Promise<void> {
    const pending = await this.#readVersion(name, token);
    if (!pending || pending.stages.includes(CURRENT_STAGE)) return;
    let pendingState: KeyringState;
    try {
      pendingState = this.#parse(pending, name);
    } catch {
      return;
    }
    if (isSuccessor(currentState, pendingState)) await this.#promote(name, token, current.versionId);
  }

  async #readCurrent(name: string): Promise<StoredVersion | undefined> {
    return this.#get(name, { VersionStage: CURRENT_STAGE });
  }

  async #readVersion(name: string, versionId: string): Promise<StoredVersion | undefined> {
    return this.#get(name, { VersionId: versionId });
  }

  /** Always names a stage or a version id: an unqualified read is where emulators disagree with AWS. */
  async #get(
    name: string,
    which: { VersionStage: string } | { VersionId: string },
  ): Promise<StoredVersion | undefined> {
    let out: GetSecretValueCommandOutput;
    try {
      out = await this.#call("GetSecretValue", name, () =>
        this.#client.send(new GetSecretValueCommand({ SecretId: this.secretIdFor(name), ...which })),
      );
    } catch (err) {
      if (errorName(err) === "ResourceNotFoundException") return undefined;
      if (errorName(err) === "InvalidRequestException") {
        throw new FieldsealError(
          "failed_precondition",
          `keyring "${name}": its secret cannot be read (it may be scheduled for deletion)`,
          { cause: err },
        );
      }
      throw err;
    }
    if (out.SecretString === undefined || out.VersionId === undefined) {
      throw new FieldsealError("internal", `stored keyring "${name}" is malformed: not a text secret`);
    }
    return {
      versionId: out.VersionId,
      text: out.SecretString,
      stages: out.VersionStages ?? [],
      createdAt: (out.CreatedDate ?? new Date(0)).toISOString(),
    };
  }

  /**
   * The keyring a stored version holds. A tutorial-shaped value is read as revision 1 only while the
   * secret has never held Fieldseal's format: once it has, a tutorial-shaped AWSCURRENT was written behind
   * Fieldseal's back (the old middleware's rotation, a runbook), and reading it as revision 1 would hide
   * every later version and make each write collide forever. Refused with key_store_conflict instead.
   */
  async #stateOf(stored: StoredVersion, name: string): Promise<KeyringState> {
    const value = parseJson(stored.text, name);
    if (!isTutorialSecret(value)) {
      const state = decodeKeyring(stored.text, name);
      this.#fieldsealFormat.add(name);
      return state;
    }
    if (await this.#heldFieldsealFormat(name, Date.parse(stored.createdAt))) {
      throw new FieldsealError(
        "key_store_conflict",
        `keyring "${name}": the secret's AWSCURRENT version has the tutorial's {"key","version"} shape, but ` +
          "the secret has held Fieldseal's keyring format; refusing to read it as version 1. Move AWSCURRENT " +
          `back to the newest version in Fieldseal's format (normally the one labelled ${PENDING_STAGE}); see docs/keys.md`,
      );
    }
    return keyringFromTutorialSecret(value, name, stored.createdAt);
  }

  /** Parses a stored version whose shape the caller checks itself (a pending successor). */
  #parse(stored: StoredVersion, name: string): KeyringState {
    const value = parseJson(stored.text, name);
    if (isTutorialSecret(value)) return keyringFromTutorialSecret(value, name, stored.createdAt);
    return decodeKeyring(stored.text, name);
  }

  /**
   * True once the secret holds a version Fieldseal wrote: one labelled FIELDSEAL_PENDING (every
   * compare-and-swap write puts that label on the version it writes, and Secrets Manager moves a label
   * rather than copying it, so the newest Fieldseal write keeps it, and a labelled version is never pruned),
   * or the version Fieldseal's CreateSecret made (its id is `versionToken(name, 1)`). Versions marked
   * deprecated are included. Remembered per process: a secret that held the format always has.
   */
  async #heldFieldsealFormat(name: string, tutorialCreatedMs: number): Promise<boolean> {
    if (this.#fieldsealFormat.has(name)) return true;
    const created = versionToken(name, 1);
    const firstWrite = versionToken(name, 2);
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const out = await this.#call("ListSecretVersionIds", name, () =>
        this.#client.send(
          new ListSecretVersionIdsCommand({
            SecretId: this.secretIdFor(name),
            IncludeDeprecated: true,
            MaxResults: 100,
            NextToken: nextToken,
          }),
        ),
      );
      for (const version of out.Versions ?? []) {
        if (version.VersionId === created || wasWrittenOver(version, firstWrite, tutorialCreatedMs)) {
          this.#fieldsealFormat.add(name);
          return true;
        }
      }
      // Emulators may ignore paging and repeat the same page: stop on a repeated token too.
      if (!out.NextToken || out.NextToken === nextToken) break;
      nextToken = out.NextToken;
    }
    return false;
  }

  async #exists(name: string, secretId: string): Promise<boolean> {
    try {
      const out = await this.#call("DescribeSecret", name, () =>
        this.#client.send(new DescribeSecretCommand({ SecretId: secretId })),
      );
      return out.DeletedDate === undefined;
    } catch (err) {
      if (err instanceof FieldsealError) throw err;
      if (errorName(err) === "ResourceNotFoundException") return false;
      throw err;
    }
  }

  /**
   * Runs one Secrets Manager call, reports its latency, and turns transport failures, throttling and denied
   * permissions into store_unavailable. Service errors the caller handles (not found, exists...) pass through.
   */
  async #call<T>(op: string, keyring: string, send: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let ok = false;
    try {
      const out = await send();
      ok = true;
      return out;
    } catch (err) {
      throw translateError(err, op, keyring);
    } finally {
      this.#onStoreCall?.({ op, ms: performance.now() - started, ok });
    }
  }
}

/** Builds a client with bounded retries and timeouts so an unreachable endpoint fails in seconds. */
export function createSecretsManagerClient(
  options: SecretsManagerKeyStoreOptions = {},
): SecretsManagerClient {
  const requestTimeout = options.requestTimeoutMs ?? 5_000;
  return new SecretsManagerClient({
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    retryMode: "standard",
    maxAttempts: Math.max(1, Math.min(options.maxAttempts ?? 3, 10)),
    requestHandler: { connectionTimeout: Math.min(requestTimeout, 3_000), requestTimeout },
  });
}

/**
 * The ClientRequestToken (and so the VersionId) for revision `revision` of keyring `name`: a UUID-shaped
 * SHA-256, the same in every replica, so two writers of one revision collide instead of forking the keyring.
 */
export function versionToken(name: string, revision: number): string {
  const hex = createHash("sha256").update(`fieldseal:${name}:${revision}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const writerIds = new WeakMap<KeyringState, string>();

/** A random id per state object: a retry with the same object writes the same text. */
function writerIdFor(state: KeyringState): string {
  let id = writerIds.get(state);
  if (id === undefined) {
    id = randomUUID();
    writerIds.set(state, id);
  }
  return id;
}

/**
 * True when `later` can only have been reached through `state`. Revision `state.revision` of a keyring is
 * written by Fieldseal only under one version id, which holds our text; the one other writer, the scheduled
 * rotation handler, always adds a version and never reserves seals on a replaced primary. So if `later` keeps
 * every version of `state` byte for byte with at least its reserved seals, and has not lowered the primary
 * or minimum decryption version, the revision in between was `state`. (A retirement raised again later by
 * someone else also passes; it asked for nothing that does not hold.)
 */
function descendsFrom(later: KeyringState, state: KeyringState): boolean {
  if (later.revision < state.revision || later.primary < state.primary) return false;
  if (later.minDecryptVersion < state.minDecryptVersion) return false;
  if (versionChangeProblem(state, later) !== undefined) return false;
  return state.versions.every((v) => {
    const w = liveVersion(later, v.version);
    return w === undefined || w.sealsReserved >= v.sealsReserved;
  });
}

/**
 * True when `next` is `prev` plus one revision and keeps every version of `prev` byte for byte, except
 * versions below its minimum decryption version whose material it destroyed.
 */
export function isSuccessor(prev: KeyringState, next: KeyringState): boolean {
  if (next.name !== prev.name || next.revision !== prev.revision + 1) return false;
  return versionChangeProblem(prev, next) === undefined;
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // No cause and no quote: the text holds key material.
    throw new FieldsealError("internal", `stored keyring "${name}" is malformed: not JSON`);
  }
}

function checkName(name: string): void {
  if (!KEYRING_NAME.test(name)) {
    throw new FieldsealError("invalid_argument", "keyring name must be 1-256 of A-Z a-z 0-9 _ + = . @ -");
  }
}

function checkSize(name: string, text: string): void {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_SECRET_BYTES) {
    throw new FieldsealError(
      "too_large",
      `keyring "${name}" would take ${bytes} bytes; a Secrets Manager secret holds at most ${MAX_SECRET_BYTES}`,
    );
  }
}

function errorName(err: unknown): string | undefined {
  if (err instanceof FieldsealError) return undefined;
  return typeof err === "object" && err !== null && "name" in err && typeof err.name === "string"
    ? err.name
    : undefined;
}

const DENIED = new Set([
  "AccessDeniedException",
  "AccessDenied",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "ExpiredTokenException",
  "DecryptionFailure",
]);
const PASS_THROUGH = new Set([
  "ResourceNotFoundException",
  "ResourceExistsException",
  "InvalidParameterException",
  "InvalidRequestException",
]);

function translateError(err: unknown, op: string, keyring: string): unknown {
  if (err instanceof FieldsealError) return err;
  const name = errorName(err) ?? "unknown error";
  if (PASS_THROUGH.has(name)) return err;
  const target = keyring === "*" ? "listing keyrings" : `keyring "${keyring}"`;
  if (DENIED.has(name)) {
    return new FieldsealError(
      "store_unavailable",
      `Secrets Manager denied permission for secretsmanager:${op} (${target}): ${name}`,
      { cause: err },
    );
  }
  return new FieldsealError("store_unavailable", `Secrets Manager ${op} failed (${target}): ${name}`, {
    cause: err,
  });
}

/**
 * Whether a version listed beside a tutorial-shaped AWSCURRENT shows that Fieldseal's format was current
 * before it: a Fieldseal write (labelled FIELDSEAL_PENDING) of revision 3 or later (its id is not
 * `firstWrite`, the id of revision 2; revision 3 is only written over a Fieldseal-format revision 2), one
 * that was promoted and then replaced (Secrets Manager moves AWSPREVIOUS to the version AWSCURRENT leaves;
 * a second write-back moves it on), or one written before the tutorial value (creation times: moto's listing
 * stamps every version with the time of the call, and AWS's may share a millisecond, so this comes last).
 * A revision-2 write newer than the tutorial value and never promoted is a write in progress (a replica
 * adopting the tutorial's secret right now), not a write-back: refusing it would fail every replica that
 * adopts concurrently.
 */
function wasWrittenOver(
  version: {
    VersionId?: string | undefined;
    VersionStages?: string[] | undefined;
    CreatedDate?: Date | undefined;
  },
  firstWrite: string,
  tutorialCreatedMs: number,
): boolean {
  const stages = version.VersionStages ?? [];
  if (!stages.includes(PENDING_STAGE)) return false;
  if (version.VersionId !== firstWrite) return true;
  if (stages.includes("AWSPREVIOUS")) return true;
  return version.CreatedDate !== undefined && version.CreatedDate.getTime() < tutorialCreatedMs;
}
