import type { Config } from "../config.js";
import { LocalFileKeyStore } from "./local-file-store.js";
import type { KeyStore } from "./types.js";

/** Builds the key store the configuration names. */
export async function keyStoreFromConfig(config: Config): Promise<KeyStore> {
  const ks = config.keyStore;
  if (ks.kind === "local") return new LocalFileKeyStore(ks.dir);
  const { SecretsManagerKeyStore } = await import("./secrets-manager-store.js");
  return new SecretsManagerKeyStore({
    secretPrefix: ks.secretPrefix,
    legacySecretIds: { ...ks.legacySecretIds },
    ...(ks.region === undefined ? {} : { region: ks.region }),
    ...(ks.endpoint === undefined ? {} : { endpoint: ks.endpoint }),
  });
}
