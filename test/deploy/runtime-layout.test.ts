/**
 * The container image's runtime stage, run without a container engine (none runs in CI): the layout is
 * assembled by the script the Dockerfile's build stage runs (scripts/runtime-layout.sh: production
 * dependencies by `npm ci --omit=dev` from the local npm cache, the build output, every file read-only),
 * and started with the Dockerfile's ENTRYPOINT, CMD, WORKDIR, USER and ENV plus the environment the Helm
 * chart renders, as the image's non-root user with no supplementary groups (setpriv), and as PID 1 of its
 * own PID namespace (unshare), where the kernel drops signals the process has no handler for. Paths the image
 * and chart use (/app, /etc/fieldseal, /var/lib/fieldseal) are mapped under temporary roots; the host and
 * port are the only settings changed (loopback and a free port, for the test).
 *
 * Two deployments are run: the chart's defaults (the Secrets Manager key store, here moto; nothing
 * writable at all) and the local key store (ci/local-persistent-values.yaml; only the key volume writable).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect as h2connect } from "node:http2";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FieldsealService, ScopeSchema } from "../../gen/fieldseal/v1/fieldseal_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { hashToken } from "../../src/auth/principals.js";
import { generateToken } from "../../src/bootstrap.js";
import { envOf, execForm, last, readStages } from "../support/dockerfile.js";
import { grpcJsClient, unary } from "../support/grpc-js.js";
import { literalEnv, renderDeploymentYaml } from "../support/helm.js";
import { MOTO_CREDENTIALS, MOTO_REGION } from "../support/moto.js";

const ROOT = resolve(import.meta.dirname, "../..");
const START_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 30_000;

/** What the Dockerfile's runtime stage says, read from the Dockerfile itself. */
function runtimeStage() {
  const stages = readStages();
  const runtime = stages.at(-1);
  const build = stages.find((s) => s.name !== undefined && s !== runtime);
  if (runtime === undefined || build === undefined)
    throw new Error("the Dockerfile needs a build and a runtime stage");
  // COPY --from=<build> <layout> <app>: the layout the build stage's runtime-layout.sh run assembled.
  const copy = runtime.instructions.find(
    (i) => i.keyword === "COPY" && i.args.startsWith(`--from=${build.name} `),
  );
  const [, layout, app] = copy?.args.split(/\s+/) ?? [];
  if (layout === undefined || app === undefined)
    throw new Error("the runtime stage copies no layout from the build stage");
  const assembles = build.instructions.some(
    (i) =>
      i.keyword === "RUN" && new RegExp(`scripts/runtime-layout\\.sh \\S+ ${layout}(\\s|$)`).test(i.args),
  );
  if (!assembles)
    throw new Error(`the build stage does not assemble ${layout} with scripts/runtime-layout.sh`);
  const user = /^(\d+):(\d+)$/.exec(last(runtime, "USER").args);
  if (user?.[1] === undefined || user[2] === undefined) throw new Error("USER must be numeric uid:gid");
  return {
    app,
    workdir: last(runtime, "WORKDIR").args,
    uid: Number(user[1]),
    gid: Number(user[2]),
    entrypoint: execForm(last(runtime, "ENTRYPOINT")),
    cmd: execForm(last(runtime, "CMD")),
    env: envOf(runtime),
  };
}

/**
 * The Deployment the chart renders with these values: the fieldseal container's literal env and the
 * config init container's command.
 */
function renderDeployment(valuesFile?: string): { env: Record<string, string>; initCommand: string[] } {
  const yaml = renderDeploymentYaml({ valuesFile });
  const env = literalEnv(yaml);
  if (env.FIELDSEAL_CONFIG === undefined) throw new Error("no env found in the rendered Deployment");
  const command = /^\s+command: (\[.*\])$/m.exec(yaml)?.[1];
  if (command === undefined) throw new Error("no init container command in the rendered Deployment");
  return { env, initCommand: JSON.parse(command) as string[] };
}

/** Every path under `dir` (not following links) with what would change if it were written. */
function snapshot(
  dir: string,
  skip: ReadonlySet<string>,
  into = new Map<string, string>(),
): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (skip.has(path)) continue;
    const st = lstatSync(path);
    into.set(path, `${st.mode}:${st.uid}:${st.size}:${st.mtimeMs}`);
    if (st.isDirectory()) snapshot(path, skip, into);
  }
  return into;
}

/** Entries directly in the shared temporary directories owned by `uid`. */
function ownedIn(uid: number): string[] {
  return ["/tmp", tmpdir(), "/dev/shm"]
    .filter((d, i, all) => existsSync(d) && all.indexOf(d) === i)
    .flatMap((d) => readdirSync(d).map((n) => join(d, n)))
    .filter((p) => {
      try {
        return lstatSync(p).uid === uid;
      } catch {
        return false;
      }
    });
}

