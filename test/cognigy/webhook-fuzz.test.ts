import { Agent } from "node:http";
import * as http2 from "node:http2";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSensitiveMetadata } from "../../src/cognigy/sensitive-fields.js";
import { MalformedWebhookError, parseJsonText } from "../../src/cognigy/webhook-body.js";
import { parseWebhook } from "../../src/cognigy/webhook-payload.js";
import { signWebhookV2 } from "../../src/cognigy/webhook-signature.js";
import { FieldsealError } from "../../src/errors.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { postRaw } from "./raw-http.js";

/** Runs `parse` and passes when it returns or throws a FieldsealError; anything else fails the property. */
function onlyFieldsealErrors(parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(FieldsealError);
  }
}

const fieldName = fc.oneof(
  fc.constantFrom("credit_card", "ssn", "__proto__", "constructor", "a", ""),
  fc.string({ maxLength: 12 }),
);
const sensitiveHeader = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 200 }),
  fc
    .tuple(
      fc.array(fc.tuple(fc.constantFrom("field:", "field :", "", "x:", " field: "), fieldName), {
        maxLength: 8,
      }),
      fc.constantFrom(",", ", ", ",,"),
    )
    .map(([entries, separator]) => entries.map(([p, f]) => `${p}${f}`).join(separator)),
);
const contentType = fc.oneof(
  fc.constantFrom(
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzzBoundary42",
    "multipart/form-data",
    "text/plain",
    "",
  ),
  fc.string({ maxLength: 40 }),
);
/** Payloads shaped like Cognigy's, with every part sometimes the wrong type. */
const payload = fc.record(
  {
    sessionId: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 })),
    userId: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 })),
    variables: fc.oneof(
      fc.dictionary(fieldName, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
      fc.jsonValue(),
    ),
    context: fc.jsonValue({ maxDepth: 2 }),
    sensitive: fc.oneof(fc.array(fieldName, { maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);
const form = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("sessionId", "userId", "variables", "sensitive", "sensitive[]"),
        fieldName.map((f) => `variables[${f}]`),
        fc.string({ maxLength: 15 }),
      ),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ""),
      ),
    ),
    { maxLength: 10 },
  )
  .map((pairs) => new URLSearchParams(pairs).toString());
const body = fc.oneof(
  payload.map((p) => JSON.stringify(p)),
  form,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ""),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
);

describe("webhook parsing (property)", () => {
  it("parseWebhook returns or throws FieldsealError for any content type, body and header", () => {
    fc.assert(
      fc.property(contentType, body, sensitiveHeader, (type, text, header) => {
        onlyFieldsealErrors(() => {
          const parsed = parseWebhook(type, Buffer.from(text, "utf8"), header);
          // Whatever it accepts is consistent: a flagged field is one of the variables with a value, or missing.
          for (const f of parsed.sensitive) {
            const present =
              Object.hasOwn(parsed.variables, f) &&
              parsed.variables[f] !== null &&
              parsed.variables[f] !== "";
            expect(parsed.missing.includes(f)).toBe(!present);
          }
          expect(parsed.sessionId.trim()).not.toBe("");
        });
      }),
      { numRuns: 3000 },
    );
  });

  it("parseSensitiveMetadata returns field names or throws FieldsealError for any header", () => {
    fc.assert(
      fc.property(sensitiveHeader, (header) => {
        onlyFieldsealErrors(() => {
          const fields = parseSensitiveMetadata(header);
          expect(new Set(fields).size).toBe(fields.length);
          for (const f of fields) expect(f).not.toBe("");
        });
      }),
      { numRuns: 3000 },
    );
  });
});

