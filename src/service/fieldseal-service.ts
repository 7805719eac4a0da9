import { createHash } from "node:crypto";
import { fromJson, type JsonValue as PbJsonValue, toJson } from "@bufbuild/protobuf";
import { timestampFromMs, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type FieldError,
  type FieldsealService,
  type KeyInfo,
  type KeyVersionInfo,
  KeyVersionState,
  type Scope as PbScope,
  PushMode,
} from "../../gen/fieldseal/v1/fieldseal_pb.js";
import type { AuditEvent, AuditSink } from "../audit.js";
import { authorize, isAllowed, type Operation, type Principal } from "../auth/principals.js";
import type { Scope } from "../engine/aad.js";
import type { JsonValue } from "../engine/json-value.js";
import { assertAadPart, assertKeyringName } from "../engine/names.js";
import { FieldsealError, isFieldsealError } from "../errors.js";
import { destroyedThrough, latestVersion, liveVersion } from "../keys/keyring-state.js";
import type { KeyringState } from "../keys/types.js";
import { type FieldFormats, maskFields, normalizeForIndex } from "../masks/index.js";
import type { ScopeKeys } from "../scopes/scope-keys.js";
import type { Sealer } from "../sealer.js";
import { principalKey, requestIdKey } from "./context.js";
import { connectCodeFor, connectCodeName } from "./error-map.js";

/** Key administration the service needs; `Keyrings` is the implementation. */
export interface KeyAdmin {
  rotate(name: string, opts?: { expectedPrimary?: number }): Promise<KeyringState>;
  /** Creates a keyring with version 1; failed_precondition when it exists. */
  create(name: string): Promise<KeyringState>;
  retire(name: string, minDecryptVersion: number): Promise<KeyringState>;
  /** Destroys the material of versions below `below` (at most the minimum decryption version). */
  destroy(name: string, below: number, opts?: { retire?: boolean }): Promise<KeyringState>;
  describe(
    name: string,
  ): Promise<KeyringState & { rotateBy?: string; sealBudget: number; sealingVersion?: number }>;
  list(): Promise<string[]>;
}

/** Writes context into a Cognigy.AI session; `CognigyClient` is the implementation. */
export interface SessionPusher {
  push(req: {
    sessionId: string;
    userId?: string;
    context: Record<string, JsonValue>;
    idempotencyKey: string;
    mode?: "context_inject" | "variables_put";
  }): Promise<{ attempts: number; httpStatus: number; traceId?: string; deduplicated: boolean }>;
}

export interface ServiceDeps {
  readonly sealer: Sealer;
  readonly keys: KeyAdmin;
  readonly storeKind: string;
  readonly defaultKeyring: string;
  readonly audit: AuditSink;
  /** Absent when no Cognigy.AI endpoint is configured: PushSession then fails with FAILED_PRECONDITION. */
  readonly pusher?: SessionPusher;
  /** Field name → mask format; EncryptFields checks such fields and returns their masks. */
  readonly fieldFormats?: FieldFormats;
  /** Keyring → its own field formats (already merged over `fieldFormats`); others use `fieldFormats`. */
  readonly keyringFieldFormats?: ReadonlyMap<string, FieldFormats>;
  /** Most items one batch call may carry. */
  readonly maxBatchItems?: number;
  /** The erasable keyrings' scope keys; absent: no keyring is erasable and ForgetScope fails. */
  readonly scopes?: ScopeKeys;
}

/** Most fields one EncryptFields call (and so one webhook) may seal, unless `maxBatchItems` says otherwise. */
export const DEFAULT_MAX_BATCH = 1000;

/** Audit details of a legacy tutorial value: the field it claims was never authenticated. */
const LEGACY_AUDIT = { legacy: true, fieldLabel: "unauthenticated" } as const;
/** The operation a legacy value needs in place of each value operation. */
const LEGACY_OPS = { decrypt: "legacy_decrypt", rewrap: "legacy_rewrap" } as const;

/**
 * The FieldsealService handlers. Each one authenticates (via the interceptor's principal), authorizes,
 * validates, calls the Sealer or KeyAdmin, audits and translates; no crypto or key logic lives here.
 */
