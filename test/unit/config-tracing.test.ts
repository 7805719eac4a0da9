import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";

const where = { dataDir: "/data", configFile: "/data/config.json", cwd: "/" };
const tracing = (env: Record<string, string>) => parseConfig({}, env, where).tracing;

describe("tracing settings (the standard OTEL_* variables)", () => {
  it("is off unless an exporter or an OTLP endpoint is set", () => {
    expect(tracing({})).toEqual({ enabled: false, protocol: "http/protobuf", serviceName: "fieldseal" });
    expect(tracing({ OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }).enabled).toBe(false);
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }).enabled).toBe(true);
    expect(tracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" }).enabled).toBe(
      true,
    );
    expect(tracing({ OTEL_TRACES_EXPORTER: "otlp" }).enabled).toBe(true);
  });

  it("stays off when told so, whatever else is set", () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
    expect(tracing({ ...endpoint, OTEL_TRACES_EXPORTER: "none" }).enabled).toBe(false);
    expect(tracing({ ...endpoint, OTEL_SDK_DISABLED: "true" }).enabled).toBe(false);
    expect(tracing({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" }).enabled).toBe(false);
  });

  it("takes the traces-specific protocol over the general one", () => {
    expect(tracing({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }).protocol).toBe("http/json");
    expect(
      tracing({
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf",
      }).protocol,
    ).toBe("http/protobuf");
  });

  it("refuses what it cannot honour, naming the variable", () => {
    expect(() => tracing({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toThrow(
      /config: OTEL_EXPORTER_OTLP_PROTOCOL must be one of http\/protobuf, http\/json/,
    );
    expect(() => tracing({ OTEL_TRACES_EXPORTER: "zipkin" })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
  });
});
