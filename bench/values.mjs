/** The values every part of the bench seals: the same bytes for Fieldseal and for each reference. */

/** 16 bytes: a card number, the tutorial's own example. */
export const CARD = "4111111111111111";

/** A JSON object of about 1 KiB (serialized), deterministic so runs compare. */
export function jsonObjectOfSize(bytes) {
  const obj = { customer: { id: "cust_8f3a2c1d", tier: "gold", verified: true }, items: [] };
  let i = 0;
  while (JSON.stringify(obj).length < bytes - 48) {
    obj.items.push({ sku: `SKU-${1000 + i}`, qty: (i % 7) + 1, price: 9.99 + i });
    i++;
  }
  obj.note = "x".repeat(Math.max(0, bytes - JSON.stringify({ ...obj, note: "" }).length));
  return obj;
}

export const JSON_1K = jsonObjectOfSize(1024);

/** A string of `n` ASCII bytes. */
export function stringOfSize(n) {
  const base = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  return base.repeat(Math.ceil(n / base.length)).slice(0, n);
}
