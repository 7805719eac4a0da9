import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { multipartBoundary, parseMultipartForm } from "../../src/cognigy/multipart.js";
import { MalformedWebhookError } from "../../src/cognigy/webhook-body.js";
import { FieldsealError } from "../../src/errors.js";

const B = "----cognigyFormBoundary7MA4YWxk";

/** A multipart body as form-data libraries write it: CRLF line ends, a close delimiter and a final CRLF. */
function multipart(parts: Array<[string, string] | { headers: string[]; value: string }>, boundary = B) {
  const chunks = parts.map((p) =>
    Array.isArray(p)
      ? `--${boundary}\r\nContent-Disposition: form-data; name="${p[0]}"\r\n\r\n${p[1]}\r\n`
      : `--${boundary}\r\n${p.headers.join("\r\n")}\r\n\r\n${p.value}\r\n`,
  );
  return Buffer.from(`${chunks.join("")}--${boundary}--\r\n`, "utf8");
}

function refusal(run: () => unknown): MalformedWebhookError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedWebhookError);
    return err as MalformedWebhookError;
  }
  throw new Error("expected a refusal");
}

describe("multipart/form-data (RFC 7578)", () => {
  it("reads names and values in order, values byte-exact (line ends, quotes, non-ASCII)", () => {
    const body = multipart([
      ["sessionId", "s-1"],
      ["variables[note]", 'two\r\nlines "quoted" — ü €'],
      ["variables", '{"a":1}'],
      ["empty", ""],
    ]);
    expect(parseMultipartForm(body, B)).toEqual([
      ["sessionId", "s-1"],
      ["variables[note]", 'two\r\nlines "quoted" — ü €'],
      ["variables", '{"a":1}'],
      ["empty", ""],
    ]);
  });

  it("takes the boundary as a token or a quoted string, case-insensitively named", () => {
    expect(multipartBoundary(`multipart/form-data; boundary=${B}`)).toBe(B);
    expect(multipartBoundary(`multipart/form-data;BOUNDARY="a b:c"`)).toBe("a b:c");
    expect(multipartBoundary(`multipart/form-data; charset=utf-8; boundary="${B}"`)).toBe(B);
  });

  it.each([
    ["no parameters", "multipart/form-data"],
    ["no boundary parameter", "multipart/form-data; charset=utf-8"],
    ["an empty boundary", 'multipart/form-data; boundary=""'],
    ["a boundary over 70 characters", `multipart/form-data; boundary=${"x".repeat(71)}`],
    ["a boundary ending in a space", 'multipart/form-data; boundary="abc "'],
    ["a boundary with a character outside RFC 2046's set", "multipart/form-data; boundary=a@b"],
    ["an unterminated quoted boundary", 'multipart/form-data; boundary="abc'],
    ["a boundary given twice", "multipart/form-data; boundary=a; boundary=b"],
  ])("refuses %s (no_boundary)", (_, type) => {
    expect(refusal(() => multipartBoundary(type)).reason).toBe("no_boundary");
  });

  it("accepts text/plain and application/json parts in UTF-8, and identity transfer encodings", () => {
    const body = multipart([
      {
        headers: ['Content-Disposition: form-data; name="a"', "Content-Type: text/plain; charset=UTF-8"],
        value: "x",
      },
      {
        headers: ['content-disposition: form-data; name="b"', "content-type: application/json"],
        value: "{}",
      },
      {
        headers: ['Content-Disposition: form-data; name="c"', "Content-Transfer-Encoding: 8bit"],
        value: "y",
      },
    ]);
    expect(parseMultipartForm(body, B)).toEqual([
      ["a", "x"],
      ["b", "{}"],
      ["c", "y"],
    ]);
  });

  it.each<[string, Buffer, string]>([
    [
      "a body that does not start with the boundary (a preamble)",
      Buffer.from(`preamble\r\n${multipart([["a", "1"]])}`),
      "multipart_malformed",
    ],
    ["a JSON body", Buffer.from('{"sessionId":"s"}'), "multipart_malformed"],
    [
      "a body without its close delimiter",
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue`),
      "multipart_unterminated",
    ],
    ["a body that ends after a delimiter", Buffer.from(`--${B}`), "multipart_unterminated"],
    [
      "a body that ends inside part headers",
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="a"\r\n`),
      "multipart_unterminated",
    ],
    [
      "text after the close delimiter",
      Buffer.concat([multipart([["a", "1"]]), Buffer.from("sessionId=x")]),
      "multipart_malformed",
    ],
    ["a delimiter followed by other text", Buffer.from(`--${B}X\r\n`), "multipart_malformed"],
    [
      "a file part (filename)",
      multipart([{ headers: ['Content-Disposition: form-data; name="f"; filename="card.txt"'], value: "x" }]),
      "file_part",
    ],
    [
      "a file part (filename*)",
      multipart([
        { headers: ["Content-Disposition: form-data; name=f; filename*=UTF-8''c.txt"], value: "x" },
      ]),
      "file_part",
    ],
    [
      "a part without Content-Disposition",
      multipart([{ headers: ["Content-Type: text/plain"], value: "x" }]),
      "multipart_malformed",
    ],
    ["a part with no headers", Buffer.from(`--${B}\r\n\r\nvalue\r\n--${B}--`), "multipart_malformed"],
    [
      "a disposition other than form-data",
      multipart([{ headers: ['Content-Disposition: attachment; name="a"'], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "a part without a name",
      multipart([{ headers: ["Content-Disposition: form-data"], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "a name given twice in one disposition",
      multipart([{ headers: ['Content-Disposition: form-data; name="a"; name="b"'], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "a header given twice",
      multipart([
        {
          headers: ['Content-Disposition: form-data; name="a"', 'Content-Disposition: form-data; name="b"'],
          value: "x",
        },
      ]),
      "multipart_malformed",
    ],
    [
      "a folded header line",
      multipart([{ headers: ["Content-Disposition: form-data;", ' name="a"'], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "another header",
      multipart([{ headers: ['Content-Disposition: form-data; name="a"', "X-Extra: 1"], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "a part in another charset",
      multipart([
        {
          headers: ['Content-Disposition: form-data; name="a"', "Content-Type: text/plain; charset=latin1"],
          value: "x",
        },
      ]),
      "multipart_malformed",
    ],
    [
      "a binary part",
      multipart([
        {
          headers: ['Content-Disposition: form-data; name="a"', "Content-Type: application/octet-stream"],
          value: "x",
        },
      ]),
      "multipart_malformed",
    ],
    [
      "a base64 part",
      multipart([
        {
          headers: ['Content-Disposition: form-data; name="a"', "Content-Transfer-Encoding: base64"],
          value: "eA==",
        },
      ]),
      "multipart_malformed",
    ],
    [
      "an unterminated quoted name",
      multipart([{ headers: ['Content-Disposition: form-data; name="a'], value: "x" }]),
      "multipart_malformed",
    ],
    [
      "a value that is not UTF-8",
      Buffer.concat([
        Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\n`),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(`\r\n--${B}--`),
      ]),
      "invalid_utf8",
    ],
    [
      "a name that is not UTF-8",
      Buffer.concat([
        Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="`),
        Buffer.from([0xc3, 0x28]),
        Buffer.from(`"\r\n\r\nx\r\n--${B}--`),
      ]),
      "invalid_utf8",
    ],
  ])("refuses %s", (_, body, reason) => {
    expect(refusal(() => parseMultipartForm(body, B)).reason).toBe(reason);
  });

  it("refuses more parts than the limit, and part headers larger than the limit", () => {
    const parts = Array.from({ length: 5 }, (_, i): [string, string] => [`p${i}`, "v"]);
    expect(
      parseMultipartForm(multipart(parts.slice(0, 4)), B, { maxParts: 4, maxPartHeaderBytes: 1024 }),
    ).toHaveLength(4);
    expect(
      refusal(() => parseMultipartForm(multipart(parts), B, { maxParts: 4, maxPartHeaderBytes: 1024 }))
        .reason,
    ).toBe("too_many_parts");
    const long = multipart([
      { headers: [`Content-Disposition: form-data; name="${"n".repeat(2000)}"`], value: "x" },
    ]);
    expect(refusal(() => parseMultipartForm(long, B)).reason).toBe("part_header_too_large");
    // A header block with no end at all, longer than the limit, is refused by size, not read to the end.
    const endless = Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="a"; x=${"y".repeat(5000)}`);
    expect(refusal(() => parseMultipartForm(endless, B)).reason).toBe("part_header_too_large");
  });

  it("tolerates transport padding after a delimiter and line ends after the close delimiter", () => {
    const body = Buffer.from(
      `--${B} \t\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--${B}--\r\n\r\n`,
    );
    expect(parseMultipartForm(body, B)).toEqual([["a", "1"]]);
  });

  it("a value may contain the boundary text when not at a line start", () => {
    const body = multipart([["a", `x--${B}y`]]);
    expect(parseMultipartForm(body, B)).toEqual([["a", `x--${B}y`]]);
  });

  it("reads a 60 KiB body of 64 parts quickly enough to never hold a request (linear scans)", () => {
    const parts = Array.from({ length: 64 }, (_, i): [string, string] => [`p${i}`, "\r\n-".repeat(300)]);
    expect(parseMultipartForm(multipart(parts), B)).toHaveLength(64);
  });
});

describe("multipart/form-data (property)", () => {
  const text = fc.string({ unit: "grapheme", maxLength: 40 });
  it("reads back what a writer wrote, for any names and values without the delimiter", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            text.filter((n) => n !== "" && !/["\\\r\n]/.test(n)),
            text,
          ),
          { maxLength: 10 },
        ),
        (pairs) => {
          fc.pre(pairs.every(([, v]) => !`\r\n${v}`.includes(`\r\n--${B}`)));
          expect(parseMultipartForm(multipart(pairs), B)).toEqual(pairs);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("returns or throws MalformedWebhookError for any bytes, boundary and limits", () => {
    const tokens = fc.constantFrom(
      `--${B}`,
      `--${B}--`,
      "\r\n",
      "\r\n\r\n",
      'Content-Disposition: form-data; name="a"',
      "Content-Disposition: form-data; name=",
      "; filename=x",
      "Content-Type: text/plain",
      '"',
      "\\",
      "-",
      " ",
    );
    const body = fc.oneof(
      fc
        .array(fc.oneof(tokens, fc.string({ maxLength: 8 })), { maxLength: 30 })
        .map((a) => Buffer.from(a.join(""))),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(
        body,
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 200 }),
        (bytes, maxParts, maxHeader) => {
          try {
            const pairs = parseMultipartForm(bytes, B, { maxParts, maxPartHeaderBytes: maxHeader });
            expect(pairs.length).toBeLessThanOrEqual(maxParts);
          } catch (err) {
            expect(err).toBeInstanceOf(FieldsealError);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