export function createFieldsealService(deps: ServiceDeps): ServiceImpl<typeof FieldsealService> {
  const maxBatch = deps.maxBatchItems ?? DEFAULT_MAX_BATCH;
  const globalFormats: FieldFormats = deps.fieldFormats ?? new Map();
  const formatsFor = (keyring: string): FieldFormats =>
    deps.keyringFieldFormats?.get(keyring) ?? globalFormats;
  const keyringOrDefault = (name: string) => {
    const keyring = name === "" ? deps.defaultKeyring : name;
    assertKeyringName(keyring);
    return keyring;
  };
  const audit = (ctx: HandlerContext, event: AuditEvent) =>
    deps.audit.record({ ...event, requestId: ctx.values.get(requestIdKey) });
  /**
   * The keyring a sealed value names, for authorization. A malformed value names none; it is then
   * checked as "any keyring" and fails to open right after, so nothing is opened without a grant.
   */
  const keyringIn = (sealed: string): string | undefined => {
    try {
      return deps.sealer.keyringOf(sealed);
    } catch {
      return undefined;
    }
  };
  /**
   * Authorizes opening (`decrypt`) or rewrapping `sealed` for `field`. A legacy tutorial blob needs the
   * legacy operation instead, whatever field it claims: its label is not authenticated, so a field grant
   * would be sidestepped by relabelling. Returns the audit details that mark a legacy value.
   */
  const allowValue = (
    ctx: HandlerContext,
    principal: Principal,
    op: "decrypt" | "rewrap",
    scope: Scope,
    field: string,
    sealed: string,
  ): Partial<AuditEvent> => {
    const legacy = deps.sealer.isLegacy(sealed);
    const marks = legacy ? LEGACY_AUDIT : {};
    allow(ctx, principal, legacy ? LEGACY_OPS[op] : op, {
      field,
      keyring: keyringIn(sealed),
      ...marks,
      ...scopeAudit(scope),
    });
    return marks;
  };
  /**
   * Opens one value (a legacy one only when `allowValue` granted it) and records the successful decrypt
   * (failures are recorded by the caller).
   */
  const openAudited = async (
    ctx: HandlerContext,
    principal: Principal,
    scope: Scope,
    field: string,
    sealed: string,
    marks: Partial<AuditEvent>,
  ) => {
    const opened = await deps.sealer.open({ scope, field }, sealed, { allowLegacy: marks.legacy === true });
    audit(ctx, {
      action: "decrypt",
      principal: principal.name,
      outcome: "ok",
      keyring: opened.keyring,
      version: opened.version,
      field,
      legacy: opened.legacy,
      ...(opened.legacy ? LEGACY_AUDIT : {}),
      ...scopeAudit(scope),
    });
    return opened;
  };
  /**
   * One failed item of a batch: audited (a denial already was, by allow()) and turned into its own error
   * result, so the rest of the batch goes on.
   */
  const itemFailed = (
    ctx: HandlerContext,
    principal: Principal,
    action: "decrypt" | "rewrap",
    scope: Scope,
    field: string,
    err: unknown,
    marks: Partial<AuditEvent>,
  ) => {
    if (!isFieldsealError(err, "permission_denied")) {
      audit(ctx, {
        action,
        principal: principal.name,
        outcome: "error",
        code: codeOf(err),
        field,
        ...marks,
        ...scopeAudit(scope),
      });
    }
    return { field, outcome: { case: "error" as const, value: fieldError(err) } };
  };
  /**
   * A key administration call: authorize, apply, audit the outcome (the version it produced or set), and
   * answer with the keyring as it is now.
   */
  const changeKeyring = async (
    ctx: HandlerContext,
    op: "rotate" | "retire" | "destroy",
    requested: string,
    apply: (keyring: string) => Promise<{ version: number; action?: "create" }>,
  ) => {
    const principal = callerOf(ctx);
    const keyring = keyringOrDefault(requested);
    allow(ctx, principal, op, { keyring });
    let applied: { version: number; action?: "create" };
    try {
      applied = await apply(keyring);
    } catch (err) {
      audit(ctx, { action: op, principal: principal.name, outcome: "error", code: codeOf(err), keyring });
      throw err;
    }
    const action = applied.action ?? op;
    audit(ctx, { action, principal: principal.name, outcome: "ok", keyring, version: applied.version });
    return { key: keyInfo(await deps.keys.describe(keyring), deps.storeKind, deps.scopes?.policy(keyring)) };
  };
  /** Authorizes `op` on the field(s) and keyring in `details`, or records the denial and throws. */
  const allow = (
    ctx: HandlerContext,
    principal: Principal,
    op: Operation,
    details: Partial<AuditEvent> = {},
  ) => {
    try {
      // An empty list must still be checked once: looping over nothing would allow anything.
      const fields =
        details.fields !== undefined && details.fields.length > 0 ? details.fields : [details.field];
      for (const field of fields) authorize(principal, op, { field, keyring: details.keyring });
    } catch (err) {
      audit(ctx, {
        action: op === "legacy_decrypt" ? "decrypt" : op === "legacy_rewrap" ? "rewrap" : op,
        principal: principal.name,
        outcome: "denied",
        code: "permission_denied",
        ...details,
      });
      throw err;
    }
  };

  return {
    async encryptFields(req, ctx) {
      const principal = callerOf(ctx);
      const scope = scopeOf(req.scope);
      const keyring = keyringOrDefault(req.keyring);
      const entries = Object.entries(req.fields);
      if (entries.length === 0)
        throw new FieldsealError("invalid_argument", "fields is empty: give at least one");
      if (entries.length > maxBatch) {
        throw new FieldsealError(
          "too_large",
          `${entries.length} fields in one call; the limit is ${maxBatch}`,
        );
      }
      const fieldNames = entries.map(([f]) => f);
      allow(ctx, principal, "encrypt", { keyring, fields: fieldNames, ...scopeAudit(scope) });
      const values = entries.map(([field, value]) => {
        assertAadPart("field name", field);
        return [field, valueToJson(value, `field "${field}"`)] as const;
      });
      const indexNames = [...new Set(req.indexFields)];
      const fieldValues = new Map(values);
      for (const [i, field] of indexNames.entries()) {
        // Not quoted: a confused caller may have put a value where a field name belongs.
        if (!fieldValues.has(field)) {
          throw new FieldsealError(
            "invalid_argument",
            `index_fields[${i}] (after removing repeats) names no field of fields`,
          );
        }
      }
      if (indexNames.length > 0) allow(ctx, principal, "index", { keyring, fields: indexNames });
      // Checked, masked and normalised before anything is sealed: a value that does not fit its format
      // fails the call.
      const fieldFormats = formatsFor(keyring);
      const masked = maskFields(fieldFormats, values);
      const toIndex = indexNames.map(
        (field) =>
          [field, normalizeForIndex(field, fieldFormats.get(field), fieldValues.get(field) ?? null)] as const,
      );
      const result = await deps.sealer.sealFields(keyring, scope, values);
      audit(ctx, {
        action: "encrypt",
        principal: principal.name,
        outcome: "ok",
        keyring: result.keyring,
        version: result.version,
        fields: fieldNames,
        ...scopeAudit(scope),
      });
      const indexes =
        toIndex.length === 0
          ? new Map<string, string>()
          : await deps.sealer.indexFields(result.keyring, result.version, toIndex);
      if (toIndex.length > 0) {
        audit(ctx, {
          action: "index",
          principal: principal.name,
          outcome: "ok",
          keyring: result.keyring,
          version: result.version,
          fields: indexNames,
          ...scopeAudit(scope),
        });
      }
      return {
        sealed: Object.fromEntries(result.sealed),
        keyring: result.keyring,
        keyVersion: result.version,
        masked: Object.fromEntries(masked),
        indexes: Object.fromEntries(indexes),
      };
    },

    async decryptField(req, ctx) {
      const principal = callerOf(ctx);
      const scope = scopeOf(req.scope);
      const field = requireText("field", req.field);
      assertAadPart("field name", field);
      const sealed = requireText("sealed", req.sealed);
      const marks = allowValue(ctx, principal, "decrypt", scope, field, sealed);
      try {
        const opened = await openAudited(ctx, principal, scope, field, sealed, marks);
        return {
          value: jsonToValue(opened.value),
          keyring: opened.keyring,
          keyVersion: opened.version,
          legacy: opened.legacy,
        };
      } catch (err) {
        audit(ctx, {
          action: "decrypt",
          principal: principal.name,
          outcome: "error",
          code: codeOf(err),
          field,
          ...marks,
          ...scopeAudit(scope),
        });
        throw err;
      }
    },

    async decryptFields(req, ctx) {
      const principal = callerOf(ctx);
      const scope = scopeOf(req.scope);
      checkBatch(req.items.length, maxBatch);
      const results = [];
      for (const item of req.items) {
        const field = item.field;
        let marks: Partial<AuditEvent> = {};
        try {
          checkItem(item);
          marks = allowValue(ctx, principal, "decrypt", scope, field, item.sealed);
          const opened = await openAudited(ctx, principal, scope, field, item.sealed, marks);
          results.push({
            field,
            outcome: { case: "value" as const, value: jsonToValue(opened.value) },
            keyVersion: opened.version,
          });
        } catch (err) {
          results.push(itemFailed(ctx, principal, "decrypt", scope, field, err, marks));
        }
      }
      return { results };
    },

    async rewrapFields(req, ctx) {
      const principal = callerOf(ctx);
      const scope = scopeOf(req.scope);
      checkBatch(req.items.length, maxBatch);
      const target = req.keyring === "" ? undefined : keyringOrDefault(req.keyring);
      allow(ctx, principal, "rewrap", { keyring: target, ...scopeAudit(scope) });
      const results = [];
      for (const item of req.items) {
        const field = item.field;
        let marks: Partial<AuditEvent> = {};
        try {
          checkItem(item);
          // Rewrapping opens the value under its own keyring: the caller needs rewrap rights there too
          // (legacy_rewrap for a legacy blob, which would otherwise come out as a value bound to whatever
          // field its unauthenticated label claims).
          marks = allowValue(ctx, principal, "rewrap", scope, field, item.sealed);
          // The new seal needs rewrap on its field and keyring. For an fs1 value going back to its own
          // keyring allowValue checked just that; legacy_rewrap has no field list, so a legacy blob needs
          // this check even then, or rewrap's field and keyring lists would never limit it.
          if (target !== undefined || marks.legacy === true) {
            allow(ctx, principal, "rewrap", {
              field,
              keyring: target ?? keyringIn(item.sealed),
              ...marks,
              ...scopeAudit(scope),
            });
          }
          const r = await deps.sealer.rewrap({ scope, field }, item.sealed, target, {
            allowLegacy: marks.legacy === true,
          });
          audit(ctx, {
            action: "rewrap",
            principal: principal.name,
            outcome: "ok",
            keyring: r.keyring,
            version: r.fromVersion,
            toVersion: r.toVersion,
            field,
            ...(r.legacy ? LEGACY_AUDIT : {}),
            ...scopeAudit(scope),
          });
          results.push({
            field,
            outcome: { case: "sealed" as const, value: r.sealed },
            fromKeyVersion: r.fromVersion,
            toKeyVersion: r.toVersion,
          });
        } catch (err) {
          results.push(itemFailed(ctx, principal, "rewrap", scope, field, err, marks));
        }
      }
      return { results };
    },

    async rotateKey(req, ctx) {
      const opts = req.expectedPrimaryVersion === 0 ? {} : { expectedPrimary: req.expectedPrimaryVersion };
      return changeKeyring(ctx, "rotate", req.keyring, async (keyring) => {
        try {
          const state = await deps.keys.rotate(keyring, opts);
          return { version: state.primary };
        } catch (err) {
          if (!req.create || !isFieldsealError(err, "keyring_not_found")) throw err;
        }
        if (req.expectedPrimaryVersion !== 0) {
          throw new FieldsealError(
            "failed_precondition",
            `keyring "${keyring}" does not exist, so its primary is not version ${req.expectedPrimaryVersion}`,
          );
        }
        try {
          const created = await deps.keys.create(keyring);
          return { version: created.primary, action: "create" };
        } catch (err) {
          // Created by someone else since our rotation found none: rotate it, as for any existing keyring.
          if (!isFieldsealError(err, "failed_precondition")) throw err;
          return { version: (await deps.keys.rotate(keyring)).primary };
        }
      });
    },

    async retireKeyVersions(req, ctx) {
      return changeKeyring(ctx, "retire", req.keyring, async (keyring) => {
        if (req.minDecryptVersion < 1) {
          throw new FieldsealError("invalid_argument", "min_decrypt_version must be at least 1");
        }
        await deps.keys.retire(keyring, req.minDecryptVersion);
        return { version: req.minDecryptVersion };
      });
    },

    async destroyKeyVersions(req, ctx) {
      let destroyed: number[] = [];
      const answer = await changeKeyring(ctx, "destroy", req.keyring, async (keyring) => {
        if (req.belowVersion < 2) {
          throw new FieldsealError(
            "invalid_argument",
            "below_version is required and must be at least 2 (versions below it are destroyed)",
          );
        }
        if (req.retire) allow(ctx, callerOf(ctx), "retire", { keyring });
        // Destroying a version also destroys every scope data key wrapped only under it: those scopes
        // could never seal or open again, an erasure nobody asked for. Re-wrapping them first is always
        // possible (the versions still hold material), so this is refused rather than forced.
        if (
          deps.scopes?.policy(keyring) !== undefined &&
          (await deps.scopes.wrapsBelow(keyring, req.belowVersion))
        ) {
          throw new FieldsealError(
            "failed_precondition",
            `keyring "${keyring}" has scope data keys still wrapped under versions below ${req.belowVersion}: destroying those versions would make their scopes unopenable; run "fieldseal scopes rewrap-keys --keyring ${keyring}" first`,
          );
        }
        const before = await deps.keys.describe(keyring);
        const after = await deps.keys.destroy(keyring, req.belowVersion, { retire: req.retire });
        // This call's own work: versions live before and destroyed after (a concurrent destroy's are not ours).
        destroyed = before.versions
          .filter((v) => v.version <= destroyedThrough(after) && liveVersion(after, v.version) === undefined)
          .map((v) => v.version);
        return { version: req.belowVersion };
      });
      return { ...answer, destroyedVersions: destroyed };
    },

    async describeKey(req, ctx) {
      const principal = callerOf(ctx);
      const keyring = keyringOrDefault(req.keyring);
      allow(ctx, principal, "describe", { keyring });
      const described = await deps.keys.describe(keyring);
      return {
        key: keyInfo(described, deps.storeKind, deps.scopes?.policy(keyring)),
        sealingVersion: described.sealingVersion ?? 0,
      };
    },

    async forgetScope(req, ctx) {
      const principal = callerOf(ctx);
      const keyring = keyringOrDefault(req.keyring);
      const scope = scopeOf(req.scope);
      const details = { keyring, ...scopeAudit(scope) };
      allow(ctx, principal, "forget", details);
      try {
        // The keyring must exist: a typo must not leave a tombstone in a keyring nobody uses, nor be
        // answered "not erasable", which reads as "add it to FIELDSEAL_ERASABLE_KEYRINGS".
        await deps.keys.describe(keyring);
        if (deps.scopes?.policy(keyring) === undefined) {
          throw new FieldsealError(
            "failed_precondition",
            `keyring "${keyring}" is not erasable (FIELDSEAL_ERASABLE_KEYRINGS): its values have no scope keys to forget`,
          );
        }
        const tombstone = await deps.scopes.forget(keyring, scope);
        if (tombstone.state !== "forgotten") {
          throw new FieldsealError("internal", "forget left a live scope key");
        }
        audit(ctx, {
          action: "forget",
          principal: principal.name,
          outcome: "ok",
          generation: tombstone.generation,
          ...details,
        });
        return {
          generation: tombstone.generation,
          forgottenAt: timestampFromMs(Date.parse(tombstone.forgottenAt)),
        };
      } catch (err) {
        audit(ctx, {
          action: "forget",
          principal: principal.name,
          outcome: "error",
          code: codeOf(err),
          ...details,
        });
        throw err;
      }
    },

    async listKeyrings(_req, ctx) {
      const principal = callerOf(ctx);
      allow(ctx, principal, "describe");
      // Only the keyrings the caller may describe are listed.
      const names = await deps.keys.list();
      return { keyrings: names.filter((keyring) => isAllowed(principal, "describe", { keyring })) };
    },

    async computeIndex(req, ctx) {
      const principal = callerOf(ctx);
      const keyring = keyringOrDefault(req.keyring);
      const field = requireText("field", req.field);
      assertAadPart("field name", field);
      allow(ctx, principal, "index", { keyring, field });
      try {
        const normalized = normalizeForIndex(field, formatsFor(keyring).get(field), req.value);
        const result = await deps.sealer.computeIndex(keyring, field, normalized, req.allVersions);
        audit(ctx, {
          action: "index",
          principal: principal.name,
          outcome: "ok",
          keyring: result.keyring,
          version: result.version,
          field,
        });
        return { indexes: result.indexes, keyring: result.keyring, keyVersion: result.version };
      } catch (err) {
        audit(ctx, {
          action: "index",
          principal: principal.name,
          outcome: "error",
          code: codeOf(err),
          keyring,
          field,
        });
        throw err;
      }
    },

    async pushSession(req, ctx) {
      const principal = callerOf(ctx);
      const sessionId = requireText("session_id", req.sessionId);
      const keys = Object.keys(req.context);
      // The context keys are the fields being pushed: a grant's field list limits them.
      allow(ctx, principal, "push", { scopeKind: "session", scopeId: sessionId, fields: keys });
      if (deps.pusher === undefined) {
        throw new FieldsealError(
          "failed_precondition",
          "no Cognigy.AI endpoint is configured (set FIELDSEAL_COGNIGY_BASE_URL)",
        );
      }
      if (keys.length === 0)
        throw new FieldsealError("invalid_argument", "context is empty: give at least one key");
      const context: Record<string, JsonValue> = {};
      for (const [k, v] of Object.entries(req.context)) context[k] = valueToJson(v, `context key "${k}"`);
      const mode =
        req.mode === PushMode.VARIABLES_PUT
          ? "variables_put"
          : req.mode === PushMode.CONTEXT_INJECT
            ? "context_inject"
            : undefined;
      const idempotencyKey =
        req.idempotencyKey !== ""
          ? req.idempotencyKey
          : derivedIdempotencyKey(sessionId, req.userId, context);
      try {
        const r = await deps.pusher.push({
          sessionId,
          ...(req.userId === "" ? {} : { userId: req.userId }),
          context,
          idempotencyKey,
          ...(mode === undefined ? {} : { mode }),
        });
        audit(ctx, {
          action: "push",
          principal: principal.name,
          outcome: "ok",
          scopeKind: "session",
          scopeId: sessionId,
          fields: keys,
        });
        return {
          attempts: r.attempts,
          httpStatus: r.httpStatus,
          deduplicated: r.deduplicated,
          traceId: r.traceId ?? "",
        };
      } catch (err) {
        audit(ctx, {
          action: "push",
          principal: principal.name,
          outcome: "error",
          code: codeOf(err),
          scopeKind: "session",
          scopeId: sessionId,
          fields: keys,
        });
        throw err;
      }
    },
  };
}