describe("strict JSON text (property)", () => {
  it("accepts whatever JSON.stringify writes and parses it as JSON.parse does", () => {
    // JSON.stringify writes each double in its shortest exact spelling and no name twice: nothing to refuse.
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value);
        expect(parseJsonText(text, "body", 1000)).toEqual(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
  });

  it("checks a number token of 200,000 digits in linear time (a run of zeros once cost quadratic time)", () => {
    // Quadratic, this took about 20 s on a 2-core machine; linear, a few milliseconds.
    for (const token of [
      `1${"0".repeat(200_000)}1`,
      `0.${"0".repeat(200_000)}1`,
      `1${"0".repeat(200_000)}`,
    ]) {
      const started = performance.now();
      expect(() => parseJsonText(`[${token}]`, "body", 10)).toThrow(MalformedWebhookError);
      expect(performance.now() - started).toBeLessThan(2000);
    }
  });

  it("refuses a number exactly when it does not survive a round trip through a double", () => {
    const digits = fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 1, maxLength: 25 });
    const number = fc
      .tuple(fc.boolean(), digits, fc.option(digits), fc.option(fc.integer({ min: -400, max: 400 })))
      .map(([minus, int, frac, exp]) => {
        const whole = int.replace(/^0+(?=\d)/, "");
        return `${minus ? "-" : ""}${whole}${frac === null ? "" : `.${frac}`}${exp === null ? "" : `e${exp}`}`;
      });
    fc.assert(
      fc.property(number, (token) => {
        // Exact by BigInt arithmetic on the decimal: value * 10^k, compared with the double's own decimal.
        const exact = sameDecimal(token, String(Number(token)));
        try {
          expect(parseJsonText(`[${token}]`, "body", 10)).toEqual([Number(token)]);
          expect(exact).toBe(true);
        } catch (err) {
          if (!(err instanceof MalformedWebhookError)) throw err;
          expect(err.reason).toBe("inexact_number");
          expect(exact).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

/** True when two decimal spellings (JSON or JS number text) name the same rational number. */
function sameDecimal(a: string, b: string): boolean {
  if (!Number.isFinite(Number(b))) return false;
  const parse = (t: string) => {
    const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i.exec(t);
    if (m === null) throw new Error(`not a number: ${t}`);
    const frac = m[3] ?? "";
    const mantissa = BigInt(`${m[2]}${frac}`) * (m[1] === "-" ? -1n : 1n);
    return { mantissa, exp: Number(m[4] ?? "0") - frac.length };
  };
  const x = parse(a);
  const y = parse(b);
  if (x.mantissa === 0n || y.mantissa === 0n) return x.mantissa === 0n && y.mantissa === 0n;
  const e = Math.min(x.exp, y.exp);
  return x.mantissa * 10n ** BigInt(x.exp - e) === y.mantissa * 10n ** BigInt(y.exp - e);
}

/** Bytes node:http lets a client put in a header value (it refuses CR, LF, NUL and other controls). */
const headerByte = fc.oneof(
  fc.constant(0x09),
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
);
/** A header value as node:http takes it: one char per byte. */
const headerBytes = fc.array(headerByte, { maxLength: 80 }).map((b) => Buffer.from(b).toString("latin1"));
const wireSensitiveHeader = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom("field:credit_card", "field:credit_card,field:ssn", "", "field:café"),
  headerBytes,
  fc.constantFrom("field:", "field:caf").chain((p) => headerBytes.map((h) => `${p}${h}`)),
);
/** A payload that would be accepted, as bytes, to mutate. */
const goodJson = Buffer.from(
  JSON.stringify({ sessionId: "fuzz", variables: { credit_card: "4111111111111111", ssn: "1" } }),
);
const goodForm = Buffer.from(
  "sessionId=fuzz&variables%5Bcredit_card%5D=4111111111111111&variables%5Bssn%5D=1",
);
/** Inserts, overwrites or deletes a few bytes of `base` anywhere. */
const mutated = (base: Buffer) =>
  fc
    .array(
      fc.tuple(
        fc.constantFrom("insert", "set", "delete"),
        fc.nat(base.length),
        fc.uint8Array({ minLength: 1, maxLength: 4 }),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((edits) => {
      let bytes = Buffer.from(base);
      for (const [op, at, with_] of edits) {
        const i = Math.min(at, bytes.length);
        if (op === "insert") bytes = Buffer.concat([bytes.subarray(0, i), with_, bytes.subarray(i)]);
        else if (op === "set")
          bytes = Buffer.concat([bytes.subarray(0, i), with_, bytes.subarray(i + with_.length)]);
        else bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + with_.length)]);
      }
      return bytes;
    });
const wireBody = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
  mutated(goodJson),
  mutated(goodForm),
  fc.constant(goodJson),
  fc.constant(goodForm),
  fc.nat(5000).map((n) => Buffer.from(`{"sessionId":"s","variables":{"credit_card":${"[".repeat(n)}`)),
  fc
    .nat(5000)
    .map((n) =>
      Buffer.from(`{"sessionId":"s","variables":{"credit_card":${"[".repeat(n)}${"]".repeat(n)}}}`),
    ),
  fc.string({ maxLength: 200 }).map((t) => Buffer.from(t, "utf8")),
  // Number-like tokens as the value: huge, tiny, long, malformed (1e400 once answered 500).
  fc
    .string({ unit: fc.constantFrom(..."0123456789.eE+-"), minLength: 1, maxLength: 30 })
    .map((n) => Buffer.from(`{"sessionId":"s","variables":{"credit_card":${n}}}`)),
);
const FUZZ_BOUNDARY = "fuzzBoundary42";
const goodMultipart = Buffer.from(
  [
    `--${FUZZ_BOUNDARY}\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\nfuzz\r\n`,
    `--${FUZZ_BOUNDARY}\r\nContent-Disposition: form-data; name="variables[credit_card]"\r\n`,
    "Content-Type: text/plain; charset=utf-8\r\n\r\n4111111111111111\r\n",
    `--${FUZZ_BOUNDARY}--\r\n`,
  ].join(""),
);
/** Multipart bodies: the good one mutated, or assembled from the grammar's pieces in any order. */
const multipartBody = fc.oneof(
  fc.constant(goodMultipart),
  mutated(goodMultipart),
  fc
    .array(
      fc.oneof(
        fc.constantFrom(
          `--${FUZZ_BOUNDARY}`,
          `--${FUZZ_BOUNDARY}--`,
          "\r\n",
          "\r\n\r\n",
          'Content-Disposition: form-data; name="sessionId"',
          'Content-Disposition: form-data; name="variables[credit_card]"',
          'Content-Disposition: form-data; name="variables"',
          "; filename=x",
          "Content-Type: text/plain",
          '{"credit_card":"4111111111111111"}',
          "4111111111111111",
        ),
        fc.string({ maxLength: 10 }),
      ),
      { maxLength: 40 },
    )
    .map((parts) => Buffer.from(parts.join(""))),
);
const multipartType = fc.oneof(
  fc.constant(`multipart/form-data; boundary=${FUZZ_BOUNDARY}`),
  fc.constant(`multipart/form-data; boundary="${FUZZ_BOUNDARY}"`),
  fc.constant("multipart/form-data"),
  fc.string({ maxLength: 80 }).map((p) => `multipart/form-data;${p}`),
);

const wireContentType = fc.constantFrom(
  "application/json",
  "application/x-www-form-urlencoded",
  "application/json; charset=utf-8",
);

describe("webhook over HTTP (property, real server)", () => {
  const SECRET = "fuzz-signing-secret-0123456789-abcdef";
  let fs: TestFieldseal;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const seen = new Map<number, number>();
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [
        { name: "bot", scopes: ["encrypt"] },
        { name: "flow", scopes: ["encrypt"] },
      ],
      settings: { webhook: { hmacSecrets: { flow: SECRET } } },
    });
  });
  afterAll(async () => {
    agent.destroy();
    await fs.close();
  });

  async function send(
    type: string,
    body: Buffer,
    sensitive: string | undefined,
    auth: Record<string, string>,
  ): Promise<void> {
    const headers: Record<string, string> = { "content-type": type, ...auth };
    if (sensitive !== undefined) headers["x-sensitive-metadata"] = sensitive;
    const answer = await postRaw(fs.url, body, headers, { agent });
    seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
    expect(answer.status).toBeLessThan(500);
    expect([200, 400, 401, 403, 413, 429]).toContain(answer.status);
    if (answer.status !== 200) {
      expect(answer.headers["content-type"]).toBe("application/problem+json");
      expect(answer.headers["fieldseal-reason"]).toBe(answer.json.code);
      expect(answer.text).not.toContain("4111111111111111");
    }
  }

  async function expectHealthy(): Promise<void> {
    expect((await fetch(`${fs.url}/healthz`)).status).toBe(200);
    const ok = await postRaw(fs.url, goodJson, {
      "content-type": "application/json",
      authorization: `Bearer ${fs.tokens.bot}`,
      "x-sensitive-metadata": "field:credit_card",
    });
    expect(ok.status).toBe(200);
  }

  it("bearer-token webhooks: arbitrary bytes in the body and X-Sensitive-Metadata never answer 5xx", async () => {
    seen.clear();
    await fc.assert(
      fc.asyncProperty(wireContentType, wireBody, wireSensitiveHeader, async (type, body, sensitive) => {
        await send(type, body, sensitive, { authorization: `Bearer ${fs.tokens.bot}` });
      }),
      { numRuns: 300 },
    );
    await expectHealthy();
    // The runs reached the seal as well as the refusals.
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect(seen.get(400) ?? 0).toBeGreaterThan(0);
  });

  it("multipart/form-data webhooks: arbitrary and mutated multipart bodies and boundaries never answer 5xx", async () => {
    seen.clear();
    await fc.assert(
      fc.asyncProperty(multipartType, multipartBody, async (type, body) => {
        await send(type, body, "field:credit_card", { authorization: `Bearer ${fs.tokens.bot}` });
      }),
      { numRuns: 400 },
    );
    await expectHealthy();
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect(seen.get(400) ?? 0).toBeGreaterThan(0);
  });

  it("bearer-token webhooks over HTTP/2: arbitrary bytes never answer 5xx", async () => {
    seen.clear();
    const session = http2.connect(fs.url);
    session.on("error", () => {});
    let refusedByClient = 0;
    try {
      await fc.assert(
        fc.asyncProperty(wireContentType, wireBody, wireSensitiveHeader, async (type, body, sensitive) => {
          const headers: http2.OutgoingHttpHeaders = {
            ":method": "POST",
            ":path": "/webhooks/cognigy",
            "content-type": type,
            authorization: `Bearer ${fs.tokens.bot}`,
          };
          if (sensitive !== undefined) headers["x-sensitive-metadata"] = sensitive;
          let stream: http2.ClientHttp2Stream;
          try {
            stream = session.request(headers);
          } catch {
            refusedByClient += 1; // node:http2 refuses some header bytes before sending: nothing to ask
            return;
          }
          const answer = await new Promise<{ status: number; reason: unknown; text: string } | undefined>(
            (resolve) => {
              let status = 0;
              let reason: unknown;
              let text = "";
              stream.on("response", (h) => {
                status = Number(h[":status"]);
                reason = h["fieldseal-reason"];
              });
              stream.on("data", (c: Buffer) => {
                text += c.toString("utf8");
              });
              stream.on("end", () => resolve({ status, reason, text }));
              // A header nghttp2 itself refuses resets the stream before the server's handler sees it.
              stream.on("error", () => resolve(undefined));
              stream.end(body);
            },
          );
          if (answer === undefined) {
            refusedByClient += 1;
            return;
          }
          seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
          expect([200, 400, 401, 403, 413, 429]).toContain(answer.status);
          if (answer.status !== 200) {
            expect(answer.reason).toBe(JSON.parse(answer.text).code);
            expect(answer.text).not.toContain("4111111111111111");
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      session.close();
    }
    await expectHealthy();
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect(seen.get(400) ?? 0).toBeGreaterThan(0);
    expect(refusedByClient).toBeLessThan(150);
  });

  it("signed webhooks: correctly signed arbitrary bytes, and arbitrary signature headers, never answer 5xx", async () => {
    const signedAuth = fc.oneof(
      // A correct v2 signature over exactly what goes on the wire, so parsing runs on the fuzzed bytes.
      fc.constant("correct" as const),
      fc.record({
        "x-fieldseal-key-id": fc.oneof(fc.constant("flow"), headerBytes),
        "x-fieldseal-timestamp": fc.oneof(fc.constant(String(Math.floor(Date.now() / 1000))), headerBytes),
        "x-fieldseal-signature": fc.oneof(
          headerBytes,
          fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `v2=${Buffer.from(b).toString("hex")}`),
        ),
      }),
    );
    seen.clear();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(wireContentType, wireBody, wireSensitiveHeader),
          // Well-formed requests too, so correctly signed ones get through to the seal (and their repeats
          // inside one second to the replay check).
          fc.tuple(
            fc.constantFrom("application/json", "application/x-www-form-urlencoded"),
            fc.constant(undefined),
            fc.constantFrom("field:credit_card", "field:credit_card,field:ssn", " field:ssn\t"),
          ),
        ),
        signedAuth,
        async ([type, fuzzed, sensitive], auth) => {
          const body = fuzzed ?? (type === "application/json" ? goodJson : goodForm);
          if (auth !== "correct") return send(type, body, sensitive, auth);
          const ts = Math.floor(Date.now() / 1000);
          // The server sees the header value with leading and trailing spaces and tabs removed (RFC 9110 5.5).
          const seenValue = sensitive?.replace(/^[ \t]+|[ \t]+$/g, "");
          const signature = signWebhookV2(SECRET, {
            method: "POST",
            path: "/webhooks/cognigy",
            timestampSec: ts,
            sensitiveMetadata: seenValue === undefined ? undefined : Buffer.from(seenValue, "latin1"),
            body,
          });
          return send(type, body, sensitive, {
            "x-fieldseal-key-id": "flow",
            "x-fieldseal-timestamp": String(ts),
            "x-fieldseal-signature": signature,
          });
        },
      ),
      { numRuns: 300 },
    );
    await expectHealthy();
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect(seen.get(401) ?? 0).toBeGreaterThan(0);
  });
});
