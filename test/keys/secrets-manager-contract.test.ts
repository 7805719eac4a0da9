import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { SecretsManagerKeyStore } from "../../src/keys/secrets-manager-store.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";
import { keyStoreContract } from "./key-store-contract.js";

const endpoint = inject("motoEndpoint");

keyStoreContract("SecretsManagerKeyStore on moto", async () => {
  const store = new SecretsManagerKeyStore({
    endpoint,
    region: MOTO_REGION,
    credentials: MOTO_CREDENTIALS,
    // A fresh prefix per store: each contract case starts from an empty store without resetting moto.
    secretPrefix: `contract-${randomUUID()}/`,
  });
  return { store, cleanup: () => store.close() };
});