function callerOf(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  // The interceptor authenticates every FieldsealService call; reaching here without a principal is a bug.
  if (principal === undefined) throw new FieldsealError("unauthenticated", "no credentials presented");
  return principal;
}

function scopeOf(scope: PbScope | undefined): Scope {
  switch (scope?.id.case) {
    case "sessionId":
      assertAadPart("session id", scope.id.value);
      return { kind: "session", id: scope.id.value };
    case "userId":
      assertAadPart("user id", scope.id.value);
      return { kind: "user", id: scope.id.value };
    default:
      throw new FieldsealError(
        "invalid_argument",
        "scope is required: set scope.session_id or scope.user_id",
      );
  }
}

function scopeAudit(scope: Scope): Pick<AuditEvent, "scopeKind" | "scopeId"> {
  return { scopeKind: scope.kind, scopeId: scope.id };
}

function requireText(name: string, value: string): string {
  if (value === "") throw new FieldsealError("invalid_argument", `${name} is required`);
  return value;
}

/** A batch item must name its field and carry a sealed value. */
function checkItem(item: { field: string; sealed: string }): void {
  requireText("field", item.field);
  assertAadPart("field name", item.field);
  requireText("sealed", item.sealed);
}

function checkBatch(count: number, max: number): void {
  if (count === 0) throw new FieldsealError("invalid_argument", "items is empty: give at least one");
  if (count > max) throw new FieldsealError("too_large", `${count} items in one call; the limit is ${max}`);
}

