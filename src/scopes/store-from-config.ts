import type { ScopesConfig } from "../config.js";
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
  const { DynamoDbScopeKeyStore } = await import("./dynamodb-store.js");
  return new DynamoDbScopeKeyStore({
    table: s.table,
    ...(s.region === undefined ? {} : { region: s.region }),
    ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
  });
}
