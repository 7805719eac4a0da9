/**
 * `fieldseal legacy migrate` as an operator runs it: a real `fieldseal` process reading JSON lines on stdin,
 * over a local key store holding the tutorial's key. Every line gets its own result, bad lines do not stop
 * the job, the exit code says whether any failed, and no plaintext ever reaches stdout or stderr.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyrings } from "../../src/keys/keyrings.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import { Sealer } from "../../src/sealer.js";
import { FIELDSEAL_BIN } from "../support/fieldseal-process.js";
import { relabel, tutorialKeyring, tutorialSeal } from "../support/tutorial-blob.js";

const KEYRING = "cognigy";
const CARD = "4111111111111111";
const SSN = "078-05-1120";
const CANARY = "CANARY-5500005555555559";

let dir: string;
const key = randomBytes(32);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fieldseal-migrate-"));
  const store = new LocalFileKeyStore(join(dir, "keys"));
  expect((await store.compareAndSwap(0, tutorialKeyring(KEYRING, key, "v1"))).ok).toBe(true);
  await store.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fieldseal ARGS` with `stdin`; killed if it has not exited within 30 s. */
function fieldseal(
  args: string[],
  stdin: Buffer | string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIELDSEAL_BIN, ...args], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        FIELDSEAL_DATA_DIR: dir,
        FIELDSEAL_LEGACY_KEYRING: KEYRING,
        FIELDSEAL_DEFAULT_KEYRING: KEYRING,
        FIELDSEAL_LOG_LEVEL: "silent",
        ...env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

const line = (o: unknown) => `${JSON.stringify(o)}\n`;
const results = (stdout: string) =>
  stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Opens fs1 values with the keys in the data directory, as a downstream service would. */
async function openAll(items: Array<{ sealed: string; field: string; session: string }>): Promise<unknown[]> {
  const keyrings = new Keyrings(new LocalFileKeyStore(join(dir, "keys")), { sealBlockSize: 1 });
  try {
    const sealer = new Sealer(keyrings, { legacyKeyring: KEYRING });
    const out = [];
    for (const i of items) {
      // No legacy permission: only fs1 envelopes bound to (scope, field) can open here.
      const opened = await sealer.open(
        { scope: { kind: "session", id: i.session }, field: i.field },
        i.sealed,
      );
      out.push(opened.value);
    }
    return out;
  } finally {
    await keyrings.close();
  }
}

