/**
 * The local key store on a PersistentVolumeClaim, as the kubelet mounts it for the chart's pod. With an
 * fsGroup, the kubelet changes the volume's ownership and mode when it mounts it
 * (kubernetes/kubernetes pkg/volume/volume_linux.go: every file gets group read-write, every directory
 * group rwx and setgid) on every mount under the default fsGroupChangePolicy "Always", and only when the
 * volume's root does not match yet under "OnRootMismatch". Fieldseal refuses a key directory its group can
 * open, so under "Always" the pod would fail on its first restart. The kubelet's walk is reproduced below
 * and run with the policy the chart renders.
 */
import { chmodSync, chownSync, lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { keyStoreFromConfig } from "../../src/keys/store-from-config.js";
import { createLogger } from "../../src/log.js";
import { startServer } from "../../src/server/app.js";
import { renderDeploymentYaml } from "../support/helm.js";

const S_ISGID = 0o2000;

/** The pod security context's fsGroup and fsGroupChangePolicy the chart renders for the local store. */
function renderedPolicy(): { fsGroup: number; policy: string } {
  const yaml = renderDeploymentYaml({ valuesFile: "ci/local-persistent-values.yaml" });
  const fsGroup = /^\s+fsGroup: (\d+)$/m.exec(yaml)?.[1];
  const policy = /^\s+fsGroupChangePolicy: (\S+)$/m.exec(yaml)?.[1] ?? "Always";
  if (fsGroup === undefined) throw new Error("no fsGroup in the rendered Deployment");
  return { fsGroup: Number(fsGroup), policy };
}

/** changeFilePermission: group to fsGroup, mode | 0660, directories also | 0110 and setgid. */
function changeFilePermission(path: string, gid: number): void {
  const st = lstatSync(path);
  chownSync(path, st.uid, gid);
  if (st.isSymbolicLink()) return;
  let mask = 0o660;
  if (st.isDirectory()) mask |= S_ISGID | 0o110;
  chmodSync(path, (st.mode & 0o7777) | mask);
}

/** requiresPermissionChange: the root's group is not fsGroup, or it lacks rwx for the group or setgid. */
function requiresPermissionChange(root: string, gid: number): boolean {
  const st = lstatSync(root);
  if (st.gid !== gid || !st.isDirectory()) return true;
  return (st.mode & 0o770) !== 0o770 || (st.mode & S_ISGID) === 0;
}

/** What the kubelet does to a volume with an fsGroup when it mounts it (children first, then the dir). */
function kubeletMount(root: string, gid: number, policy: string): void {
  if (policy === "OnRootMismatch" && !requiresPermissionChange(root, gid)) return;
  const walk = (path: string) => {
    if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
    changeFilePermission(path, gid);
  };
  walk(root);
}

if (process.getuid?.() !== 0) {
  throw new Error(
    "test/deploy/fsgroup-key-volume.test.ts runs as root: it changes file groups as the kubelet does",
  );
}

describe("the local key store's volume across pod restarts", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A new claim's volume (root-owned 0755 as many provisioners make it), then `starts` pod starts. */
  async function podStarts(policy: string, gid: number, starts: number): Promise<(string | undefined)[]> {
    const volume = mkdtempSync(join(tmpdir(), "fieldseal-pvc-"));
    dirs.push(volume);
    chmodSync(volume, 0o755);
    const outcomes: (string | undefined)[] = [];
    for (let i = 0; i < starts; i++) {
      kubeletMount(volume, gid, policy);
      const config = loadConfig(
        { FIELDSEAL_DATA_DIR: volume, FIELDSEAL_HOST: "127.0.0.1", FIELDSEAL_PORT: "0" },
        volume,
      );
      try {
        const server = await startServer(config, await keyStoreFromConfig(config), {
          log: createLogger("error", () => {}),
        });
        await server.shutdown(1_000);
        outcomes.push(undefined);
      } catch (e) {
        outcomes.push((e as Error).message);
      }
    }
    return outcomes;
  }

  it("renders an fsGroup with fsGroupChangePolicy OnRootMismatch", () => {
    expect(renderedPolicy()).toEqual({ fsGroup: 65532, policy: "OnRootMismatch" });
  });

  it("starts again and again on its volume with the chart's policy", async () => {
    const { fsGroup, policy } = renderedPolicy();
    expect(await podStarts(policy, fsGroup, 3)).toEqual([undefined, undefined, undefined]);
  });

  it("would refuse its own key directory from the first restart under the default policy (the attack)", async () => {
    const [first, second] = await podStarts("Always", renderedPolicy().fsGroup, 2);
    expect(first).toBeUndefined();
    expect(second).toMatch(/key directory .* has mode 0770, open to other users/);
  });
});
