/**
 * `npm run bench [-- part...]`: parts are engine, esdk, rpc, e2e, scaling, scale (default: all). Writes
 * bench/results/latest.json (merged with earlier parts so one part can be re-run) and the SVG charts.
 * `--charts` only redraws the charts from latest.json.
 * Every figure is a ratio against a reference measured in the same run, interleaved, median of rounds.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
import { runAwsEsdk } from "./aws-esdk.mjs";
import { lines, ratioBars } from "./chart.mjs";
import { runE2e } from "./e2e.mjs";
import { runEngine, runValueSizeScaling } from "./engine.mjs";
import { stopAllChildren } from "./lib.mjs";
import { runFieldScaling, runRpc } from "./rpc.mjs";
import { runScale } from "./scale.mjs";

const RESULTS = resolve(import.meta.dirname, "results");
const PARTS = ["engine", "esdk", "rpc", "e2e", "scaling", "scale"];
const asked = process.argv.slice(2).filter((a) => !a.startsWith("-"));
for (const p of asked)
  if (!PARTS.includes(p)) throw new Error(`unknown part "${p}"; parts: ${PARTS.join(", ")}`);
const parts = asked.length === 0 ? PARTS : asked;
const quick = process.argv.includes("--quick");
const chartsOnly = process.argv.includes("--charts");

const latestPath = resolve(RESULTS, "latest.json");
const latest = existsSync(latestPath) ? JSON.parse(readFileSync(latestPath, "utf8")) : {};
latest.machine = {
  nproc: cpus().length,
  cpu: readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model,
  node: process.version,
  python: tryRun(resolve(import.meta.dirname, "../.venv-tutorial/bin/python"), ["--version"]),
};
latest.parts ??= {};

const timer = setTimeout(() => {
  console.error("bench: overall time limit (15 min) reached; stopping");
  void stopAllChildren().then(() => process.exit(1));
}, 15 * 60_000);
timer.unref();
const stopOnSignal = () => void stopAllChildren().then(() => process.exit(130));
process.once("SIGINT", stopOnSignal);
process.once("SIGTERM", stopOnSignal);

try {
  for (const part of chartsOnly ? [] : parts) {
    const started = Date.now();
    console.log(
      `== ${part} (load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")})`,
    );
    const at = new Date().toISOString();
    let result;
    if (part === "engine") result = await runEngine(quick ? { rounds: 3, ms: 150 } : {});
    if (part === "esdk") result = await runAwsEsdk(quick ? { rounds: 3, ms: 200 } : {});
    if (part === "rpc") result = await runRpc(quick ? { rounds: 1, durationMs: 800 } : {});
    if (part === "scale") result = await runScale(quick ? { rounds: 1, durationMs: 1500 } : {});
    if (part === "e2e") result = await runE2e(quick ? { rounds: 1, durationMs: 1500 } : {});
    if (part === "scaling") {
      result = {
        valueSize: await runValueSizeScaling(quick ? { rounds: 3, ms: 80 } : {}),
        fieldsPerCall: await runFieldScaling(quick ? { rounds: 1, durationMs: 800 } : {}),
      };
    }
    latest.parts[part] = {
      at,
      seconds: Math.round((Date.now() - started) / 1000),
      loadavg: loadavg(),
      result,
    };
    console.log(`   (${Math.round((Date.now() - started) / 1000)} s)`);
  }
} finally {
  await stopAllChildren();
}
if (!chartsOnly) writeFileSync(latestPath, `${JSON.stringify(latest, null, 2)}\n`);
writeCharts(latest.parts);
console.log(chartsOnly ? "redrew the charts" : `wrote ${latestPath}`);
clearTimeout(timer);

function writeCharts(p) {
  const rows = [];
  const e = p.engine?.result;
  if (e) {
    for (const [k, label] of [
      ["value16B", "16 B"],
      ["json1KiB", "1 KiB JSON"],
    ]) {
      rows.push({
        label: `engine seal ${label} / node:crypto loop`,
        value: e[k].seal.ratios.engine,
        target: 0.8,
      });
      rows.push({
        label: `engine open ${label} / node:crypto loop`,
        value: e[k].open.ratios.engine,
        target: 0.8,
      });
    }
    if (e.erasable16B) {
      for (const op of ["seal", "open"]) {
        rows.push({
          label: `erasable ${op} 16 B (warm cache) / plain keyring`,
          value: e.erasable16B[op].ratios.erasable,
          target: 0.9,
        });
      }
    }
  }
  const a = p.esdk?.result;
  if (a) {
    for (const [k, label] of [
      ["value16B", "16 B"],
      ["json1KiB", "1 KiB JSON"],
    ]) {
      rows.push({
        label: `seal ${label} / AWS ESDK (committing)`,
        value: a[k].seal.ratios.fieldseal,
        target: 25,
      });
      rows.push({
        label: `open ${label} / AWS ESDK (committing)`,
        value: a[k].open.ratios.fieldseal,
        target: 25,
      });
    }
  }
  const rpc = p.rpc?.result;
  if (rpc) {
    for (const row of rpc.filter(
      (r) => r.rpc === "encrypt1" && r.concurrency === 64 && r.vsBare !== undefined,
    )) {
      rows.push({ label: `EncryptFields ${row.protocol}, 64 in flight / bare responder`, value: row.vsBare });
    }
  }
  const w = p.e2e?.result;
  if (w) {
    for (const design of ["fieldseal", "bare"]) {
      for (const row of w.filter((r) => r.design === design)) {
        rows.push({
          label: `${design === "bare" ? "bare webhook" : "webhooks/s"}, ${row.concurrency} in flight / tutorial`,
          value: row.vsTutorial,
          ...(design === "fieldseal" ? { target: 20 } : {}),
        });
      }
    }
  }
  if (rows.length > 0) {
    writeFileSync(
      resolve(RESULTS, "headline.svg"),
      ratioBars("Fieldseal against its references (medians)", rows),
    );
  }
  const s = p.scaling?.result;
  if (s) {
    writeFileSync(
      resolve(RESULTS, "scaling-value-size.svg"),
      lines("Seal cost by value size (one core)", "value bytes", "microseconds per seal", [
        {
          name: "Fieldseal engine",
          color: "#1971c2",
          points: s.valueSize.map((x) => [x.valueBytes, x.engineUsPerSeal]),
        },
        {
          name: "node:crypto loop",
          color: "#868e96",
          points: s.valueSize.map((x) => [x.valueBytes, x.nodeCryptoUsPerSeal]),
        },
      ]),
    );
    writeFileSync(
      resolve(RESULTS, "scaling-fields.svg"),
      lines("EncryptFields cost by fields per call (gRPC, 16 in flight)", "fields per call", "microseconds", [
        {
          name: "per call",
          color: "#1971c2",
          points: s.fieldsPerCall.map((x) => [x.fields, 1e6 / x.callsPerSec]),
        },
        { name: "per field", color: "#e8590c", points: s.fieldsPerCall.map((x) => [x.fields, x.usPerField]) },
      ]),
    );
  }
}

function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}