// Starting a process as another user, and handing it files it owns, takes root (as CI runs).
if (process.getuid?.() !== 0) {
  throw new Error(
    "test/deploy/runtime-layout.test.ts runs as root: it starts the server as the image's user",
  );
}
// setpriv and unshare come with util-linux; without them the test would fail later with an unclear spawn error.
for (const tool of ["setpriv", "unshare"]) {
  if (spawnSync(tool, ["--version"], { encoding: "utf8" }).error !== undefined) {
    throw new Error(
      `test/deploy/runtime-layout.test.ts needs ${tool}: install util-linux (Debian/Ubuntu: apt-get install -y util-linux)`,
    );
  }
}
const image = runtimeStage();
const base = mkdtempSync(join(tmpdir(), "fieldseal-image-"));
chmodSync(base, 0o755);
const appDir = join(base, image.app);

beforeAll(() => {
  const r = spawnSync("bash", [join(ROOT, "scripts/runtime-layout.sh"), ROOT, appDir], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, npm_config_prefer_offline: "true" },
  });
  if (r.status !== 0) throw new Error(`runtime-layout.sh failed: ${r.stdout}${r.stderr}`);
}, 150_000);

afterAll(() => {
  spawnSync("chmod", ["-R", "u+w", base]);
  rmSync(base, { recursive: true, force: true });
});

describe("the image's runtime layout", () => {
  it("holds the production dependencies only, and no file in it is writable", () => {
    const modules = readdirSync(join(appDir, "node_modules"));
    expect(modules).toContain("@connectrpc");
    for (const dev of ["typescript", "vitest", "@biomejs", "@grpc", "node", "fast-check", "@bufbuild/buf"]) {
      expect(existsSync(join(appDir, "node_modules", dev)), dev).toBe(false);
    }
    expect(existsSync(join(appDir, "dist/src/cli.js"))).toBe(true);
    expect(existsSync(join(appDir, "src"))).toBe(false);
    const writable = [...snapshot(appDir, new Set()).keys()].filter((p) => (lstatSync(p).mode & 0o222) !== 0);
    expect(writable.filter((p) => !lstatSync(p).isSymbolicLink())).toEqual([]);
  });
});

interface Deployment {
  readonly name: string;
  readonly valuesFile: string | undefined;
  /** Image paths the server may write to (volumes); everything else is the read-only root. */
  readonly writable: readonly string[];
  readonly extraEnv: () => Record<string, string>;
}

const deployments: Deployment[] = [
  {
    name: "chart defaults: Secrets Manager key store, nothing writable",
    valuesFile: undefined,
    writable: [],
    extraEnv: () => ({
      // What IRSA gives a pod on EKS (region and credentials), here for moto.
      AWS_REGION: MOTO_REGION,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      FIELDSEAL_AWS_ENDPOINT: inject("motoEndpoint"),
      FIELDSEAL_AWS_SECRET_PREFIX: `fieldseal-image-${randomUUID()}/`,
    }),
  },
  {
    name: "local key store (ci/local-persistent-values.yaml): only the key volume writable",
    valuesFile: "ci/local-persistent-values.yaml",
    writable: ["/var/lib/fieldseal"],
    extraEnv: () => ({}),
  },
];

