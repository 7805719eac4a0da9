/** A JSON value as Cognigy.AI context variables hold them. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
