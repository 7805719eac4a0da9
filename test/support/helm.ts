/**
 * The Helm chart as the pinned helm (scripts/test-deps.sh installs it under .tools/bin) renders it: the
 * chart's Deployment for a values file, and the literal environment read from it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
/** The chart directory. */
export const CHART = join(ROOT, "deploy/helm/fieldseal");
/** The pinned helm binary (deploy/helm/helm-version). */
export const HELM = join(
  ROOT,
  `.tools/bin/helm-${readFileSync(join(ROOT, "deploy/helm/helm-version"), "utf8").trim()}`,
);

/**
 * templates/deployment.yaml as `helm template` renders it for Kubernetes 1.33, with a values file (a path
 * inside the chart; none: the defaults) and `--set` assignments.
 */
export function renderDeploymentYaml(opts: { valuesFile?: string; set?: readonly string[] } = {}): string {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run bash scripts/test-deps.sh`);
  const args = [
    "template",
    "fs",
    CHART,
    "--show-only",
    "templates/deployment.yaml",
    "--kube-version",
    "1.33.0",
  ];
  if (opts.valuesFile !== undefined) args.push("-f", join(CHART, opts.valuesFile));
  for (const assignment of opts.set ?? []) args.push("--set", assignment);
  const r = spawnSync(HELM, args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return r.stdout;
}

/** The `- name: X / value: Y` environment entries of rendered YAML, quoted values unquoted. */
export function literalEnv(yaml: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of yaml.matchAll(/^\s+- name: ([A-Z][A-Z0-9_]*)\n\s+value: (.*)$/gm)) {
    const [, name, raw] = m;
    if (name === undefined || raw === undefined) continue;
    env[name] = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
  }
  return env;
}
