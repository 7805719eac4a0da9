import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { bearer } from "../support/bearer.js";
import { type CertFiles, createTestPki, type TestPki } from "../support/certs.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { grpc, grpcJsClient, unary } from "../support/grpc-js.js";

let pki: TestPki;
beforeAll(() => {
  pki = createTestPki();
});
afterAll(() => {
  pki?.remove();
});

/** A Connect client over TLS presenting `client` (or no certificate) and optionally a bearer token. */
function connectClient(fs: TestFieldseal, httpVersion: "1.1" | "2", client?: CertFiles, token?: string) {
  return createClient(
    FieldsealService,
    createConnectTransport({
      baseUrl: fs.url,
      httpVersion,
      nodeOptions: {
        ca: pki.ca.cert,
        ...(client === undefined ? {} : { cert: client.cert, key: client.key }),
      },
      interceptors: [bearer(token)],
    }),
  );
}

async function tlsServer(requireClientCert: boolean, certificate: { subject?: string; san?: string }) {
  return startTestFieldseal({
    principals: [
      { name: "admin", scopes: ["admin"] },
      { name: "billing", scopes: ["rotate"], certificate },
    ],
    settings: {
      tls: {
        certFile: pki.server.certFile,
        keyFile: pki.server.keyFile,
        clientCaFile: pki.ca.certFile,
        requireClientCert,
      },
    },
  });
}

/** Rotates as whoever the server decides the caller is, and returns that principal's name from the audit. */
async function rotateAs(fs: TestFieldseal, rotate: () => Promise<unknown>): Promise<string | undefined> {
  const before = fs.audit.events.length;
  await rotate();
  return fs.audit.events.slice(before).find((e) => e.action === "rotate" && e.outcome === "ok")?.principal;
}

describe("TLS with optional client certificates (SAN mapping)", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await tlsServer(false, { san: "spiffe://fieldseal.test/billing" });
  });
  afterAll(async () => {
    await fs?.close();
  });

  it("serves https only", () => {
    expect(fs.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it.each(["2", "1.1"] as const)(
    "authorizes a trusted client certificate as its principal over HTTP/%s (Connect)",
    async (v) => {
      const client = connectClient(fs, v, pki.billing);
      expect(await rotateAs(fs, () => client.rotateKey({}))).toBe("billing");
      // Its grants are billing's, not more: rotate does not include decrypt.
      await expect(
        client.decryptField({
          scope: { id: { case: "sessionId", value: "s-1" } },
          field: "credit_card",
          sealed: "fs1.default.1.AAAA",
        }),
      ).rejects.toMatchObject({ code: Code.PermissionDenied });
    },
  );

  it("authorizes a trusted client certificate over gRPC (connect-node and grpc-js)", async () => {
    const connectGrpc = createClient(
      FieldsealService,
      createGrpcTransport({
        baseUrl: fs.url,
        nodeOptions: { ca: pki.ca.cert, cert: pki.billing.cert, key: pki.billing.key },
      }),
    );
    expect(await rotateAs(fs, () => connectGrpc.rotateKey({}))).toBe("billing");
    const client = grpcJsClient(
      FieldsealService,
      `127.0.0.1:${fs.port}`,
      grpc.credentials.createSsl(pki.ca.cert, pki.billing.key, pki.billing.cert),
      // The server certificate names localhost; the client dials the IP the server listens on.
      { "grpc.ssl_target_name_override": "localhost" },
    );
    try {
      expect(await rotateAs(fs, () => unary(client, FieldsealService.method.rotateKey, {}))).toBe("billing");
    } finally {
      client.close();
    }
  });

  it("refuses a certificate from an untrusted CA, even with a mapped subject and SAN", async () => {
    for (const v of ["2", "1.1"] as const) {
      const before = fs.audit.events.length;
      await expect(connectClient(fs, v, pki.impostor).rotateKey({})).rejects.toMatchObject({
        code: Code.Unauthenticated,
      });
      expect(fs.audit.events.slice(before)).toEqual([
        expect.objectContaining({ action: "authenticate", outcome: "denied", code: "unauthenticated" }),
      ]);
    }
  });

  it("answers UNAUTHENTICATED for a trusted certificate that maps to no principal", async () => {
    await expect(connectClient(fs, "2", pki.stranger).rotateKey({})).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("still accepts bearer tokens over TLS, with or without a client certificate", async () => {
    const token = fs.tokens.admin;
    expect(await rotateAs(fs, () => connectClient(fs, "2", undefined, token).rotateKey({}))).toBe("admin");
    expect(await rotateAs(fs, () => connectClient(fs, "1.1", undefined, token).rotateKey({}))).toBe("admin");
    // A token decides alone: billing's certificate does not make the admin token's call billing's.
    expect(await rotateAs(fs, () => connectClient(fs, "2", pki.billing, token).rotateKey({}))).toBe("admin");
    await expect(connectClient(fs, "2", pki.billing, "fsk_wrong").rotateKey({})).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("does not answer cleartext on the TLS port", async () => {
    const plain = createClient(
      FieldsealService,
      createConnectTransport({ baseUrl: fs.url.replace("https:", "http:"), httpVersion: "1.1" }),
    );
    await expect(plain.listKeyrings({})).rejects.toBeInstanceOf(ConnectError);
  });
});

describe("mTLS required (subject CN mapping)", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await tlsServer(true, { subject: "CN=billing-svc" });
  });
  afterAll(async () => {
    await fs?.close();
  });

  it("authorizes the trusted certificate by its subject CN", async () => {
    expect(await rotateAs(fs, () => connectClient(fs, "2", pki.billing).rotateKey({}))).toBe("billing");
    expect(await rotateAs(fs, () => connectClient(fs, "1.1", pki.billing).rotateKey({}))).toBe("billing");
  });

  it("fails the handshake for an untrusted certificate or none", async () => {
    for (const cert of [pki.impostor, undefined]) {
      const before = fs.audit.events.length;
      const err = await connectClient(fs, "2", cert, fs.tokens.admin)
        .rotateKey({})
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      // The client sees the aborted handshake as a transport failure (its code depends on when the TLS
      // alert arrives), never as an answer from the service.
      expect(err).toBeInstanceOf(ConnectError);
      expect(err?.metadata.get("fieldseal-reason")).toBeNull();
      // Refused during the handshake: no RPC ever reached the service.
      expect(fs.audit.events.length).toBe(before);
    }
  });
});
