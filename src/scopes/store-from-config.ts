import type { ScopesConfig } from "../config.js";
import type { DynamoDbScopeKeyStore } from "./dynamodb-store.js";
import { ScopeKeys, type WrappingKeys } from "./scope-keys.js";
import type { ScopeKeyStore } from "./types.js";

/**
 * Builds the scope-key database the configuration names. Each driver is loaded only when used: a server
 * without erasable keyrings never loads node:sqlite or DynamoDB's SDK.
 */
export async function scopeKeyStoreFromConfig(config: ScopesConfig): Promise<ScopeKeyStore> {
  const s = config.store;
  if (s.kind === "sqlite") {
    const { SqliteScopeKeyStore } = await import("./sqlite-store.js");
    return new SqliteScopeKeyStore(s.file);
  }
  return dynamoDbScopeKeyStore(s);
}

/** The DynamoDB scope-key database of the configuration (also for `fieldseal scopes create-table`). */
export async function dynamoDbScopeKeyStore(
  s: Extract<ScopesConfig["store"], { kind: "dynamodb" }>,
): Promise<DynamoDbScopeKeyStore> {
  const { DynamoDbScopeKeyStore } = await import("./dynamodb-store.js");
  return new DynamoDbScopeKeyStore({
    table: s.table,
    ...(s.region === undefined ? {} : { region: s.region }),
    ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
  });
}

/**
 * The erasable keyrings' scope keys over the configured database, or undefined when no keyring is erasable
 * (the database is then never opened). The server and the CLI both seal and open through these.
 */
export async function scopeKeysFromConfig(
  config: ScopesConfig,
  keys: WrappingKeys,
): Promise<ScopeKeys | undefined> {
  if (Object.keys(config.erasable).length === 0) return undefined;
  return new ScopeKeys(await scopeKeyStoreFromConfig(config), keys, {
    erasable: new Map(Object.entries(config.erasable)),
    cacheTtlMs: config.cacheTtlMs,
    cacheEntries: config.cacheEntries,
  });
}
