/**
 * One Fieldseal RPC over the Connect protocol: an HTTP POST of JSON to
 * `<serviceUrl>/fieldseal.v1.FieldsealService/<Method>` with `authorization: Bearer <token>`, made with the
 * runtime's own fetch and bounded by an AbortSignal timeout (Cognigy stops an Extension after 20 s).
 * Every way it can fail becomes a NodeFailure whose reason a flow can branch on and whose message names no
 * value: request bodies are never echoed, and Fieldseal's own error messages carry no plaintext.
 */
import type { FieldsealConnectionValues } from "./connections/fieldseal.js";
import { NodeFailure } from "./failure.js";

/** The RPCs the nodes call. */
export type FieldsealMethod = "EncryptFields" | "DecryptField";

/**
 * Largest answer read: Fieldseal takes requests up to 1 MiB by default, and a sealed value is about 4/3 of
 * its plaintext, so its answers stay well below this; anything larger is not Fieldseal and is not buffered.
 */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/** Longest server message kept in a failure; Connect error messages are short, this bounds a surprise. */
const MAX_SERVER_MESSAGE = 300;

/** Validated Connection values. */
export interface FieldsealTarget {
  readonly baseUrl: URL;
  readonly token: string;
}

/** Checks the Connection a node was given: an http(s) URL without credentials in it, and a token. */
export function targetOf(connection: FieldsealConnectionValues | undefined): FieldsealTarget {
  const serviceUrl = typeof connection?.serviceUrl === "string" ? connection.serviceUrl.trim() : "";
  const token = typeof connection?.token === "string" ? connection.token.trim() : "";
  let baseUrl: URL;
  try {
    baseUrl = new URL(serviceUrl.endsWith("/") ? serviceUrl : `${serviceUrl}/`);
  } catch {
    throw new NodeFailure("bad_connection", "the Fieldseal Connection's serviceUrl is not a URL");
  }
  if (baseUrl.protocol !== "https:" && baseUrl.protocol !== "http:") {
    throw new NodeFailure("bad_connection", "the Fieldseal Connection's serviceUrl must be http(s)");
  }
  if (baseUrl.username !== "" || baseUrl.password !== "" || baseUrl.search !== "" || baseUrl.hash !== "") {
    throw new NodeFailure(
      "bad_connection",
      "the Fieldseal Connection's serviceUrl must have no user info, query or fragment",
    );
  }
  if (token === "" || /[\s\r\n]/.test(token)) {
    throw new NodeFailure("bad_connection", "the Fieldseal Connection has no usable token");
  }
  return { baseUrl, token };
}

/** Calls `method` with the JSON `body`; resolves with the decoded JSON answer object. */
export async function callFieldseal(
  target: FieldsealTarget,
  method: FieldsealMethod,
  body: unknown,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const url = new URL(`fieldseal.v1.FieldsealService/${method}`, target.baseUrl);
  const where = `${method} at ${target.baseUrl.host}`;
  let json: string;
  try {
    json = JSON.stringify(body);
  } catch (err) {
    // A BigInt or a cycle; the runtime's message may quote a key, never sent back, and no value.
    throw new NodeFailure(
      "unsendable_input",
      `a value cannot be sent to ${where} as JSON (${errorName(err)})`,
    );
  }
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        // The server stops working on the call when the node has given up on it.
        "connect-timeout-ms": String(timeoutMs),
        authorization: `Bearer ${target.token}`,
      },
      body: json,
      redirect: "error",
      // Covers connecting, the answer's head and reading its body.
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await readBounded(response, where);
  } catch (err) {
    if (err instanceof NodeFailure) throw err;
    throw transportFailure(err, where, timeoutMs);
  }
  const answer = parseJsonObject(text);
  if (!response.ok) {
    const reason = response.headers.get("fieldseal-reason") ?? stringField(answer, "code") ?? "";
    const code = stringField(answer, "code") ?? `HTTP ${response.status}`;
    const serverMessage = (stringField(answer, "message") ?? "").slice(0, MAX_SERVER_MESSAGE);
    throw new NodeFailure(
      reason === "" ? `http_${response.status}` : reason,
      `Fieldseal refused ${where}: ${code}${serverMessage === "" ? "" : `: ${serverMessage}`}`,
    );
  }
  if (answer === undefined) {
    throw new NodeFailure("bad_response", `Fieldseal's answer to ${where} is not a JSON object`);
  }
  return answer;
}

/** The answer's body as UTF-8 text, refused past MAX_ANSWER_BYTES without reading the rest. */
async function readBounded(response: Response, where: string): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  const tooLarge = () =>
    new NodeFailure(
      "bad_response",
      `Fieldseal's answer to ${where} is larger than ${MAX_ANSWER_BYTES} bytes`,
    );
  if (declared > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function transportFailure(err: unknown, where: string, timeoutMs: number): NodeFailure {
  const name = err instanceof Error ? err.name : "";
  if (name === "TimeoutError" || name === "AbortError") {
    return new NodeFailure("timeout", `no answer from Fieldseal ${where} within ${timeoutMs} ms`);
  }
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return new NodeFailure("timeout", `no answer from Fieldseal ${where} within ${timeoutMs} ms`);
  }
  return new NodeFailure(
    "unreachable",
    `cannot reach Fieldseal ${where}${code === undefined ? "" : ` (${code})`}`,
  );
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function stringField(json: Record<string, unknown> | undefined, key: string): string | undefined {
  const value = json?.[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}