/**
 * The JSON a google.protobuf.Value stands for. A Value JSON has no form of (a number that is NaN or
 * infinite, which binary carries and JSON's `1e400` parses to, or a Value with no kind set, anywhere inside)
 * is the caller's mistake: INVALID_ARGUMENT naming `what`, not the plain Error protobuf-es throws.
 */
function valueToJson(value: Value, what: string): JsonValue {
  try {
    return toJson(ValueSchema, value) as JsonValue;
  } catch {
    throw new FieldsealError(
      "invalid_argument",
      `${what}: the value has no JSON form (a number that is NaN or infinite, or a Value with no kind set)`,
    );
  }
}

function jsonToValue(value: JsonValue): Value {
  return fromJson(ValueSchema, value as PbJsonValue);
}

function codeOf(err: unknown): string {
  return isFieldsealError(err) ? err.code : "internal";
}

function fieldError(err: unknown): FieldError {
  const safe = isFieldsealError(err) ? err : new FieldsealError("internal", "internal error");
  return {
    $typeName: "fieldseal.v1.FieldError",
    code: connectCodeName(connectCodeFor(safe.code)),
    message: safe.message,
    reason: safe.code,
  };
}

/** Same request, same key: a client that retries PushSession without a key still cannot apply it twice. */
function derivedIdempotencyKey(
  sessionId: string,
  userId: string,
  context: Record<string, JsonValue>,
): string {
  const canonical = JSON.stringify([
    sessionId,
    userId,
    Object.entries(context).sort(([a], [b]) => (a < b ? -1 : 1)),
  ]);
  return `fs-${createHash("sha256").update(canonical).digest("base64url").slice(0, 32)}`;
}

