/** Mask formats: per-field checks and the masked forms returned beside sealed values. Pure: no I/O. */
export { cardBrand, cardDigits, luhnValid } from "./card.js";
export { parseFieldFormats, parseKeyringFieldFormats } from "./config.js";
export { emailParts } from "./email.js";
export {
  type FieldFormat,
  type FieldFormats,
  FORMAT_NAMES,
  type FormatName,
  type MaskedValue,
} from "./field-format.js";
export { genericText } from "./generic.js";
export { maskFields, maskValue } from "./mask.js";
export { nationalIdChars } from "./national-id.js";
export { normalizeForIndex } from "./normalize.js";
export { phoneDigits } from "./phone.js";
