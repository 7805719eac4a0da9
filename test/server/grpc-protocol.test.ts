import { create } from "@bufbuild/protobuf";
import { DurationSchema, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
// connect's own, @private, versions: imported here only to prove ours behave the same.
import { compressionNegotiate, mergeNonProtocolHeaders as theirMerge } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  abortReasonOfReset,
  mergeNonProtocolHeaders,
  negotiateResponseEncoding,
  parseGrpcTimeout,
  setGrpcTrailerStatus,
} from "../../src/server/grpc-protocol.js";

const shape = (r: { timeoutMs?: number; error?: ConnectError }) => ({
  timeoutMs: r.timeoutMs,
  code: r.error?.code,
  message: r.error?.rawMessage,
});

const entries = (h: Headers) => [...h.entries()];

describe("parseGrpcTimeout agrees with connect's parseTimeout", () => {
  const samples = [
    null,
    "1n",
    "999u",
    "1m",
    "5S",
    "3M",
    "2H",
    "00000001m",
    "99999999H",
    "99999999n",
    "123456789S",
    "0S",
    "soon",
    "",
    "1",
    "S",
    "1s",
    "1h",
    "-1S",
    "1.5S",
    " 1S",
    "1S ",
    "1S\n",
    "+1S",
    "１S",
  ];
  const limits = [Number.MAX_SAFE_INTEGER, 60_000, 1000, 1, 0];

  it.each(samples)("on %j", (value) => {
    for (const max of limits) {
      expect(shape(parseGrpcTimeout(value, max))).toEqual(shape(parseTimeout(value, max)));
    }
  });

  it("on arbitrary strings and limits", () => {
    const timeoutLike = fc
      .tuple(fc.stringMatching(/^\d{0,10}$/), fc.constantFrom("H", "M", "S", "m", "u", "n", "s", "", "x"))
      .map(([n, u]) => n + u);
    fc.assert(
      fc.property(fc.oneof(fc.string(), timeoutLike), fc.nat(), (value, max) => {
        expect(shape(parseGrpcTimeout(value, max))).toEqual(shape(parseTimeout(value, max)));
      }),
      { numRuns: 2000 },
    );
  });
});

function errors(): Record<string, ConnectError | undefined> {
  const withMetadata = new ConnectError(
    "nope: ünïcödé % / ? & = \n",
    Code.PermissionDenied,
    new Headers([
      ["fieldseal-reason", "permission_denied"],
      ["x-request-id", "r-1"],
      ["x-multi", "a"],
      // Protocol headers a handler must not be able to smuggle into the answer.
      ["content-type", "text/html"],
      ["grpc-status", "0"],
      ["grpc-message", "forged"],
      ["grpc-status-details-bin", "AAAA"],
      ["trailer-x", "1"],
      ["Date", "yesterday"],
      ["grpc-encoding", "gzip"],
    ]),
  );
  withMetadata.metadata.append("x-multi", "b");
  const wire = new ConnectError("from upstream", Code.Unavailable, new Headers({ "x-upstream": "1" }));
  wire.isWireError = true;
  const withDetails = new ConnectError("with details", Code.InvalidArgument, undefined, [
    { desc: StringValueSchema, value: { value: "field card" } },
    { desc: DurationSchema, value: create(DurationSchema, { seconds: 3n, nanos: 5 }) },
  ]);
  // A detail as it arrives from the wire (already an Any's type and bytes), relayed by a handler.
  withDetails.details.push({ type: "example.Raw", value: new Uint8Array([1, 2, 3]) });
  return {
    success: undefined,
    "an error with metadata": withMetadata,
    "an error relayed from the wire": wire,
    "an error with details": withDetails,
    "an error with an empty message": new ConnectError("", Code.Internal),
    // Quotes, colons, commas, a literal %, non-ASCII and an astral character: what percent-encoding must carry.
    "an error whose message needs percent-encoding": new ConnectError(
      'field "café" does not fit its format "card": it fails, 100% 🚀; a/b?c#d',
      Code.InvalidArgument,
    ),
    "an error wrapping another": new ConnectError(
      "internal error",
      Code.Internal,
      undefined,
      undefined,
      new Error("x"),
    ),
  };
}

