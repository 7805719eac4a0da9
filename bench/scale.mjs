/**
 * Part `scale`: one process against `serve --workers 2`, and one replica against three behind nginx
 * (grpc_pass), in one run, interleaved. EncryptFields with one field over gRPC (grpc-js, 64 in flight over
 * 4 connections, so a balancer and cluster's round-robin have connections to spread). For each setup:
 * calls/s, p99, the server processes' CPU per call (from /proc/<pid>/stat of every server process: a
 * `--workers` primary and its workers, each replica) and nginx's own CPU per call (master and workers).
 * CPU per call is the figure that carries to a larger host; calls/s on this 2-core machine does not.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hashToken } from "../dist/src/auth/principals.js";
import { fmt, freePort, median, startChild } from "./lib.mjs";
import { runLoadgen } from "./servers.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** utime + stime of a process, in milliseconds (0 once it has exited). */
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state is field 3, utime field 14 and stime field 15 (proc(5)).
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** Live children of `parent` (a `--workers` primary's workers, nginx's workers). */
function childPids(parent) {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === parent && state !== "Z") pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Starts `fieldseal serve` (with `args`) on a data directory shared by all replicas of a setup. */
async function startServe(dataDir, args = []) {
  const port = await freePort();
  const { stop, child } = await startChild(
    process.execPath,
    [join(ROOT, "bin/fieldseal.js"), "serve", ...args],
    {
      cwd: dataDir,
      env: {
        FIELDSEAL_DATA_DIR: dataDir,
        FIELDSEAL_PORT: String(port),
        FIELDSEAL_HOST: "127.0.0.1",
        FIELDSEAL_LOG_LEVEL: "warn",
        // The audit trail would cost the bench's pipe reading; it goes to a file as in production.
        FIELDSEAL_AUDIT_FILE: join(dataDir, `audit-${port}.log`),
      },
      ready: /fieldseal listening on (\S+)/,
    },
  );
  return { port, address: `127.0.0.1:${port}`, pid: child.pid, stop };
}

