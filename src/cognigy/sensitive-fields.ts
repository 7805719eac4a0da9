/**
 * Parses `X-Sensitive-Metadata: field:a,field:b`, the tutorial's way of flagging variables to seal.
 * Spaces around entries and after `field:` are tolerated; any other entry form is refused instead of being
 * skipped, so a typo cannot silently leave a sensitive value in plaintext.
 */
import { FieldsealError } from "../errors.js";

/** The flagged field names in header order, without duplicates. Undefined or blank header → []. */
export function parseSensitiveMetadata(header: string | undefined): string[] {
  if (header === undefined || header.trim() === "") return [];
  const fields: string[] = [];
  header.split(",").forEach((raw, index) => {
    const entry = raw.trim();
    const match = /^field\s*:\s*(\S(?:.*\S)?)$/.exec(entry);
    if (match?.[1] === undefined) {
      throw new FieldsealError(
        "invalid_argument",
        `X-Sensitive-Metadata entry ${index + 1} is not of the form "field:<name>"`,
      );
    }
    if (!fields.includes(match[1])) fields.push(match[1]);
  });
  return fields;
}