describe("setGrpcTrailerStatus agrees with connect's setTrailerStatus", () => {
  it.each(Object.keys(errors()))("for %s", (name) => {
    const target = () => new Headers({ "x-set-by-handler": "kept", "grpc-status": "0" });
    const ours = setGrpcTrailerStatus(target(), errors()[name]);
    const theirs = setTrailerStatus(target(), errors()[name]);
    expect(entries(ours)).toEqual(entries(theirs));
    expect(ours.get("x-set-by-handler")).toBe("kept");
  });
});

describe("grpc-message percent-encoding", () => {
  /** The gRPC spec's decoding (PROTOCOL-HTTP2.md, Status-Message): every %XX is a byte; the bytes are UTF-8. */
  const specDecode = (text: string) => {
    const bytes: number[] = [];
    for (let i = 0; i < text.length; i++) {
      const hex = text.slice(i + 1, i + 3);
      if (text[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
      } else bytes.push(text.charCodeAt(i));
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  };

  it("reads back exactly for spec decoders (grpc-go, grpcio) and connect's decodeURIComponent", () => {
    const message = 'field "café" does not fit its format "card": it fails, 100% 🚀; a/b?c#d';
    const header = setGrpcTrailerStatus(new Headers(), new ConnectError(message, Code.InvalidArgument)).get(
      "grpc-message",
    );
    expect(header).toMatch(/^[\x20-\x7e]*$/);
    expect(specDecode(header ?? "")).toBe(message);
    expect(decodeURIComponent(header ?? "")).toBe(message);
    // grpc-js decodes with decodeURI, which leaves the escapes of reserved characters: the known quirk that
    // connect-node's own answers share (docs/cognigy.md, error table).
    expect(decodeURI(header ?? "")).toContain("%3A");
  });
});

describe("mergeNonProtocolHeaders agrees with connect's", () => {
  it("on every header connect knows and some it does not", () => {
    const names = [
      "Content-Type",
      "Content-Length",
      "Content-Encoding",
      "Host",
      "User-Agent",
      "Trailer",
      "Date",
      "Accept-Encoding",
      "Trailer-",
      "Trailer-X",
      "Connect-Content-Encoding",
      "Connect-Accept-Encoding",
      "Connect-Timeout-Ms",
      "Connect-Protocol-Version",
      "Grpc-Encoding",
      "Grpc-Accept-Encoding",
      "Grpc-Timeout",
      "Grpc-Status",
      "Grpc-Message",
      "Grpc-Status-Details-Bin",
      "Grpc-Message-Type",
      "fieldseal-reason",
      "x-request-id",
    ];
    const from = new Headers(names.map((n) => [n, `v-${n}`]));
    const ours = new Headers({ "x-first": "1" });
    const theirs = new Headers({ "x-first": "1" });
    mergeNonProtocolHeaders(ours, from);
    theirMerge(theirs, from);
    expect(entries(ours)).toEqual(entries(theirs));
  });
});

describe("abortReasonOfReset agrees with connect-node's connectErrorFromH2ResetCode", () => {
  it("for every HTTP/2 error code and some that are not", async () => {
    // Not exported by connect-node's package: read from its build directly, for comparison only.
    const { connectErrorFromH2ResetCode } = (await import(
      "../../node_modules/@connectrpc/connect-node/dist/esm/node-error.js" as string
    )) as { connectErrorFromH2ResetCode(code: number): ConnectError | undefined };
    for (let code = 0; code <= 0x10; code++) {
      const ours = abortReasonOfReset(code);
      const theirs = connectErrorFromH2ResetCode(code);
      expect([ours?.code, ours?.rawMessage]).toEqual([theirs?.code, theirs?.rawMessage]);
    }
    expect(abortReasonOfReset(undefined)).toBeUndefined();
  });
});

describe("negotiateResponseEncoding agrees with connect's compressionNegotiate", () => {
  const available = [compressionGzip, compressionBrotli];
  it.each([
    undefined,
    "",
    "gzip",
    "br",
    "identity",
    "identity,deflate,gzip",
    "identity, deflate, gzip",
    "deflate, br, gzip",
    " gzip ",
    "GZIP",
    "zstd",
    ",,gzip",
  ])("for grpc-accept-encoding %j", (accepted) => {
    for (const offered of [available, [compressionGzip], []]) {
      const theirs = compressionNegotiate(offered, null, accepted ?? null, "grpc-accept-encoding");
      const ours = negotiateResponseEncoding(
        offered.map((c) => c.name),
        accepted,
      );
      expect(ours).toBe(theirs.response?.name);
    }
  });
});
