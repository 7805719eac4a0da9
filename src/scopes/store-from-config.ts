import type { ScopesConfig } from "../config.js";
import { SqliteScopeKeyStore } from "./sqlite-store.js";
import type { ScopeKeyStore } from "./types.js";

/** Builds the scope-key database the configuration names (DynamoDB's SDK is loaded only when used). */
export async function scopeKeyStoreFromConfig(config: ScopesConfig): Promise<ScopeKeyStore> {
  const s = config.store;
  if (s.kind === "sqlite") return new SqliteScopeKeyStore(s.file);
  const { DynamoDbScopeKeyStore } = await import("./dynamodb-store.js");
  return new DynamoDbScopeKeyStore({
    table: s.table,
    ...(s.region === undefined ? {} : { region: s.region }),
    ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
  });
}
