/**
 * The RPC part's ceiling reference, always run in its own process: a bare node:http2 server that speaks
 * just enough gRPC and Connect (unary, uncompressed, binary or JSON) to answer the load generator's calls. It decodes each
 * request and encodes a well-formed answer of the same shape (one sealed-looking string per field), and does
 * nothing else: no authentication, no keys, no cipher, no audit, no metrics. What the load generator
 * reaches against it is the most this machine can show for that protocol, client included.
 * Usage: node bench/bare-responder.mjs (prints the port, serves until killed).
 */
import http2 from "node:http2";
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { FieldsealService } from "../dist/gen/fieldseal/v1/fieldseal_pb.js";
import { Health } from "../dist/gen/grpc/health/v1/health_pb.js";

const SEALED = `fs1.default.1.${"A".repeat(60)}`;

const answers = {
  [`/${FieldsealService.typeName}/EncryptFields`]: {
    method: FieldsealService.method.encryptFields,
    answer: (req) => ({
      keyring: "default",
      keyVersion: 1,
      sealed: Object.fromEntries(Object.keys(req.fields).map((name) => [name, SEALED])),
    }),
  },
  [`/${FieldsealService.typeName}/DecryptField`]: {
    method: FieldsealService.method.decryptField,
    answer: () => ({ value: { kind: { case: "stringValue", value: "4111111111111111" } }, keyVersion: 1 }),
  },
  [`/${FieldsealService.typeName}/ComputeIndex`]: {
    method: FieldsealService.method.computeIndex,
    answer: () => ({ indexes: [`fx1.default.1.${"A".repeat(22)}`], keyring: "default", keyVersion: 1 }),
  },
  [`/${Health.typeName}/Check`]: { method: Health.method.check, answer: () => ({ status: 1 }) },
};

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  const route = answers[headers[":path"]];
  const grpc = String(headers["content-type"]).startsWith("application/grpc");
  const chunks = [];
  stream.on("data", (c) => chunks.push(c));
  stream.on("end", () => {
    if (route === undefined) {
      stream.respond({ ":status": 404 });
      stream.end();
      return;
    }
    const body = Buffer.concat(chunks);
    const { input, output } = route.method;
    if (grpc) {
      const req = fromBinary(input, body.subarray(5));
      const bytes = toBinary(output, create(output, route.answer(req)));
      const frame = Buffer.allocUnsafe(5 + bytes.length);
      frame[0] = 0;
      frame.writeUInt32BE(bytes.length, 1);
      frame.set(bytes, 5);
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame);
      return;
    }
    // The Connect protocol, unary: the whole body is the message, binary or JSON by content type.
    if (String(headers["content-type"]).startsWith("application/json")) {
      const req = fromJson(input, JSON.parse(body.toString("utf8")));
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end(JSON.stringify(toJson(output, create(output, route.answer(req)))));
      return;
    }
    const req = fromBinary(input, body);
    stream.respond({ ":status": 200, "content-type": "application/proto" });
    stream.end(toBinary(output, create(output, route.answer(req))));
  });
});
server.listen(0, "127.0.0.1", () => console.log(`bare responder listening on ${server.address().port}`));
