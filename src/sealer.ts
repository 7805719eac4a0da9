import type { Scope, SealContext } from "./engine/aad.js";
import { blindIndex } from "./engine/blind-index.js";
import { envelopeKeyring, looksLikeEnvelope, parseEnvelope } from "./engine/envelope.js";
import type { JsonValue } from "./engine/json-value.js";
import { openLegacyBlob, parseLegacyBlob } from "./engine/legacy.js";
import {
  looksLikeScopedEnvelope,
  openScopedField,
  parseScopedEnvelope,
  sealScopedField,
} from "./engine/scoped.js";
import { type EngineKey, openField, sealField } from "./engine/seal.js";
import { FieldsealError, isFieldsealError } from "./errors.js";
import type { ScopeKeys } from "./scopes/scope-keys.js";

/** Where the sealer gets key material; `Keyrings` is the implementation. */
export interface KeySource {
  sealingKey(keyring: string, count?: number): Promise<EngineKey>;
  openingKey(keyring: string, version: number): Promise<EngineKey>;
  openingKeyByLegacyLabel(keyring: string, label: string): Promise<EngineKey>;
  /** The primary version, then (with `allVersions`) every other version that still opens, newest first. */
  indexingKeys(keyring: string, allVersions?: boolean): Promise<EngineKey[]>;
}

/** Counts for metrics. It sees how many fields and which outcome, never a value or a field name. */
export interface SealerObserver {
  fieldsSealed(count: number): void;
  /** `outcome` is "ok" or the FieldsealError code. */
  fieldOpened(outcome: string): void;
  /**
   * A plain fs1 value (no scope key, so ForgetScope cannot erase it) opened on a keyring this server treats
   * as erasable: sealed before the keyring was made erasable, or by a replica configured without it.
   */
  unerasableOpened?(keyring: string): void;
}

/** What opening a sealed value found. */
export interface Opened {
  readonly value: JsonValue;
  readonly keyring: string;
  readonly version: number;
  readonly legacy: boolean;
}

/** How a call may treat a legacy tutorial blob. */
export interface OpenOptions {
  /**
   * True only when the caller holds the legacy permission (or is an operator's own tool). A legacy blob's
   * field label is unauthenticated, so a grant on the field it claims is no reason to open it.
   */
  readonly allowLegacy?: boolean;
}

/**
 * Seals and opens fields with keys from a KeySource: the engine plus key lookup, nothing else. Both the
 * RPC handlers and the CLI use it, so every path seals the same way.
 */
export class Sealer {
  readonly #keys: KeySource;
  readonly #legacyKeyring: string;
  readonly #legacyEnabled: boolean;
  readonly #observer: SealerObserver | undefined;
  readonly #scopes: ScopeKeys | undefined;

  /**
   * `legacyEnabled: false` (after migration) makes every legacy blob fail with `legacy_disabled`. `scopes`
   * holds the erasable keyrings' scope keys: their values are sealed scope-keyed (fs1s); without it, no
   * keyring is erasable and an fs1s value fails with failed_precondition.
   */
  constructor(
    keys: KeySource,
    options: {
      legacyKeyring: string;
      legacyEnabled?: boolean;
      observer?: SealerObserver;
      scopes?: ScopeKeys;
    },
  ) {
    this.#keys = keys;
    this.#scopes = options.scopes;
    this.#legacyKeyring = options.legacyKeyring;
    this.#legacyEnabled = options.legacyEnabled ?? true;
    this.#observer = options.observer;
  }

  /**
   * Seals every field under the keyring's primary version. All fields are sealed before anything is
   * returned: a bad value fails the whole call, naming the field.
   */
  async sealFields(
    keyring: string,
    scope: Scope,
    fields: ReadonlyArray<readonly [string, JsonValue]>,
  ): Promise<{ sealed: Map<string, string>; keyring: string; version: number }> {
    if (fields.length === 0) throw new FieldsealError("invalid_argument", "no fields to seal");
    const seal = await this.#sealerFor(keyring, scope, fields.length);
    const sealed = new Map<string, string>();
    for (const [field, value] of fields) {
      try {
        sealed.set(field, seal.seal(field, value));
      } catch (err) {
        throw nameField(err, field);
      }
    }
    this.#observer?.fieldsSealed(sealed.size);
    return { sealed, keyring: seal.keyring, version: seal.version };
  }

