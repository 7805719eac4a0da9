/**
 * One Fieldseal RPC over the Connect protocol: an HTTP POST of JSON to
 * `<serviceUrl>/fieldseal.v1.FieldsealService/<Method>` with `authorization: Bearer <token>`, made with
 * Node's own http/https modules (what axios, the client of most of Cognigy's own Extensions, runs on inside
 * Cognigy's Extension sandbox; a global fetch is not documented there) and bounded by one timeout
 * (Cognigy stops an Extension after 20 s). Redirects are never followed, so the token goes to the
 * Connection's host only.
 * Every way it can fail becomes a NodeFailure whose reason a flow can branch on and whose message names no
 * value: request bodies are never echoed, and an error message is kept only from an answer that is
 * Fieldseal's (it has a `fieldseal-reason`) and quotes nothing that was sent.
 */
// Plain module names, as axios requires them: whether Cognigy's sandbox resolves the `node:` prefix is not
// documented, while `require("http")` is what Cognigy's own axios-based Extensions run.
// biome-ignore lint/style/useNodejsImportProtocol: see above
import type { IncomingHttpHeaders } from "http";
// biome-ignore lint/style/useNodejsImportProtocol: see above
import { request as httpRequest } from "http";
// biome-ignore lint/style/useNodejsImportProtocol: see above
import { request as httpsRequest } from "https";
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
  // Visible ASCII only: anything else cannot stand in an HTTP header, and Node would refuse it mid-call.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new NodeFailure("bad_connection", "the Fieldseal Connection has no usable token");
  }
  return { baseUrl, token };
}

/** A Fieldseal reason or Connect code as a flow branches on it; anything else is not kept. */
const REASON = /^[a-z][a-z0-9_]{0,63}$/;

/** Shortest sent text whose appearance in a server message withholds that message (a card's CVV has 3). */
const MIN_QUOTED = 3;

/**
 * Calls `method` with the JSON `body`; resolves with the decoded JSON answer object. A server message that
 * quotes a text inside `sent` (the values sent) or the token is not kept.
 */
export async function callFieldseal(
  target: FieldsealTarget,
  method: FieldsealMethod,
  body: unknown,
  timeoutMs: number,
  sent: unknown = undefined,
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
  const response = await post(url, target.token, json, timeoutMs, where);
  const answer = parseJsonObject(response.text);
  if (response.status < 200 || response.status > 299) {
    const header = response.headers["fieldseal-reason"];
    const reason = typeof header === "string" && REASON.test(header) ? header : undefined;
    const code = stringField(answer, "code");
    const shownCode = code !== undefined && REASON.test(code) ? code : `HTTP ${response.status}`;
    const message =
      reason === undefined
        ? ""
        : keptMessage(stringField(answer, "message"), [...textsOf(sent), target.token]);
    throw new NodeFailure(
      reason ?? `http_${response.status}`,
      `Fieldseal refused ${where}: ${shownCode}${message === "" ? "" : `: ${message}`}`,
    );
  }
  // Connect answers a unary call in JSON with application/json; anything else is not Fieldseal's answer.
  const type = (response.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (answer === undefined || type !== "application/json") {
    throw new NodeFailure("bad_response", `Fieldseal's answer to ${where} is not a JSON object`);
  }
  return answer;
}

/** Every text inside `value` a message could quote: strings and numbers, at any depth, each object once. */
function textsOf(value: unknown, into: string[] = [], seen = new WeakSet<object>()): string[] {
  if (typeof value === "string") into.push(value);
  else if (typeof value === "number" || typeof value === "boolean") into.push(String(value));
  else if (value !== null && typeof value === "object" && !seen.has(value)) {
    seen.add(value);
    for (const member of Object.values(value)) textsOf(member, into, seen);
  }
  return into;
}

/** A server message as kept in a failure: bounded, printable, and withheld if it quotes a sent text. */
function keptMessage(message: string | undefined, sent: readonly string[]): string {
  if (message === undefined) return "";
  const quotes = sent.some((text) => text.length >= MIN_QUOTED && message.includes(text));
  if (quotes) return "(the server's message quotes what was sent, so it is not kept)";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  return message.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, MAX_SERVER_MESSAGE);
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/**
 * POSTs `json` and reads the whole answer, refusing one past MAX_ANSWER_BYTES without reading the rest;
 * `timeoutMs` covers connecting, the answer's head and its body.
 */
function post(url: URL, token: string, json: string, timeoutMs: number, where: string): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const fail = (failure: NodeFailure): void =>
      settle(() => {
        request.destroy();
        reject(failure);
      });
    const tooLarge = () =>
      new NodeFailure(
        "bad_response",
        `Fieldseal's answer to ${where} is larger than ${MAX_ANSWER_BYTES} bytes`,
      );
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const request = send(
      url,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(json, "utf8")),
          "connect-protocol-version": "1",
          // The server stops working on the call when the node has given up on it.
          "connect-timeout-ms": String(timeoutMs),
          authorization: `Bearer ${token}`,
        },
        // A connection of its own, closed after the answer: nothing lingers after the run.
        agent: false,
      },
      (response) => {
        if (Number(response.headers["content-length"] ?? "0") > MAX_ANSWER_BYTES) {
          fail(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > MAX_ANSWER_BYTES) fail(tooLarge());
          else chunks.push(chunk);
        });
        response.on("end", () =>
          settle(() =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              text: Buffer.concat(chunks).toString("utf8"),
            }),
          ),
        );
        response.on("error", (err) => fail(transportFailure(err, where)));
        response.on("close", () =>
          fail(new NodeFailure("unreachable", `Fieldseal ${where} closed the connection mid-answer`)),
        );
      },
    );
    const timer = setTimeout(
      () => fail(new NodeFailure("timeout", `no answer from Fieldseal ${where} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    request.on("error", (err) => fail(transportFailure(err, where)));
    request.end(json);
  });
}

function transportFailure(err: unknown, where: string): NodeFailure {
  const code = (err as { code?: unknown } | null)?.code;
  const shown = typeof code === "string" && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
  return new NodeFailure(
    "unreachable",
    `cannot reach Fieldseal ${where}${shown === undefined ? "" : ` (${shown})`}`,
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
  const value = json !== undefined && Object.hasOwn(json, key) ? json[key] : undefined;
  return typeof value === "string" && value !== "" ? value : undefined;
}