describe("fieldseal legacy migrate", () => {
  it("rewraps every good line, reports every bad one without stopping, and exits 1", async () => {
    const card = tutorialSeal(key, "v1", "credit_card", CARD);
    const ssn = tutorialSeal(key, "v1", "ssn", SSN);
    const tampered = (() => {
      const blob = JSON.parse(Buffer.from(card, "base64").toString("utf8"));
      const ct = Buffer.from(blob.ciphertext, "base64");
      ct[0] = (ct[0] ?? 0) ^ 1;
      return Buffer.from(JSON.stringify({ ...blob, ciphertext: ct.toString("base64") })).toString("base64");
    })();
    const input = Buffer.concat([
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "credit_card", sealed: card, id: "row-1" })),
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "ssn", sealed: ssn, id: 2 })),
      Buffer.from("\n"),
      // The SSN blob relabelled as a card number, fed in from where it was stored (__enc_ssn).
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "ssn", sealed: relabel(ssn, "credit_card") })),
      Buffer.from(`{"scope": {"sessionId": "s1"}, "field": "credit_card", "sealed": "${CANARY}"\n`),
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "credit_card", sealed: tampered })),
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "credit_card", sealed: card, extra: CANARY })),
      // A value where a key belongs (an export gone wrong): reported, never quoted.
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "credit_card", sealed: card, [CANARY]: 1 })),
      Buffer.from(line({ scope: { sessionId: "s1", userId: "u" }, field: "credit_card", sealed: card })),
      Buffer.from([0xff, 0xfe, 0x0a]),
      Buffer.from(line({ scope: { sessionId: "s1" }, field: "credit_card", sealed: "x".repeat(300_000) })),
      // The last line has no newline, and is fine.
      Buffer.from(
        JSON.stringify({ scope: { sessionId: "s2" }, field: "credit_card", sealed: card, id: "last" }),
      ),
    ]);
    const run = await fieldseal(["legacy", "migrate"], input);
    expect(run.code).toBe(1);
    const out = results(run.stdout);
    expect(out.map((r) => [r.line, r.ok, r.ok ? r.id : r.code])).toEqual([
      [1, true, "row-1"],
      [2, true, 2],
      [4, false, "envelope_tampered"],
      [5, false, "invalid_argument"],
      [6, false, "envelope_tampered"],
      [7, false, "invalid_argument"],
      [8, false, "invalid_argument"],
      [9, false, "invalid_argument"],
      [10, false, "invalid_argument"],
      [11, false, "too_large"],
      [12, true, "last"],
    ]);
    expect(out[6]?.error).toBe("key 4 of the line is not one of scope, field, sealed, id");
    expect(run.stderr).toContain("fieldseal legacy migrate: 3 rewrapped, 8 failed");
    for (const r of out.filter((r) => r.ok)) {
      // Adoption gave the keyring a fresh primary: nothing is rewrapped under the tutorial's key.
      expect(r).toMatchObject({ keyring: KEYRING, fromVersion: 1, toVersion: 2, legacy: true });
      expect(String(r.sealed)).toMatch(/^fs1\.cognigy\.2\./);
    }
    for (const text of [run.stdout, run.stderr]) {
      expect(text).not.toContain(CARD);
      expect(text).not.toContain(SSN);
      expect(text).not.toContain(CANARY);
    }
    const ok = out.filter((r) => r.ok);
    expect(
      await openAll([
        { sealed: String(ok[0]?.sealed), field: "credit_card", session: "s1" },
        { sealed: String(ok[1]?.sealed), field: "ssn", session: "s1" },
        { sealed: String(ok[2]?.sealed), field: "credit_card", session: "s2" },
      ]),
    ).toEqual([CARD, SSN, CARD]);
    // Bound now: the rewrapped card value does not open as another field or session.
    await expect(
      openAll([{ sealed: String(ok[0]?.sealed), field: "ssn", session: "s1" }]),
    ).rejects.toMatchObject({ code: "envelope_tampered" });
  });

  it("exits 0 on a clean stream, fs1 values included, and into a named keyring", async () => {
    const lines = [];
    for (let i = 0; i < 2_000; i++) {
      const blob = tutorialSeal(
        key,
        "v1",
        "credit_card",
        `${CARD.slice(0, 12)}${String(i).padStart(4, "0")}`,
      );
      lines.push(line({ scope: { userId: `u${i}` }, field: "credit_card", sealed: blob, id: i }));
    }
    // Migrating never creates a keyring: an operator creates it first.
    const unknown = await fieldseal(["legacy", "migrate", "--keyring", "cards"], lines[0] ?? "");
    expect(unknown.code).toBe(1);
    expect(results(unknown.stdout)[0]).toMatchObject({ ok: false, code: "keyring_not_found" });
    expect((await fieldseal(["keys", "create", "cards"], "")).code).toBe(0);
    const started = performance.now();
    const run = await fieldseal(["legacy", "migrate", "--keyring", "cards"], lines.join(""));
    const ms = performance.now() - started;
    expect(run.code).toBe(0);
    expect(run.stderr).toContain("2000 rewrapped, 0 failed");
    const out = results(run.stdout);
    expect(out).toHaveLength(2_000);
    expect(
      out.every((r, i) => r.ok === true && r.id === i && String(r.sealed).startsWith("fs1.cards.1.")),
    ).toBe(true);
    // fs1 values move to the primary too: a second pass over the output rewraps them, not as legacy.
    const again = await fieldseal(
      ["legacy", "migrate"],
      line({ scope: { userId: "u7" }, field: "credit_card", sealed: out[7]?.sealed }),
    );
    expect(again.code).toBe(0);
    expect(results(again.stdout)[0]).toMatchObject({ ok: true, keyring: "cards", legacy: false });
    console.log(`legacy migrate: 2000 lines in ${Math.round(ms)} ms (process start included)`);
  });

  it("fails each legacy line with legacy_disabled once the legacy path is off", async () => {
    const run = await fieldseal(
      ["legacy", "migrate"],
      line({
        scope: { sessionId: "s" },
        field: "credit_card",
        sealed: tutorialSeal(key, "v1", "credit_card", CARD),
      }),
      { FIELDSEAL_LEGACY_ENABLED: "false" },
    );
    expect(run.code).toBe(1);
    expect(results(run.stdout)).toEqual([
      expect.objectContaining({ line: 1, ok: false, code: "legacy_disabled" }),
    ]);
  });

  it("stops cleanly when standard output closes (| head): exit 1, a one-line reason, no stack, no plaintext", async () => {
    const lines = [];
    for (let i = 0; i < 20_000; i++) {
      const blob = tutorialSeal(key, "v1", "credit_card", CANARY);
      lines.push(line({ scope: { sessionId: `s${i}` }, field: "credit_card", sealed: blob }));
    }
    const child = spawn(process.execPath, [FIELDSEAL_BIN, "legacy", "migrate"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        FIELDSEAL_DATA_DIR: dir,
        FIELDSEAL_LEGACY_KEYRING: KEYRING,
        FIELDSEAL_DEFAULT_KEYRING: KEYRING,
        FIELDSEAL_LOG_LEVEL: "silent",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    let firstLine = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    // The job stops reading once its output is gone: our end of stdin may see EPIPE too.
    child.stdin.on("error", () => {});
    child.stdin.end(lines.join(""));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    // As `| head -1` does: read the first line, then close the pipe.
    child.stdout.setEncoding("utf8").once("data", (d: string) => {
      firstLine = d.split("\n")[0] ?? "";
      child.stdout.destroy();
    });
    const [code, signal] = (await once(child, "close")) as [number | null, string | null];
    clearTimeout(timer);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(JSON.parse(firstLine)).toMatchObject({ line: 1, ok: true, legacy: true });
    expect(stderr).toMatch(
      /^fieldseal legacy migrate: standard output closed \(EPIPE\) after \d+ result lines; stopped, later lines were not migrated$/m,
    );
    // No stack trace, no uncaught error.
    expect(stderr).not.toMatch(/\n\s+at |Error:|triggerUncaughtException/);
    expect(stderr).not.toContain(CANARY);
  });

  it("reports key_version_retired for blobs once the tutorial version is retired (a separate store)", async () => {
    const own = mkdtempSync(join(tmpdir(), "fieldseal-migrate-retired-"));
    try {
      const ownKey = randomBytes(32);
      const store = new LocalFileKeyStore(join(own, "keys"));
      expect((await store.compareAndSwap(0, tutorialKeyring(KEYRING, ownKey, "v1"))).ok).toBe(true);
      await store.close();
      const env = { FIELDSEAL_DATA_DIR: own };
      // Adoption makes v2; retiring below it closes the tutorial version.
      const retire = await fieldseal(["keys", "retire", KEYRING, "2"], "", env);
      expect(retire.code).toBe(0);
      const run = await fieldseal(
        ["legacy", "migrate"],
        line({
          scope: { sessionId: "s" },
          field: "credit_card",
          sealed: tutorialSeal(ownKey, "v1", "credit_card", CANARY),
        }),
        env,
      );
      expect(run.code).toBe(1);
      expect(results(run.stdout)).toEqual([
        expect.objectContaining({ line: 1, ok: false, code: "key_version_retired" }),
      ]);
      expect(run.stdout + run.stderr).not.toContain(CANARY);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("says on standard error when a command adopts the tutorial key, once", async () => {
    const own = mkdtempSync(join(tmpdir(), "fieldseal-migrate-adopt-"));
    try {
      const ownKey = randomBytes(32);
      const store = new LocalFileKeyStore(join(own, "keys"));
      expect((await store.compareAndSwap(0, tutorialKeyring(KEYRING, ownKey, "v1"))).ok).toBe(true);
      await store.close();
      const env = { FIELDSEAL_DATA_DIR: own };
      const blob = tutorialSeal(ownKey, "v1", "credit_card", CANARY);
      const args = ["open", "--field", "credit_card", "--session", "s", "-"];
      const first = await fieldseal(args, blob, env);
      expect(first.code).toBe(0);
      expect(first.stdout).toBe(`${JSON.stringify(CANARY)}\n`);
      expect(first.stderr).toBe(
        `fieldseal: adopted the tutorial key of keyring "${KEYRING}": it is decrypt-only now, version 2 is the new primary\n`,
      );
      const second = await fieldseal(args, blob, env);
      expect(second.stderr).toBe("");
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("answers usage errors with exit code 2 and explains itself with --help", async () => {
    const bad = await fieldseal(["legacy", "migrate", "values.jsonl"], "");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("standard input only");
    const helpRun = await fieldseal(["legacy", "--help"], "");
    expect(helpRun.code).toBe(0);
    expect(helpRun.stdout).toContain('{"scope": {"sessionId": "S"}');
  });
});
