import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FieldsealService, KeyVersionState, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflection from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { grpc, grpcJsClient, unary } from "../support/grpc-js.js";

const session = (id: string) => create(ScopeSchema, { id: { case: "sessionId", value: id } });
const CARD = "4111111111111111";

let fs: TestFieldseal;
beforeAll(async () => {
  fs = await startTestFieldseal({ settings: { maxRequestBytes: 64 * 1024, keyrings: ["rot", "ret"] } });
});
afterAll(async () => {
  await fs.close();
});

function authed(token: string | undefined) {
  return [
    (next: Parameters<import("@connectrpc/connect").Interceptor>[0]) =>
      (req: Parameters<Parameters<import("@connectrpc/connect").Interceptor>[0]>[0]) => {
        if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
  ];
}

const transports: Record<string, (token?: string) => Transport> = {
  "Connect over HTTP/1.1": (token) =>
    createConnectTransport({ baseUrl: fs.url, httpVersion: "1.1", interceptors: authed(token) }),
  "Connect over HTTP/2": (token) =>
    createConnectTransport({ baseUrl: fs.url, httpVersion: "2", interceptors: authed(token) }),
  "gRPC (connect-node)": (token) => createGrpcTransport({ baseUrl: fs.url, interceptors: authed(token) }),
  "gRPC-Web over HTTP/1.1": (token) =>
    createGrpcWebTransport({ baseUrl: fs.url, httpVersion: "1.1", interceptors: authed(token) }),
};

describe.each(Object.entries(transports))("%s", (_name, transport) => {
  it("seals typed fields and opens them for an authorized decryptor", async () => {
    const bot = createClient(FieldsealService, transport(fs.tokens.bot));
    const sealed = await bot.encryptFields({
      scope: session("s-1"),
      fields: {
        credit_card: { kind: { case: "stringValue", value: CARD } },
        attempts: { kind: { case: "numberValue", value: 3 } },
      },
    });
    expect(sealed.keyring).toBe("default");
    expect(sealed.sealed.credit_card).toMatch(/^fs1\.default\.\d+\./);
    const billing = createClient(FieldsealService, transport(fs.tokens.billing));
    const opened = await billing.decryptField({
      scope: session("s-1"),
      field: "credit_card",
      sealed: sealed.sealed.credit_card ?? "",
    });
    expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
    const admin = createClient(FieldsealService, transport(fs.tokens.admin));
    const attempts = await admin.decryptField({
      scope: session("s-1"),
      field: "attempts",
      sealed: sealed.sealed.attempts ?? "",
    });
    expect(attempts.value?.kind).toEqual({ case: "numberValue", value: 3 });
  });

  it("answers UNAUTHENTICATED without a token, and with an unknown one", async () => {
    for (const token of [undefined, "fsk_not-a-real-token"]) {
      const client = createClient(FieldsealService, transport(token));
      await expect(client.listKeyrings({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    }
  });

  it("answers PERMISSION_DENIED for a field outside the caller's scopes", async () => {
    const bot = createClient(FieldsealService, transport(fs.tokens.bot));
    const sealed = await bot.encryptFields({
      scope: session("s-2"),
      fields: { ssn: { kind: { case: "stringValue", value: "999-99-0000" } } },
    });
    const billing = createClient(FieldsealService, transport(fs.tokens.billing));
    await expect(
      billing.decryptField({ scope: session("s-2"), field: "ssn", sealed: sealed.sealed.ssn ?? "" }),
    ).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(billing.rotateKey({})).rejects.toMatchObject({ code: Code.PermissionDenied });
  });
});

describe("errors", () => {
  it("answers INVALID_ARGUMENT for a malformed envelope, naming the problem", async () => {
    const admin = fs.client("admin");
    const err = await admin
      .decryptField({ scope: session("s"), field: "f", sealed: "fs1.default.1.!!" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect((err as ConnectError).rawMessage).toMatch(/not a valid fs1 envelope/);
    expect((err as ConnectError).metadata.get("fieldseal-reason")).toBe("envelope_malformed");
  });

  it("answers INVALID_ARGUMENT with reason envelope_tampered for a value moved to another session", async () => {
    const admin = fs.client("admin");
    const { sealed } = await admin.encryptFields({
      scope: session("a"),
      fields: { f: { kind: { case: "boolValue", value: true } } },
    });
    const err = await admin
      .decryptField({ scope: session("b"), field: "f", sealed: sealed.f ?? "" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect((err as ConnectError).metadata.get("fieldseal-reason")).toBe("envelope_tampered");
  });

  it("answers INVALID_ARGUMENT for a missing scope or field", async () => {
    const admin = fs.client("admin");
    await expect(admin.decryptField({ field: "f", sealed: "x" })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
    await expect(admin.encryptFields({ scope: session("s"), fields: {} })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("answers RESOURCE_EXHAUSTED for an oversized request", async () => {
    const admin = fs.client("admin");
    const big = "x".repeat(70 * 1024);
    await expect(
      admin.encryptFields({
        scope: session("s"),
        fields: { f: { kind: { case: "stringValue", value: big } } },
      }),
    ).rejects.toMatchObject({ code: Code.ResourceExhausted });
  });

  it("answers NOT_FOUND for an unknown keyring version", async () => {
    const admin = fs.client("admin");
    const { sealed } = await admin.encryptFields({
      scope: session("s"),
      fields: { f: { kind: { case: "stringValue", value: "v" } } },
    });
    const moved = (sealed.f ?? "").replace(/^fs1\.default\.\d+\./, "fs1.default.999.");
    await expect(
      admin.decryptField({ scope: session("s"), field: "f", sealed: moved }),
    ).rejects.toMatchObject({
      code: Code.NotFound,
    });
  });

  it("gives each batch item its own result, so one bad item does not fail the rest", async () => {
    const admin = fs.client("admin");
    const { sealed } = await admin.encryptFields({
      scope: session("batch"),
      fields: {
        a: { kind: { case: "stringValue", value: "A" } },
        b: { kind: { case: "stringValue", value: "B" } },
      },
    });
    const res = await admin.decryptFields({
      scope: session("batch"),
      items: [
        { field: "a", sealed: sealed.a ?? "" },
        { field: "b", sealed: `${(sealed.b ?? "").slice(0, -2)}AA` },
        { field: "c", sealed: "garbage" },
      ],
    });
    expect(res.results.map((r) => r.outcome.case)).toEqual(["value", "error", "error"]);
    expect(res.results[1]?.outcome.value).toMatchObject({
      code: "invalid_argument",
      reason: "envelope_tampered",
    });
    expect(res.results[2]?.outcome.value).toMatchObject({
      code: "invalid_argument",
      reason: "envelope_malformed",
    });
  });
});

describe("keys over the API", () => {
  it("rotates, then opens values sealed under every earlier version, and rewraps them", async () => {
    const admin = fs.client("admin");
    const scope = session("rot");
    const sealedByVersion: Array<{ version: number; sealed: string }> = [];
    for (let i = 0; i < 4; i++) {
      const r = await admin.encryptFields({
        keyring: "rot",
        scope,
        fields: { pan: { kind: { case: "stringValue", value: `v${i}` } } },
      });
      sealedByVersion.push({ version: r.keyVersion, sealed: r.sealed.pan ?? "" });
      const rotated = await admin.rotateKey({ keyring: "rot" });
      expect(rotated.key?.primaryVersion).toBe(r.keyVersion + 1);
    }
    expect(sealedByVersion.map((s) => s.version)).toEqual([1, 2, 3, 4]);
    for (const [i, s] of sealedByVersion.entries()) {
      const opened = await admin.decryptField({ scope, field: "pan", sealed: s.sealed });
      expect(opened).toMatchObject({
        keyVersion: s.version,
        value: { kind: { case: "stringValue", value: `v${i}` } },
      });
    }
    const rewrapped = await fs
      .client("ops")
      .rewrapFields({ scope, items: sealedByVersion.map((s) => ({ field: "pan", sealed: s.sealed })) });
    expect(rewrapped.results.map((r) => r.toKeyVersion)).toEqual([5, 5, 5, 5]);
    expect(rewrapped.results.map((r) => r.fromKeyVersion)).toEqual([1, 2, 3, 4]);
    const described = await admin.describeKey({ keyring: "rot" });
    expect(described.key?.versions.map((v) => v.state)).toEqual([
      KeyVersionState.DECRYPT_ONLY,
      KeyVersionState.DECRYPT_ONLY,
      KeyVersionState.DECRYPT_ONLY,
      KeyVersionState.DECRYPT_ONLY,
      KeyVersionState.PRIMARY,
    ]);
  });

  it("answers FAILED_PRECONDITION for a retired version, and ABORTED for a stale expected primary", async () => {
    const admin = fs.client("admin");
    const scope = session("ret");
    const first = await admin.encryptFields({
      keyring: "ret",
      scope,
      fields: { f: { kind: { case: "stringValue", value: "old" } } },
    });
    await admin.rotateKey({ keyring: "ret" });
    await admin.retireKeyVersions({ keyring: "ret", minDecryptVersion: 2 });
    await expect(
      admin.decryptField({ scope, field: "f", sealed: first.sealed.f ?? "" }),
    ).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    await expect(admin.rotateKey({ keyring: "ret", expectedPrimaryVersion: 1 })).rejects.toMatchObject({
      code: Code.Aborted,
    });
  });

  it("never returns key material from DescribeKey", async () => {
    const admin = fs.client("admin");
    const described = await admin.describeKey({});
    const json = JSON.stringify(described, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    expect(json).not.toMatch(/material/i);
    const state = await fs.server.keyrings.describe("default");
    for (const v of state.versions) expect(json).not.toContain(Buffer.from(v.material).toString("base64"));
  });
});

describe("standard gRPC services through @grpc/grpc-js", () => {
  it("seals and opens over a real gRPC client", async () => {
    const client = grpcJsClient(FieldsealService, `127.0.0.1:${fs.port}`);
    try {
      const methods = FieldsealService.method;
      const sealed = await unary(
        client,
        methods.encryptFields,
        {
          scope: session("grpc"),
          fields: { credit_card: { kind: { case: "stringValue", value: CARD } } },
        },
        fs.tokens.bot,
      );
      const opened = await unary(
        client,
        methods.decryptField,
        {
          scope: session("grpc"),
          field: "credit_card",
          sealed: sealed.sealed.credit_card ?? "",
        },
        fs.tokens.billing,
      );
      expect(opened.value?.kind).toEqual({ case: "stringValue", value: CARD });
      await expect(unary(client, methods.listKeyrings, {})).rejects.toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
      });
    } finally {
      client.close();
    }
  });

  it("answers grpc.health.v1 Check", async () => {
    const client = grpcJsClient(Health, `127.0.0.1:${fs.port}`);
    try {
      const res = await unary(client, Health.method.check, { service: "" });
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      const named = await unary(client, Health.method.check, { service: FieldsealService.typeName });
      expect(named.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await expect(unary(client, Health.method.check, { service: "nope.Service" })).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    } finally {
      client.close();
    }
  });

  it("answers server reflection: services and the file declaring a symbol", async () => {
    const client = grpcJsClient(reflection.ServerReflection, `127.0.0.1:${fs.port}`);
    try {
      const call = (
        client as unknown as Record<
          string,
          () => grpc.ClientDuplexStream<unknown, reflection.ServerReflectionResponse>
        >
      ).serverReflectionInfo?.call(client);
      if (call === undefined) throw new Error("no reflection method");
      const answers: reflection.ServerReflectionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (m: reflection.ServerReflectionResponse) => answers.push(m));
        call.on("end", resolve);
        call.on("error", reject);
      });
      call.write(
        create(reflection.ServerReflectionRequestSchema, {
          messageRequest: { case: "listServices", value: "" },
        }),
      );
      call.write(
        create(reflection.ServerReflectionRequestSchema, {
          messageRequest: { case: "fileContainingSymbol", value: "fieldseal.v1.FieldsealService" },
        }),
      );
      call.end();
      await done;
      const services = answers[0]?.messageResponse;
      expect(services?.case).toBe("listServicesResponse");
      const names =
        services?.case === "listServicesResponse" ? services.value.service.map((s) => s.name) : [];
      expect(names).toContain("fieldseal.v1.FieldsealService");
      expect(names).toContain("grpc.health.v1.Health");
      const files = answers[1]?.messageResponse;
      expect(files?.case).toBe("fileDescriptorResponse");
      // The file itself plus its imports (struct.proto, timestamp.proto).
      expect(
        files?.case === "fileDescriptorResponse" ? files.value.fileDescriptorProto.length : 0,
      ).toBeGreaterThanOrEqual(3);
    } finally {
      client.close();
    }
  });
});

describe("HTTP endpoints", () => {
  it("answers /healthz and /readyz", async () => {
    expect((await fetch(`${fs.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${fs.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });
});
