import type { IConnectionSchema } from "@cognigy/extension-tools";

/**
 * The "fieldseal" Connection: where Fieldseal runs and the bearer token of the principal the flow calls as.
 * Cognigy stores Connection fields encrypted. It has no HMAC key: Fieldseal checks HMAC signatures only on
 * its webhook, and the nodes call the RPCs, which authenticate by bearer token alone, so a key here would
 * be a secret stored for nothing.
 */
export const fieldsealConnection: IConnectionSchema = {
  type: "fieldseal",
  label: "Fieldseal",
  fields: [{ fieldName: "serviceUrl" }, { fieldName: "token" }],
};

/** A Connection's values as a node receives them in `config.connection`. */
export interface FieldsealConnectionValues {
  serviceUrl?: unknown;
  token?: unknown;
}
