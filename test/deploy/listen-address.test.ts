/**
 * On IPv6-only and dual-stack clusters a pod's address, and so the address the kubelet probes and the
 * Service forwards to, may be IPv6. The chart's `listenAddress: "::"` (ci/aws-fixed-replicas-values.yaml)
 * must then reach the server as its listen address, and the server must answer on IPv6 and IPv4 alike;
 * the default "0.0.0.0" answers IPv4 only, which is why the value exists (FIELDSEAL_HOST is the chart's own).
 */
import { afterAll, describe, expect, it } from "vitest";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";
import { renderDeploymentYaml } from "../support/helm.js";

/** FIELDSEAL_HOST as the chart renders it with a values file (or the defaults). */
function renderedHost(valuesFile?: string): string {
  const yaml = renderDeploymentYaml({ valuesFile });
  const raw = /- name: FIELDSEAL_HOST\n\s+value: (.*)$/m.exec(yaml)?.[1];
  if (raw === undefined) throw new Error("no FIELDSEAL_HOST in the rendered Deployment");
  return JSON.parse(raw) as string;
}

/** The status of GET /healthz at `host`, or the connection error's code. */
async function healthz(host: string, port: number): Promise<number | string> {
  try {
    return (await fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(5_000) })).status;
  } catch (e) {
    return ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? String(e);
  }
}

describe("the chart's listen address", () => {
  const servers: TestFieldseal[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('answers on IPv6 and IPv4 with listenAddress "::"', async () => {
    const host = renderedHost("ci/aws-fixed-replicas-values.yaml");
    expect(host).toBe("::");
    const fs = await startTestFieldseal({ settings: { host } });
    servers.push(fs);
    expect(await healthz("[::1]", fs.port)).toBe(200);
    expect(await healthz("127.0.0.1", fs.port)).toBe(200);
  });

  it("answers on IPv4 only with the default, so an IPv6 pod address would fail every probe", async () => {
    const host = renderedHost();
    expect(host).toBe("0.0.0.0");
    const fs = await startTestFieldseal({ settings: { host } });
    servers.push(fs);
    expect(await healthz("127.0.0.1", fs.port)).toBe(200);
    expect(await healthz("[::1]", fs.port)).not.toBe(200);
  });
});
