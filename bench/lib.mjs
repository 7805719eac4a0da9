/**
 * Bench helpers: time-boxed throughput loops, interleaved A/reference rounds, medians and percentiles.
 * Every figure the bench reports is a ratio against a reference measured in the same run, because the
 * machine is shared and absolute numbers drift.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** Median of numbers (mean of the middle two for even counts). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile of an array of numbers (p in 0..100). */
export function percentile(xs, p) {
  if (xs.length === 0) return Number.NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Runs a synchronous op repeatedly for about `ms` milliseconds; returns ops per second. */
export function opsPerSecond(op, ms) {
  // A short warm-up so the first round of each pair is not the one that pays for JIT tiering.
  for (let i = 0; i < 200; i++) op();
  let n = 0;
  const start = performance.now();
  const until = start + ms;
  let now = start;
  while (now < until) {
    for (let i = 0; i < 64; i++) op();
    n += 64;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

/** Like opsPerSecond for an async op run one at a time. */
export async function asyncOpsPerSecond(op, ms) {
  for (let i = 0; i < 20; i++) await op();
  let n = 0;
  const start = performance.now();
  const until = start + ms;
  let now = start;
  while (now < until) {
    for (let i = 0; i < 8; i++) await op();
    n += 8;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

/**
 * Interleaves `rounds` measurements of each subject (A, ref, A, ref...) and returns per-subject samples,
 * medians, and the median of the per-round ratios of each subject against `ref`.
 */
export async function interleave(subjects, ref, rounds, measure) {
  const samples = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round so neither side always runs first.
    const names = Object.keys(subjects);
    if (r % 2 === 1) names.reverse();
    for (const name of names) samples[name].push(await measure(subjects[name], name));
  }
  const medians = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const ratios = Object.fromEntries(
    Object.keys(samples).map((k) => [k, median(samples[k].map((v, i) => v / samples[ref][i]))]),
  );
  return { samples, medians, ratios };
}

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Spawns a child in its own process group and resolves once a line of its stdout matches `ready`
 * (with the match), or rejects after `timeoutMs`. stop() ends the whole group.
 */
export function startChild(cmd, args, { env = {}, ready, timeoutMs = 30_000, cwd } = {}) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    const signal = (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    signal("SIGTERM");
    const t = setTimeout(() => signal("SIGKILL"), 3_000);
    await exited;
    clearTimeout(t);
  };
  children.add(stop);
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${cmd} did not get ready in ${timeoutMs} ms: ${err.slice(-2000)}`));
    }, timeoutMs);
    const watch = (chunk) => {
      if (out.length < 100_000) out += chunk.toString();
      const m = ready === undefined ? null : ready.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        out = "";
        // From here on stdout (Fieldseal's audit lines) is only drained: matching every later chunk
        // against a growing buffer cost the bench process more CPU than some of the servers it measures.
        child.stdout.off("data", watch);
        child.stdout.resume();
        resolve({ child, match: m, stop });
      }
    };
    child.stdout.on("data", watch);
    child.stderr.on("data", (chunk) => {
      err = (err + chunk.toString()).slice(-8_000);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code}: ${err.slice(-2000)}`));
    });
  });
  return started;
}

const children = new Set();
/** Stops every child started through startChild. */
export async function stopAllChildren() {
  await Promise.all([...children].map((stop) => stop()));
  children.clear();
}

/** Formats a number with thousands separators. */
export function fmt(n, digits = 0) {
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