describe.each(deployments)("the image's entrypoint on $name", (deployment) => {
  const root = join(base, `root-${deployments.indexOf(deployment)}`);
  /** Maps a path inside the image to where this test placed it. */
  const at = (p: string) =>
    p === image.app || p.startsWith(`${image.app}/`) ? join(base, p) : join(root, p);
  const tokens = { bot: generateToken(), reader: generateToken() };
  let child: ChildProcess;
  let exited: Promise<number | string>;
  let out = "";
  let errText = "";
  let port = 0;
  /** The server's pid as this test sees it; inside its own PID namespace it is 1. */
  let serverPid = 0;
  let before: Map<string, string>;
  let tmpBefore: string[];
  let secretFile = "";
  let hmacSecret = "";
  let serverEnv: Record<string, string> = {};
  const skip = new Set(deployment.writable.map(at));

  beforeAll(async () => {
    const chart = renderDeployment(deployment.valuesFile);
    const env: Record<string, string> = { ...image.env, ...chart.env };
    mkdirSync(root, { mode: 0o755 });
    chmodSync(root, 0o755);
    // The config Secret as the kubelet mounts it (the chart's defaultMode 0440, group = the pod's fsGroup,
    // owner root), holding a secret (webhook HMAC), so Fieldseal insists on a private file.
    const [installer, ...installArgs] = chart.initCommand;
    secretFile = at(installArgs.at(-2) ?? "");
    hmacSecret = randomUUID() + randomUUID();
    const configFile = at(installArgs.at(-1) ?? "");
    expect(installArgs.at(-1)).toBe(env.FIELDSEAL_CONFIG);
    mkdirSync(resolve(secretFile, ".."), { recursive: true, mode: 0o755 });
    writeFileSync(
      secretFile,
      JSON.stringify({
        principals: [
          { name: "bot", tokenSha256: hashToken(tokens.bot), scopes: ["encrypt"] },
          { name: "reader", tokenSha256: hashToken(tokens.reader), scopes: ["decrypt:*"] },
        ],
        webhook: { hmacSecrets: { bot: hmacSecret } },
      }),
      { mode: 0o440 },
    );
    chownSync(secretFile, 0, image.gid);
    // The init container's memory emptyDir (writable by the fsGroup), then its own command, as the image's
    // user with the fsGroup as its supplementary group.
    mkdirSync(resolve(configFile, ".."), { recursive: true, mode: 0o770 });
    chownSync(resolve(configFile, ".."), 0, image.gid);
    chmodSync(resolve(configFile, ".."), 0o770);
    const init = spawnSync(
      "setpriv",
      [
        `--reuid=${image.uid}`,
        `--regid=${image.gid}`,
        `--groups=${image.gid}`,
        installer ?? "",
        ...installArgs.map((a) => (a.startsWith("/") ? at(a) : a)),
      ],
      { encoding: "utf8", timeout: 10_000 },
    );
    expect(init.status, init.stderr).toBe(0);
    expect(lstatSync(configFile).mode & 0o777).toBe(0o400);
    expect(lstatSync(configFile).uid).toBe(image.uid);
    // The data directory: writable only where a volume is mounted; everything else read-only.
    const dataDir = at(env.FIELDSEAL_DATA_DIR ?? "");
    mkdirSync(dataDir, { recursive: true, mode: 0o755 });
    if (skip.has(dataDir)) {
      chownSync(dataDir, image.uid, image.gid);
      chmodSync(dataDir, 0o700);
    } else {
      chmodSync(dataDir, 0o555);
    }
    spawnSync("chmod", ["-R", "a-w", join(root, "etc")]);

    for (const [k, v] of Object.entries(env))
      if (k.startsWith("FIELDSEAL_") && v.startsWith("/")) env[k] = at(v);
    // The only changes to the image's and chart's settings: loopback and a free port, for the test.
    env.FIELDSEAL_HOST = "127.0.0.1";
    env.FIELDSEAL_PORT = "0";
    Object.assign(env, deployment.extraEnv());

    serverEnv = env;
    before = snapshot(base, skip);
    tmpBefore = ownedIn(image.uid);
    const [node, ...entryArgs] = image.entrypoint;
    expect(node).toBe("node");
    // As in a container, node is PID 1 of its own PID namespace (unshare; setpriv then execs node), where
    // the kernel ignores every signal the process has no handler for: SIGTERM works only through
    // fieldseal's own handler. --kill-child: if this test kills unshare, the server goes with it.
    child = spawn(
      "unshare",
      [
        "--pid",
        "--fork",
        "--kill-child",
        "setpriv",
        `--reuid=${image.uid}`,
        `--regid=${image.gid}`,
        "--clear-groups",
        process.execPath,
        ...entryArgs.map(at),
        ...image.cmd,
      ],
      // A container's environment: what the image and chart set, a PATH, and HOME=/ as Docker gives a
      // user with no passwd entry. Nothing of this machine's environment (AWS profiles, proxies) leaks in.
      {
        cwd: at(image.workdir),
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    child.stderr?.setEncoding("utf8").on("data", (c: string) => {
      errText += c;
    });
    exited = new Promise((done) => child.once("exit", (code, signal) => done(code ?? signal ?? "unknown")));
    const url = await waitFor(() => /fieldseal listening on (http:\/\/\S+)/.exec(out)?.[1], START_TIMEOUT_MS);
    port = Number(new URL(url).port);
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ");
    expect(children).toHaveLength(1);
    serverPid = Number(children[0]);
    // NSpid: its pid here, then in its own namespace.
    expect(readFileSync(`/proc/${serverPid}/status`, "utf8")).toMatch(
      new RegExp(`^NSpid:\\s+${serverPid}\\s+1$`, "m"),
    );
    expect(readFileSync(`/proc/${serverPid}/cmdline`, "utf8").split("\0")[0]).toBe(process.execPath);
  }, START_TIMEOUT_MS + 40_000);

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });

  /** Resolves with `probe()`'s first defined value, or fails with the server's output after `ms`. */
  async function waitFor<T>(probe: () => T | undefined, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline || (child?.exitCode ?? null) !== null) {
        throw new Error(`timed out or exited (${child?.exitCode}); stdout: ${out}\nstderr: ${errText}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("answers gRPC health SERVING (grpc-js), /readyz and /healthz", async () => {
    const health = grpcJsClient(Health, `127.0.0.1:${port}`);
    try {
      const res = await unary(health, Health.method.check, { service: "" });
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      health.close();
    }
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: "ready" }]);
    const live = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(live.status).toBe(200);
  });

  it("seals and opens a value through its key store", async () => {
    const client = grpcJsClient(FieldsealService, `127.0.0.1:${port}`);
    try {
      const scope = create(ScopeSchema, { id: { case: "sessionId", value: "s-image" } });
      const sealed = await unary(
        client,
        FieldsealService.method.encryptFields,
        { scope, fields: { credit_card: { kind: { case: "stringValue", value: "4111111111111111" } } } },
        tokens.bot,
      );
      const envelope = sealed.sealed.credit_card ?? "";
      expect(envelope).toMatch(/^fs1\./);
      const opened = await unary(
        client,
        FieldsealService.method.decryptField,
        { scope, field: "credit_card", sealed: envelope },
        tokens.reader,
      );
      expect(opened.value?.kind).toEqual({ case: "stringValue", value: "4111111111111111" });
    } finally {
      client.close();
    }
  });

  it(
    "on SIGTERM finishes a call already in flight, then exits 0",
    async () => {
      const session = h2connect(`http://127.0.0.1:${port}`);
      session.on("error", () => {});
      try {
        const call = session.request({
          ":method": "POST",
          ":path": "/fieldseal.v1.FieldsealService/EncryptFields",
          "content-type": "application/json",
          authorization: `Bearer ${tokens.bot}`,
        });
        const answer = new Promise<{ status: number; body: string }>((done, fail) => {
          let status = 0;
          let body = "";
          call.on("response", (h) => {
            status = Number(h[":status"]);
          });
          call.setEncoding("utf8").on("data", (c: string) => {
            body += c;
          });
          call.on("end", () => done({ status, body }));
          call.on("error", fail);
        });
        const body = Buffer.from(JSON.stringify({ scope: { sessionId: "s-drain" }, fields: { cvv: "123" } }));
        call.write(body.subarray(0, 8));
        // A second stream on the same connection answers only after the server took the first one's
        // headers (frames are read in order): the call is in flight before SIGTERM, without a timed wait.
        const barrier = session.request({ ":path": "/healthz" });
        barrier.resume();
        await new Promise((done) => barrier.once("end", done));

        process.kill(serverPid, "SIGTERM");
        await waitFor(
          () => (/SIGTERM: finishing in-flight calls/.test(out) ? true : undefined),
          EXIT_TIMEOUT_MS,
        );
        call.end(body.subarray(8));
        const { status, body: text } = await answer;
        expect(status).toBe(200);
        expect((JSON.parse(text) as { sealed: Record<string, string> }).sealed.cvv).toMatch(/^fs1\./);
      } finally {
        session.close();
      }
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r("still running"), EXIT_TIMEOUT_MS)),
      ]);
      expect(code).toBe(0);
    },
    EXIT_TIMEOUT_MS * 2 + 10_000,
  );

  it("refuses the Secret's own group-readable file as its config, which is why the chart copies it", () => {
    const r = spawnSync(
      "setpriv",
      [
        `--reuid=${image.uid}`,
        `--regid=${image.gid}`,
        `--groups=${image.gid}`,
        process.execPath,
        ...image.entrypoint.slice(1).map(at),
        ...image.cmd,
      ],
      {
        cwd: at(image.workdir),
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/", ...serverEnv, FIELDSEAL_CONFIG: secretFile },
        encoding: "utf8",
        timeout: 20_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/holds webhook\.hmacSecrets but its mode 0440 lets group or others access it/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(hmacSecret);
  });

  it("wrote nothing outside its writable volumes", () => {
    expect(child.exitCode).toBe(0);
    const after = snapshot(base, skip);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
      (p) => before.get(p) !== after.get(p),
    );
    expect(changed).toEqual([]);
    expect(ownedIn(image.uid).filter((p) => !tmpBefore.includes(p))).toEqual([]);
    for (const dir of skip) {
      // The local key store did write its keyring there (and only there).
      expect(readdirSync(dir).length).toBeGreaterThan(0);
    }
  });
});
