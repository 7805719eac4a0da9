import type { IConnectionSchema } from "@cognigy/extension-tools";

/**
 * The "fieldseal" Connection: where Fieldseal runs and the bearer token of the principal the flow calls as.
 * Cognigy stores Connection fields encrypted. `hmacKey` is optional and not used by these nodes: Fieldseal
 * checks HMAC signatures only on its webhook, and the nodes call the RPCs, which take the bearer token.
 */
export const fieldsealConnection: IConnectionSchema = {
  type: "fieldseal",
  label: "Fieldseal",
  fields: [{ fieldName: "serviceUrl" }, { fieldName: "token" }, { fieldName: "hmacKey" }],
};

/** A Connection's values as a node receives them in `config.connection`. */
export interface FieldsealConnectionValues {
  serviceUrl?: unknown;
  token?: unknown;
  hmacKey?: unknown;
}