/** nginx with the config test/support/nginx.ts tests (gRPC upstream of the replicas), worker_processes 1. */
async function startNginx(upstreams) {
  const bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].find((p) => existsSync(p));
  if (bin === undefined) throw new Error("nginx is not installed: run bash scripts/test-deps.sh");
  const prefix = mkdtempSync(join(tmpdir(), "fieldseal-bench-nginx-"));
  mkdirSync(join(prefix, "tmp"));
  const port = await freePort();
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  writeFileSync(
    join(prefix, "nginx.conf"),
    `${user}daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  access_log off;
  upstream fieldseal_grpc {
${upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=2s;`).join("\n")}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} http2;
    http2_max_concurrent_streams 1024;
    location / {
      grpc_pass grpc://fieldseal_grpc;
      grpc_next_upstream error timeout;
    }
  }
}
`,
  );
  const child = spawn(
    bin,
    ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-e", join(prefix, "error.log")],
    {
      detached: true,
      stdio: "ignore",
    },
  );
  const exited = new Promise((r) => child.once("exit", r));
  for (let i = 0; i < 100 && !existsSync(join(prefix, "nginx.pid")); i++)
    await new Promise((r) => setTimeout(r, 50));
  return {
    url: `http://127.0.0.1:${port}`,
    pids: () => [child.pid, ...childPids(child.pid)],
    async stop() {
      try {
        process.kill(-child.pid, "SIGQUIT");
      } catch {
        // gone
      }
      const t = setTimeout(() => process.kill(-child.pid, "SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

function dataDirWithToken(token) {
  const dataDir = mkdtempSync(join(tmpdir(), "fieldseal-bench-scale-"));
  writeFileSync(
    join(dataDir, "config.json"),
    JSON.stringify({ principals: [{ name: "bench", tokenSha256: hashToken(token), scopes: ["encrypt"] }] }),
  );
  return dataDir;
}

export async function runScale({ rounds = 3, durationMs = 3000, log = console.log } = {}) {
  const token = randomBytes(24).toString("base64url");
  const dirs = [];
  const dir = () => {
    const d = dataDirWithToken(token);
    dirs.push(d);
    return d;
  };
  const stops = [];
  try {
    const one = await startServe(dir());
    const workersDir = dir();
    const workers = await startServe(workersDir, ["--workers", "2"]);
    const replicaDir = dir();
    // One replica first, so the keyring exists before the others start.
    const replicas = [await startServe(replicaDir)];
    replicas.push(...(await Promise.all([startServe(replicaDir), startServe(replicaDir)])));
    const singleDir = dir();
    const single = await startServe(singleDir);
    stops.push(one.stop, workers.stop, ...replicas.map((r) => r.stop), single.stop);
    const nginx3 = await startNginx(replicas.map((r) => r.address));
    const nginx1 = await startNginx([single.address]);
    stops.push(nginx3.stop, nginx1.stop);

    const setups = {
      one: { url: `http://${one.address}`, server: () => [one.pid], nginx: () => [] },
      workers2: {
        url: `http://${workers.address}`,
        server: () => [workers.pid, ...childPids(workers.pid)],
        nginx: () => [],
      },
      nginx1: { url: nginx1.url, server: () => [single.pid], nginx: nginx1.pids },
      nginx3: { url: nginx3.url, server: () => replicas.map((r) => r.pid), nginx: nginx3.pids },
    };
    const samples = Object.fromEntries(Object.keys(setups).map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      const names = Object.keys(setups);
      if (r % 2 === 1) names.reverse();
      for (const name of names) {
        const s = setups[name];
        const serverPids = s.server();
        const nginxPids = s.nginx();
        const sum = (pids) => pids.reduce((a, p) => a + cpuMs(p), 0);
        const server0 = sum(serverPids);
        const nginx0 = sum(nginxPids);
        const res = await runLoadgen({
          url: s.url,
          token,
          kind: "encrypt",
          fields: 1,
          protocol: "grpc",
          concurrency: 64,
          connections: 4,
          durationMs,
        });
        if (res.errors > 0) log(`    ${name}: ${res.errors} errors: ${res.firstError}`);
        const calls = Math.max(res.totalCalls, 1);
        samples[name].push({
          ...res,
          serverCpuUsPerCall: ((sum(serverPids) - server0) * 1000) / calls,
          nginxCpuUsPerCall: ((sum(nginxPids) - nginx0) * 1000) / calls,
          processes: serverPids.length,
        });
      }
    }
    const rows = Object.entries(samples).map(([name, s]) => {
      const refName = name === "workers2" ? "one" : name === "nginx3" ? "nginx1" : name;
      const ref = samples[refName];
      const row = {
        setup: name,
        processes: s[0]?.processes,
        callsPerSec: median(s.map((x) => x.callsPerSec)),
        p99Ms: median(s.map((x) => x.p99Ms)),
        serverCpuUsPerCall: median(s.map((x) => x.serverCpuUsPerCall)),
        nginxCpuUsPerCall: median(s.map((x) => x.nginxCpuUsPerCall)),
        vsRef: median(s.map((x, i) => x.callsPerSec / ref[i].callsPerSec)),
        cpuVsRef: median(s.map((x, i) => x.serverCpuUsPerCall / ref[i].serverCpuUsPerCall)),
        vsOneProcess: median(s.map((x, i) => x.callsPerSec / samples.one[i].callsPerSec)),
        errors: s.reduce((a, x) => a + x.errors, 0),
        runs: s.length,
      };
      log(
        `  ${name.padEnd(8)} ${fmt(row.callsPerSec).padStart(6)}/s p99 ${fmt(row.p99Ms, 1)} ms; server CPU ${fmt(row.serverCpuUsPerCall, 0)} us/call` +
          `${row.nginxCpuUsPerCall > 0 ? `, nginx CPU ${fmt(row.nginxCpuUsPerCall, 0)} us/call` : ""}; ` +
          `x${fmt(row.vsRef, 2)} calls/s and x${fmt(row.cpuVsRef, 2)} server CPU per call vs ${refName}; x${fmt(row.vsOneProcess, 2)} vs one process`,
      );
      return row;
    });
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
