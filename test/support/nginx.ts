/**
 * nginx (the Debian package; scripts/test-deps.sh installs it) as a real gRPC and HTTP/1.1 load balancer in
 * front of Fieldseal replicas: its own config, pid, logs and temp files in a temp directory (`-p` prefix,
 * `daemon off`), listening on loopback ports, stopped with its process group.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./moto.js";

/** Set to 1 to skip the tests that need nginx on a machine where it cannot be installed. */
export const SKIP_NGINX_ENV = "FIELDSEAL_SKIP_NGINX_TESTS";

/** The nginx binary, or undefined when it is not installed. */
export function findNginx(): string | undefined {
  for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/bin/nginx"])
    if (existsSync(candidate)) return candidate;
  try {
    return execFileSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether the nginx tests run: nginx is installed, or (when it is not) whether the skip was asked for. */
export function nginxTestsRun(): boolean {
  if (findNginx() !== undefined) return true;
  if (process.env[SKIP_NGINX_ENV] === "1") return false;
  throw new Error(
    `nginx is not installed: run bash scripts/test-deps.sh (Debian: apt-get install -y nginx-light), or set ${SKIP_NGINX_ENV}=1 to skip the tests that need it`,
  );
}

export interface Nginx {
  /** gRPC (HTTP/2 cleartext, prior knowledge) to the replicas with grpc_pass. */
  readonly grpcPort: number;
  /** HTTP/1.1 to the replicas with proxy_pass (the webhook, Connect over HTTP/1.1, health). */
  readonly httpPort: number;
  /** The master's pid; its workers are its children. */
  readonly pid: number;
  /** The config file nginx runs with. */
  readonly config: string;
  /** The gRPC listener's access log: `status upstream_addr upstream_status` per request. */
  grpcAccessLog(): string[];
  stop(): Promise<void>;
}

/**
 * The config this project tests (docs/operations.md quotes it): one upstream of every replica for gRPC
 * and one for HTTP/1.1 with keep-alive connections to the replicas. A connection error before the
 * request was sent goes to the next replica (`grpc_next_upstream error`, the default); a replica that
 * failed is left out for `failTimeoutSec`; a call whose replica failed under it is answered UNAVAILABLE
 * as a gRPC Trailers-Only response (the pattern of nginx's "Deploying NGINX as an API Gateway, Part 3:
 * Publishing gRPC Services"), which grpc-js may retry.
 */
export function nginxConfig(opts: {
  prefix: string;
  grpcPort: number;
  httpPort: number;
  upstreams: readonly string[];
  failTimeoutSec?: number;
  workerProcesses?: number;
}): string {
  const servers = opts.upstreams
    .map((u) => `    server ${u} max_fails=1 fail_timeout=${opts.failTimeoutSec ?? 2}s;`)
    .join("\n");
  const p = opts.prefix;
  // As root the workers would run as nobody, who cannot use the 0700 temp directory.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  return `${user}daemon off;
worker_processes ${opts.workerProcesses ?? 1};
pid ${p}/nginx.pid;
error_log ${p}/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path ${p}/tmp/body;
  proxy_temp_path ${p}/tmp/proxy;
  fastcgi_temp_path ${p}/tmp/fastcgi;
  uwsgi_temp_path ${p}/tmp/uwsgi;
  scgi_temp_path ${p}/tmp/scgi;
  log_format upstreams '$status $upstream_addr $upstream_status';
  upstream fieldseal_grpc {
${servers}
    keepalive 64;
  }
  upstream fieldseal_http {
${servers}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${opts.grpcPort} http2;
    access_log ${p}/grpc-access.log upstreams;
    http2_max_concurrent_streams 1024;
    location / {
      grpc_pass grpc://fieldseal_grpc;
      grpc_next_upstream error timeout;
      grpc_read_timeout 30s;
      error_page 502 503 504 = /fieldseal-upstream-unavailable;
    }
    # A replica that died under a call: answer in gRPC's own terms, Trailers-Only with UNAVAILABLE, so a
    # client's retry policy may retry it (an HTML 502 page counts as response headers: no retry).
    location = /fieldseal-upstream-unavailable {
      internal;
      default_type application/grpc;
      add_header grpc-status 14;
      add_header grpc-message "upstream unavailable";
      return 204;
    }
  }
  server {
    listen 127.0.0.1:${opts.httpPort};
    access_log off;
    location / {
      proxy_pass http://fieldseal_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 30s;
    }
  }
}
`;
}

/** Starts nginx in front of `upstreams` (host:port each) and waits until both ports answer. */
export async function startNginx(
  upstreams: readonly string[],
  options: { workerProcesses?: number; failTimeoutSec?: number } = {},
): Promise<Nginx> {
  const bin = findNginx();
  if (bin === undefined) throw new Error("nginx is not installed: run bash scripts/test-deps.sh");
  const prefix = mkdtempSync(join(tmpdir(), "fieldseal-nginx-"));
  mkdirSync(join(prefix, "tmp"));
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const config = join(prefix, "nginx.conf");
  writeFileSync(config, nginxConfig({ prefix, grpcPort, httpPort, upstreams, ...options }));
  const child: ChildProcess = spawn(bin, ["-p", prefix, "-c", config, "-e", join(prefix, "error.log")], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      // QUIT: graceful stop of the master and its workers; KILL of the group if that takes too long.
      process.kill(-child.pid, "SIGQUIT");
      const timer = setTimeout(() => {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      }, 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(prefix, { recursive: true, force: true });
  };
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) {
      const log = existsSync(join(prefix, "error.log"))
        ? readFileSync(join(prefix, "error.log"), "utf8")
        : "";
      await stop();
      throw new Error(`nginx exited at start: ${stderr}\n${log}`);
    }
    if (existsSync(join(prefix, "nginx.pid"))) {
      try {
        const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, {
          signal: AbortSignal.timeout(1000),
        });
        if (res.status > 0) break;
      } catch {
        // not yet
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    grpcPort,
    httpPort,
    pid: child.pid ?? 0,
    config,
    grpcAccessLog: () => {
      const file = join(prefix, "grpc-access.log");
      return existsSync(file)
        ? readFileSync(file, "utf8")
            .split("\n")
            .filter((l) => l !== "")
        : [];
    },
    stop,
  };
}