function keyInfo(
  state: KeyringState & { rotateBy?: string; sealBudget: number },
  store: string,
  erasable: { reuseAfterForget: boolean } | undefined,
): KeyInfo {
  const tombstones = (state.destroyed ?? []).flatMap((range) =>
    Array.from(
      { length: range.through - range.from + 1 },
      (_, i): KeyVersionInfo => ({
        $typeName: "fieldseal.v1.KeyVersionInfo",
        version: range.from + i,
        state: KeyVersionState.DESTROYED,
        sealsReserved: 0n,
        legacyLabel: "",
        destroyedAt: timestampFromMs(Date.parse(range.destroyedAt)),
      }),
    ),
  );
  if (tombstones.length + state.versions.length !== latestVersion(state)) {
    throw new FieldsealError("internal", `keyring "${state.name}" lists the wrong number of versions`);
  }
  return {
    $typeName: "fieldseal.v1.KeyInfo",
    name: state.name,
    primaryVersion: state.primary,
    minDecryptVersion: state.minDecryptVersion,
    store,
    sealBudget: BigInt(state.sealBudget),
    erasable: erasable !== undefined,
    reuseAfterForget: erasable?.reuseAfterForget === true,
    ...(state.rotateBy === undefined ? {} : { rotateBy: timestampFromMs(Date.parse(state.rotateBy)) }),
    versions: [
      ...tombstones,
      ...state.versions.map(
        (v): KeyVersionInfo => ({
          $typeName: "fieldseal.v1.KeyVersionInfo",
          version: v.version,
          state:
            v.version === state.primary
              ? KeyVersionState.PRIMARY
              : v.version < state.minDecryptVersion
                ? KeyVersionState.RETIRED
                : KeyVersionState.DECRYPT_ONLY,
          createdAt: timestampFromMs(Date.parse(v.createdAt)),
          sealsReserved: BigInt(v.sealsReserved),
          legacyLabel: v.legacyLabel ?? "",
        }),
      ),
    ],
  };
}