  /**
   * Seals values of one scope under the keyring's primary: scope-keyed when the keyring is erasable. Both
   * keys are fetched first; the returned function is synchronous, so no key can change under a batch.
   */
  async #sealerFor(
    keyring: string,
    scope: Scope,
    count: number,
  ): Promise<{ keyring: string; version: number; seal: (field: string, value: JsonValue) => string }> {
    const key = await this.#keys.sealingKey(keyring, count);
    if (this.#scopes?.policy(key.keyring) === undefined) {
      return {
        keyring: key.keyring,
        version: key.version,
        seal: (field, value) => sealField(key, { scope, field }, value),
      };
    }
    const scoped = this.#scopes.cachedSealingKey(key, scope) ?? (await this.#scopes.sealingKey(key, scope));
    return {
      keyring: key.keyring,
      version: key.version,
      seal: (field, value) => sealScopedField(scoped, { scope, field }, value),
    };
  }

  /**
   * Blind indexes of normalised values under one version of `keyring` (the version EncryptFields just
   * sealed with), by field.
   */
  async indexFields(
    keyring: string,
    version: number,
    fields: ReadonlyArray<readonly [string, string]>,
  ): Promise<Map<string, string>> {
    const key = await this.#keys.openingKey(keyring, version);
    return new Map(fields.map(([field, normalized]) => [field, blindIndex(key, field, normalized)]));
  }

  /**
   * The blind index of a normalised value for `field`: under the primary version, then (with
   * `allVersions`) under every other version that still opens values, newest first. Nothing is sealed.
   */
  async computeIndex(
    keyring: string,
    field: string,
    normalized: string,
    allVersions: boolean,
  ): Promise<{ indexes: string[]; keyring: string; version: number }> {
    const keys = await this.#keys.indexingKeys(keyring, allVersions);
    const primary = keys[0] as EngineKey;
    return {
      indexes: keys.map((key) => blindIndex(key, field, normalized)),
      keyring: primary.keyring,
      version: primary.version,
    };
  }

  /**
   * The keyring a sealed value names (a legacy blob: the legacy keyring), read from the envelope's clear
   * header without opening it, so access to the keyring can be checked before any key is used.
   */
  keyringOf(sealed: string): string {
    if (looksLikeScopedEnvelope(sealed)) return parseScopedEnvelope(sealed).keyring;
    return looksLikeEnvelope(sealed) ? envelopeKeyring(sealed) : this.#legacyKeyring;
  }

  /**
   * True when `sealed` is a well-formed legacy tutorial blob, so callers can ask for the legacy permission
   * before opening it. Anything else is an fs1 envelope, or malformed whoever asks (envelope_malformed or
   * too_large from `open`, never a permission question). Reads the public format only; no key is used.
   */
  isLegacy(sealed: string): boolean {
    if (looksLikeEnvelope(sealed) || looksLikeScopedEnvelope(sealed)) return false;
    try {
      parseLegacyBlob(sealed);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Opens an `fs1` envelope, or a legacy tutorial blob sealed for `ctx` when `options.allowLegacy` is set
   * (otherwise a legacy blob fails with permission_denied before any key is fetched).
   */
  async open(ctx: SealContext, sealed: string, options: OpenOptions = {}): Promise<Opened> {
    try {
      const opened = await this.#open(ctx, sealed, options);
      this.#observer?.fieldOpened("ok");
      return opened;
    } catch (err) {
      this.#observer?.fieldOpened(isFieldsealError(err) ? err.code : "internal");
      throw err;
    }
  }

  async #open(ctx: SealContext, sealed: string, options: OpenOptions): Promise<Opened> {
    if (looksLikeScopedEnvelope(sealed)) {
      const envelope = parseScopedEnvelope(sealed);
      if (this.#scopes === undefined) {
        throw new FieldsealError(
          "failed_precondition",
          "an fs1s value (erasable keyring) opens only where the scope key database is open, which needs " +
            "FIELDSEAL_ERASABLE_KEYRINGS (scopes.erasableKeyrings) to list the keyring here too",
        );
      }
      // The version first: a retired or destroyed version fails as it does for fs1 values.
      const versionKey = await this.#keys.openingKey(envelope.keyring, envelope.version);
      const key =
        this.#scopes.cachedOpeningKey(versionKey, ctx.scope, envelope.generation) ??
        (await this.#scopes.openingKey(versionKey, ctx.scope, envelope.generation));
      return {
        value: openScopedField(key, ctx, envelope),
        keyring: key.keyring,
        version: key.version,
        legacy: false,
      };
    }
    if (looksLikeEnvelope(sealed)) {
      const envelope = parseEnvelope(sealed);
      const key = await this.#keys.openingKey(envelope.keyring, envelope.version);
      if (this.#scopes?.policy(key.keyring) !== undefined) this.#observer?.unerasableOpened?.(key.keyring);
      return {
        value: openField(key, ctx, envelope),
        keyring: key.keyring,
        version: key.version,
        legacy: false,
      };
    }
    const blob = parseLegacyBlob(sealed);
    if (!this.#legacyEnabled) {
      throw new FieldsealError(
        "legacy_disabled",
        "legacy tutorial values are turned off on this server (FIELDSEAL_LEGACY_ENABLED=false); rewrap them before turning it off",
      );
    }
    if (options.allowLegacy !== true) {
      throw new FieldsealError(
        "permission_denied",
        "this is a legacy tutorial value, whose field label is unauthenticated: opening or rewrapping it needs the legacy permission",
      );
    }
    const key = await this.#keys.openingKeyByLegacyLabel(this.#legacyKeyring, blob.keyVersionLabel);
    const value = openLegacyBlob(key.material, ctx.field, blob);
    return { value, keyring: key.keyring, version: key.version, legacy: true };
  }

  /**
   * Re-seals a value under the primary version of `keyring` (or of its own keyring), for the same scope
   * and field. The plaintext exists only inside this call. A legacy blob needs `options.allowLegacy`.
   */
  async rewrap(
    ctx: SealContext,
    sealed: string,
    keyring?: string,
    options: OpenOptions = {},
  ): Promise<{ sealed: string; fromVersion: number; toVersion: number; keyring: string; legacy: boolean }> {
    const opened = await this.open(ctx, sealed, options);
    const seal = await this.#sealerFor(keyring ?? opened.keyring, ctx.scope, 1);
    const resealed = seal.seal(ctx.field, opened.value);
    this.#observer?.fieldsSealed(1);
    return {
      sealed: resealed,
      fromVersion: opened.version,
      toVersion: seal.version,
      keyring: seal.keyring,
      legacy: opened.legacy,
    };
  }
}

function nameField(err: unknown, field: string): unknown {
  if (err instanceof FieldsealError && (err.code === "invalid_argument" || err.code === "too_large")) {
    return new FieldsealError(err.code, `field "${field}": ${err.message}`, { cause: err });
  }
  return err;
}
