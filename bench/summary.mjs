/** Prints Markdown tables of bench/results/latest.json (used to write bench/README.md). */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const r = JSON.parse(readFileSync(resolve(import.meta.dirname, "results/latest.json"), "utf8"));
const p = r.parts;
const n = (x, d = 0) =>
  Number(x).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const ok = (met) => (met ? "met" : "**missed**");
const out = [];
out.push(
  `Machine: ${r.machine.nproc} cores, ${r.machine.cpu}, Node ${r.machine.node}, ${r.machine.python ?? ""}`,
);
for (const [k, v] of Object.entries(p))
  out.push(`- ${k}: ${v.at}, ${v.seconds} s, load average ${v.loadavg.map((l) => l.toFixed(1)).join(" ")}`);
if (p.engine) {
  out.push(
    "",
    "| Engine (one core) | Fieldseal ops/s | node:crypto loop ops/s | ratio | target | envelope chars | overhead vs base64 |",
    "|---|---:|---:|---:|---|---:|---:|",
  );
  for (const [k, label] of [
    ["value16B", "16 B string"],
    ["json1KiB", "1 KiB JSON object"],
  ]) {
    const e = p.engine.result[k];
    for (const op of ["seal", "open"]) {
      out.push(
        `| ${op} ${label} | ${n(e[op].medians.engine)} | ${n(e[op].medians.nodeCrypto)} | ${n(e[op].ratios.engine * 100, 1)}% | >= 80%: ${ok(e[op].ratios.engine >= 0.8)} | ${e.envelopeChars} | ${e.overheadChars} (<= 60: ${ok(e.overheadChars <= 60)}) |`,
      );
    }
  }
}
if (p.esdk) {
  out.push(
    "",
    "| vs AWS Encryption SDK (raw AES keyring) | Fieldseal ops/s | ESDK committing ops/s | x committing | ESDK default ops/s | x default | target x25 |",
    "|---|---:|---:|---:|---:|---:|---|",
  );
  for (const [k, label] of [
    ["value16B", "16 B"],
    ["json1KiB", "1 KiB JSON"],
  ]) {
    const e = p.esdk.result[k];
    for (const op of ["seal", "open"]) {
      out.push(
        `| ${op} ${label} | ${n(e[op].medians.fieldseal)} | ${n(e[op].medians.esdk_committing)} | ${n(e[op].ratios.fieldseal, 1)} | ${n(e[op].medians.esdk_default)} | ${n(e[op].fieldsealOverDefault, 1)} | ${ok(e[op].ratios.fieldseal >= 25)} |`,
      );
    }
  }
  out.push(
    "",
    "| Bytes per sealed value | Fieldseal (text) | ESDK committing (binary / base64) | ESDK default (binary / base64) |",
    "|---|---:|---:|---:|",
  );
  for (const [k, label] of [
    ["value16B", "16 B"],
    ["json1KiB", "1 KiB JSON"],
  ]) {
    const e = p.esdk.result[k];
    out.push(
      `| ${label} | ${e.fieldseal.envelopeChars} | ${e.esdk.committing.messageBytes} / ${e.esdk.committing.base64Chars} | ${e.esdk.default.messageBytes} / ${e.esdk.default.base64Chars} |`,
    );
  }
}
if (p.rpc) {
  out.push(
    "",
    "| RPC | protocol | in flight | calls/s | p50 ms | p99 ms | vs health check | bare responder calls/s | bare p99 ms | vs bare |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const x of p.rpc.result)
    out.push(
      `| ${x.rpc} | ${x.protocol} | ${x.concurrency} | ${n(x.callsPerSec)} | ${n(x.p50Ms, 2)} | ${n(x.p99Ms, 2)} | ${n(x.vsHealth * 100)}% | ` +
        `${x.bareCallsPerSec === undefined ? "-" : n(x.bareCallsPerSec)} | ${x.bareP99Ms === undefined ? "-" : n(x.bareP99Ms, 2)} | ` +
        `${x.vsBare === undefined ? "-" : `${n(x.vsBare * 100)}%`} |`,
    );
}
if (p.e2e) {
  out.push(
    "",
    "| End to end (webhook → moto → seal → Cognigy simulator) | in flight | webhooks/s | p50 ms | p99 ms | x tutorial | vs bare | target x20 |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
  );
  for (const x of p.e2e.result)
    out.push(
      `| ${x.design} | ${x.concurrency} | ${n(x.webhooksPerSec, 1)} | ${n(x.p50Ms, 1)} | ${n(x.p99Ms, 1)} | ${n(x.vsTutorial, 1)} | ` +
        `${x.vsBare === undefined ? "-" : `${n(x.vsBare * 100)}%`} | ${x.design === "fieldseal" ? ok(x.vsTutorial >= 20) : ""} |`,
    );
}
if (p.scaling) {
  out.push(
    "",
    "| Value bytes | engine us/seal | node:crypto us/seal | ratio | envelope chars |",
    "|---:|---:|---:|---:|---:|",
  );
  for (const x of p.scaling.result.valueSize)
    out.push(
      `| ${x.valueBytes} | ${n(x.engineUsPerSeal, 2)} | ${n(x.nodeCryptoUsPerSeal, 2)} | ${n(x.ratio * 100, 0)}% | ${x.envelopeChars} |`,
    );
  out.push(
    "",
    "| Fields per EncryptFields (gRPC, 16 in flight) | calls/s | fields/s | us per field | p99 ms | fields/s vs 1 field |",
    "|---:|---:|---:|---:|---:|---:|",
  );
  for (const x of p.scaling.result.fieldsPerCall)
    out.push(
      `| ${x.fields} | ${n(x.callsPerSec)} | ${n(x.fieldsPerSec)} | ${n(x.usPerField, 1)} | ${n(x.p99Ms, 1)} | x${n(x.vsOneField, 1)} |`,
    );
}
console.log(out.join("\n"));
