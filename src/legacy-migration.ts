/**
 * `fieldseal legacy migrate`: an operator's bulk job that rewraps a stream of sealed values (legacy
 * tutorial blobs, and fs1 values too) to fs1 envelopes under the primary version, without ever printing a
 * plaintext. One JSON line in, one JSON line out, in order; a bad line is reported and the job goes on.
 *
 * Input line:  {"scope": {"sessionId": "s1"} | {"userId": "u1"}, "field": "credit_card", "sealed": "...", "id": ...}
 * Output line: {"line": 1, "id": ..., "ok": true, "sealed": "fs1...", "keyring": "...", "fromVersion": 1,
 *               "toVersion": 2, "legacy": true}
 *          or: {"line": 2, "id": ..., "ok": false, "code": "envelope_tampered", "error": "..."}
 * `id` is optional (a string of up to 256 characters or an integer) and is echoed so results can be joined
 * back to their rows. Blank lines are skipped without output. See docs/keys.md, "Migrating legacy values".
 */
import type { Scope, SealContext } from "./engine/aad.js";
import { assertAadPart } from "./engine/names.js";
import { FieldsealError, isFieldsealError } from "./errors.js";

/** Longest input line accepted, in bytes: a legacy blob is at most 200,000 characters, plus the rest. */
export const MAX_MIGRATION_LINE_BYTES = 256 * 1024;

/** What rewrapping one value produced; `Sealer.rewrap` is the implementation. */
export type Rewrap = (
  ctx: SealContext,
  sealed: string,
) => Promise<{ sealed: string; keyring: string; fromVersion: number; toVersion: number; legacy: boolean }>;

/** Counts of one run. */
export interface MigrationSummary {
  readonly rewrapped: number;
  readonly failed: number;
}

interface Item {
  readonly ctx: SealContext;
  readonly sealed: string;
}

const NEWLINE = 0x0a;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads JSON lines from `input`, rewraps each value with `rewrap` and hands one result line (with its
 * trailing newline) per non-blank input line to `write`, which should wait for the output to drain.
 */
export async function migrateLegacyLines(
  input: AsyncIterable<Uint8Array>,
  write: (line: string) => Promise<void>,
  rewrap: Rewrap,
): Promise<MigrationSummary> {
  let rewrapped = 0;
  let failed = 0;
  let lineNo = 0;
  const handle = async (bytes: Uint8Array | undefined) => {
    lineNo++;
    const result = await migrateLine(bytes, lineNo, rewrap);
    if (result === undefined) return;
    if (result.ok) rewrapped++;
    else failed++;
    await write(`${JSON.stringify(result)}\n`);
  };

  // Bytes of the current line; `undefined` once it has grown past the limit (the rest is skipped).
  let parts: Uint8Array[] | undefined = [];
  let size = 0;
  for await (const chunk of input) {
    let start = 0;
    while (start <= chunk.length) {
      const end = chunk.indexOf(NEWLINE, start);
      const piece = chunk.subarray(start, end === -1 ? chunk.length : end);
      if (parts !== undefined) {
        size += piece.length;
        if (size > MAX_MIGRATION_LINE_BYTES) parts = undefined;
        else if (piece.length > 0) parts.push(Uint8Array.from(piece));
      }
      if (end === -1) break;
      await handle(parts === undefined ? undefined : Buffer.concat(parts));
      parts = [];
      size = 0;
      start = end + 1;
    }
  }
  if (parts === undefined || size > 0) await handle(parts === undefined ? undefined : Buffer.concat(parts));
  return { rewrapped, failed };
}

type LineResult =
  | {
      line: number;
      id?: string | number;
      ok: true;
      sealed: string;
      keyring: string;
      fromVersion: number;
      toVersion: number;
      legacy: boolean;
    }
  | { line: number; id?: string | number; ok: false; code: string; error: string };

/** One line's result; undefined for a blank line. `bytes` undefined: the line was too long. */
async function migrateLine(
  bytes: Uint8Array | undefined,
  line: number,
  rewrap: Rewrap,
): Promise<LineResult | undefined> {
  let id: string | number | undefined;
  try {
    if (bytes === undefined) {
      throw new FieldsealError("too_large", `line is longer than ${MAX_MIGRATION_LINE_BYTES} bytes`);
    }
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new FieldsealError("invalid_argument", "line is not UTF-8");
    }
    if (text.trim() === "") return undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      // Never quote the line: it may hold anything, a plaintext pasted by mistake included.
      throw new FieldsealError("invalid_argument", "line is not JSON");
    }
    const parsed = parseItem(raw);
    id = parsed.id;
    const r = await rewrap(parsed.item.ctx, parsed.item.sealed);
    return {
      line,
      ...(id === undefined ? {} : { id }),
      ok: true,
      sealed: r.sealed,
      keyring: r.keyring,
      fromVersion: r.fromVersion,
      toVersion: r.toVersion,
      legacy: r.legacy,
    };
  } catch (err) {
    // Fieldseal's messages never hold values or key material; anything else is reported without its text.
    const known = isFieldsealError(err) ? err : new FieldsealError("internal", "internal error");
    return { line, ...(id === undefined ? {} : { id }), ok: false, code: known.code, error: known.message };
  }
}

const KEYS = new Set(["scope", "field", "sealed", "id"]);

function parseItem(raw: unknown): { item: Item; id: string | number | undefined } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw invalid("line must be a JSON object with scope, field and sealed");
  }
  const obj = raw as Record<string, unknown>;
  const keys = Object.keys(obj);
  const unknown = keys.findIndex((key) => !KEYS.has(key));
  if (unknown >= 0) {
    // Not quoted: a key is part of the line, and an export may have put a value (a card number) there.
    throw invalid(`key ${unknown + 1} of the line is not one of scope, field, sealed, id`);
  }
  const { scope, field, sealed, id } = obj;
  if (
    id !== undefined &&
    !(typeof id === "string" && id.length <= 256) &&
    !(typeof id === "number" && Number.isSafeInteger(id))
  ) {
    throw invalid("id must be a string of up to 256 characters or an integer");
  }
  if (typeof field !== "string") throw invalid("field must be a string");
  assertAadPart("field name", field);
  if (typeof sealed !== "string" || sealed === "") throw invalid("sealed must be a non-empty string");
  return { item: { ctx: { scope: parseScope(scope), field }, sealed }, id };
}

function parseScope(raw: unknown): Scope {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw invalid('scope must be {"sessionId": ...} or {"userId": ...}');
  }
  const keys = Object.keys(raw);
  const { sessionId, userId } = raw as Record<string, unknown>;
  if (keys.length !== 1 || (sessionId === undefined && userId === undefined)) {
    throw invalid('scope must have exactly one of "sessionId" or "userId"');
  }
  if (sessionId !== undefined) {
    if (typeof sessionId !== "string") throw invalid("scope.sessionId must be a string");
    assertAadPart("session id", sessionId);
    return { kind: "session", id: sessionId };
  }
  if (typeof userId !== "string") throw invalid("scope.userId must be a string");
  assertAadPart("user id", userId);
  return { kind: "user", id: userId };
}

function invalid(message: string): FieldsealError {
  return new FieldsealError("invalid_argument", message);
}
