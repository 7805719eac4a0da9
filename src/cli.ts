import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { assertScopes, hashToken } from "./auth/principals.js";
import { bootstrapAdmin, generateToken } from "./bootstrap.js";
import { type Config, describeFsError, loadConfig, SETTINGS } from "./config.js";
import type { Scope } from "./engine/aad.js";
import type { JsonValue } from "./engine/json-value.js";
import { assertKeyringName } from "./engine/names.js";
import { isFieldsealError } from "./errors.js";
import { destroyedThrough } from "./keys/keyring-state.js";
import { Keyrings } from "./keys/keyrings.js";
import { keyStoreFromConfig } from "./keys/store-from-config.js";
import { adoptingTutorialKeys } from "./keys/tutorial-adoption.js";
import type { KeyringState } from "./keys/types.js";
import { type MigrationSummary, migrateLegacyLines } from "./legacy-migration.js";
import { lineOutput, OutputClosedError } from "./line-output.js";
import { createLogger } from "./log.js";
import { Sealer } from "./sealer.js";
import { type RunningServer, startServer } from "./server/app.js";
import { reloadAccess } from "./server/reload.js";
import {
  isHeartbeatPing,
  runWorkerPool,
  type WorkerHeartbeat,
  type WorkerListening,
} from "./server/workers.js";

type Env = Readonly<Record<string, string | undefined>>;

const USAGE = `fieldseal: field-level sealing of Cognigy.AI session variables

Usage:
  fieldseal serve                       Start the server (gRPC, gRPC-Web, Connect, webhooks, health)
  fieldseal keys list                   List keyrings
  fieldseal keys describe [KEYRING]     Show a keyring's versions (never key material)
  fieldseal keys create KEYRING         Create a keyring with version 1
  fieldseal keys rotate [KEYRING]       Add a key version and make it primary
  fieldseal keys retire KEYRING MIN     Refuse values sealed under versions below MIN
  fieldseal keys destroy KEYRING BELOW [--retire]
                                        Irreversibly destroy the material of retired versions below BELOW
  fieldseal seal --field F (--session S | --user U) [--keyring K] [--json] VALUE|-
  fieldseal open --field F (--session S | --user U) SEALED|-
  fieldseal token create --name N --scopes S1,S2
                                        Generate a bearer token and the config entry holding its hash
  fieldseal legacy migrate [--keyring K] < values.jsonl > rewrapped.jsonl
                                        Rewrap legacy tutorial blobs (JSON lines) to fs1 envelopes

Run 'fieldseal COMMAND --help' for a command's options.`;

const SERVE_HELP = `fieldseal serve: start the server on one port serving gRPC, gRPC-Web and Connect (HTTP/2
cleartext and HTTP/1.1), the Cognigy webhook (POST /webhooks/cognigy), /healthz and /readyz.

On first start with no config file, it creates one holding a new admin token's SHA-256 and prints
the token once. SIGTERM or SIGINT stops it gracefully: in-flight calls finish, new ones get UNAVAILABLE.
SIGHUP re-reads the config file's principals and their grants without dropping calls (a config that
does not validate is logged and the previous rules stay in force), and reopens the audit file, so log
rotation can move it away. Other settings take effect on restart; a SIGHUP logs which ones changed.

With --workers N (or FIELDSEAL_WORKERS) above 1, a primary process runs N server processes sharing the
port (node:cluster, connections handed out round-robin), forwards SIGTERM, SIGINT and SIGHUP to every one,
and starts a new one when one dies (at most 5 restarts a minute; past that it stops and exits 1).

Options:
  --host HOST     Overrides FIELDSEAL_HOST
  --port PORT     Overrides FIELDSEAL_PORT
  --workers N     Overrides FIELDSEAL_WORKERS (a number, or auto: one per available core)

Settings (environment variable, config file key, default):
${SETTINGS.map((s) => `  ${s.env.padEnd(32)} ${s.file.padEnd(22)} ${s.description} [${s.default}]`).join("\n")}`;

const SEAL_HELP = `fieldseal seal: seal one value with the keyring's primary version, as EncryptFields does.

Options:
  --field F       Field (variable) name the value belongs to. Required.
  --session S     Bind to Cognigy session S (or --user U to bind to a user/profile id).
  --keyring K     Keyring (default: FIELDSEAL_DEFAULT_KEYRING).
  --json          VALUE is JSON (number, boolean, object...); otherwise it is a string.
VALUE '-' reads the value from standard input (recommended: it keeps the value out of shell history).`;

const OPEN_HELP = `fieldseal open: open one sealed value (fs1 envelope or legacy tutorial blob) for an operator.
Prints the value as JSON.

Options:
  --field F       Field the value was sealed for. Required.
  --session S     Session it was sealed for (or --user U).
SEALED '-' reads the sealed value from standard input.`;

const KEYS_HELP = `fieldseal keys: manage keyrings in the configured key store (same config as serve).

  keys list                    Keyring names
  keys describe [KEYRING]      Versions, primary, minimum decryption version, creation times, seal counts
  keys create KEYRING          New keyring with version 1 (sealing never creates keyrings)
  keys rotate [KEYRING]        New primary version; older versions keep opening their values
  keys retire KEYRING MIN      Versions below MIN stop opening values (key material is kept)
  keys destroy KEYRING BELOW   Destroys the key material of versions below BELOW, which must be retired
                               already (BELOW <= the minimum decryption version). IRREVERSIBLE: values
                               sealed under them can never be opened again (key_version_destroyed).
                               Only a tombstone (version number, destruction time) is kept.
    --retire                   Also retire versions below BELOW in the same write (for a keyring at
                               its store's size limit, where a separate retire no longer fits).`;

const LEGACY_HELP = `fieldseal legacy migrate: rewrap a stream of sealed values to fs1 envelopes under the
primary version, as an operator's bulk job with the key store's own credentials (same config as serve).
No plaintext is ever printed.

Reads JSON lines on standard input, one value each:
  {"scope": {"sessionId": "S"} | {"userId": "U"}, "field": "F", "sealed": "<legacy blob or fs1>", "id": ...}
("id" is optional: a string or an integer, echoed back). Writes one JSON line per input line to standard
output, in order:
  {"line": N, "id": ..., "ok": true, "sealed": "fs1...", "keyring": K, "fromVersion": 1, "toVersion": 2, "legacy": true}
  {"line": N, "id": ..., "ok": false, "code": "envelope_tampered", "error": "..."}
A bad line is reported and the job goes on; blank lines are skipped. A summary goes to standard error.
Exit code 0 when every line was rewrapped, 1 when any failed or standard output closed early (the job
then stops and says after how many lines).

A legacy blob's field label is unauthenticated: the field given here is the one the new envelope is bound
to, so take it from where the blob was stored (its __enc_<field> variable), not from inside the blob.

Options:
  --keyring K     Rewrap into keyring K (default: each value's own keyring; legacy blobs: FIELDSEAL_LEGACY_KEYRING)`;

const TOKEN_HELP = `fieldseal token create: generate a bearer token for a calling service.

Options:
  --name N        Principal name. Required.
  --scopes LIST   Comma-separated: encrypt, rewrap, rotate, destroy, push, admin, decrypt:<field>, decrypt:*,
                  index:<field>, index:*, legacy:decrypt, legacy:rewrap
Prints the token (give it to the service; it is not stored) and the JSON entry to add to the config
file's "principals" array (it holds only the token's SHA-256).`;

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[], env: Env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest, env);
      case "keys":
        return await keys(rest, env);
      case "seal":
        return await seal(rest, env);
      case "open":
        return await open(rest, env);
      case "token":
        return token(rest);
      case "legacy":
        return await legacy(rest, env);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        err(`fieldseal: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (isFieldsealError(e)) {
      err(`fieldseal: ${e.message} (${e.code})`);
      return 1;
    }
    if (e instanceof UsageError) {
      err(`fieldseal: ${e.message}`);
      return 2;
    }
    if (e instanceof TypeError && String((e as NodeJS.ErrnoException).code).startsWith("ERR_PARSE_ARGS")) {
      err(`fieldseal: ${e.message}`);
      return 2;
    }
    const system = systemErrorLine(e);
    if (system !== undefined) {
      err(`fieldseal: ${system}`);
      return 1;
    }
    throw e;
  }
}

/**
 * One line a person can act on for an operating-system error met at start-up (a port that cannot be
 * bound, a directory that cannot be written), or undefined for anything else.
 */
function systemErrorLine(e: unknown): string | undefined {
  const x = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (!(e instanceof Error) || typeof x.code !== "string" || typeof x.syscall !== "string") return undefined;
  if (x.syscall === "listen" || x.syscall === "bind") {
    const where = `${x.address ?? "?"} port ${x.port ?? "?"}`;
    if (x.code === "EADDRINUSE")
      return `cannot listen on ${where}: another process is using it; stop it, or choose another port with FIELDSEAL_PORT or --port (${x.code})`;
    if (x.code === "EACCES")
      return `cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose another port with FIELDSEAL_PORT or --port (${x.code})`;
    if (x.code === "EADDRNOTAVAIL")
      return `cannot listen on ${where}: no such address on this machine; set FIELDSEAL_HOST or --host (${x.code})`;
    return `cannot listen on ${where} (${x.code}); check FIELDSEAL_HOST/--host and FIELDSEAL_PORT/--port`;
  }
  if (typeof x.path === "string") return `cannot ${x.syscall} ${x.path}: ${describeFsError(x.code)}`;
  return undefined;
}

async function serve(args: string[], env: Env): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      workers: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return help(SERVE_HELP);
  const withFlags = {
    ...env,
    ...(values.host === undefined ? {} : { FIELDSEAL_HOST: values.host }),
    ...(values.port === undefined ? {} : { FIELDSEAL_PORT: values.port }),
    ...(values.workers === undefined ? {} : { FIELDSEAL_WORKERS: values.workers }),
  };
  let config = loadConfig(withFlags, process.cwd());
  if (cluster.isWorker) return serveWorker(config, withFlags);
  const created = bootstrapAdmin(config);
  if (created !== undefined) config = loadConfig(withFlags, process.cwd());
  else if (config.principals.length === 0) {
    err(`fieldseal: warning: ${config.configFile} names no principals, so every call will be refused`);
  }
  if (config.workers > 1) {
    return runWorkerPool({
      count: config.workers,
      shutdownGraceMs: config.shutdownGraceMs,
      onListening: (url, store) => {
        if (created !== undefined) out(adminTokenBanner(created, url));
        out(`fieldseal listening on ${url} (key store: ${store}) with ${config.workers} workers`);
      },
      out,
      err,
    });
  }
  const store = await keyStoreFromConfig(config);
  const server = await startServer(config, store);
  if (created !== undefined) out(adminTokenBanner(created, server.url));
  const stopped = handleSignals(server, config, withFlags, false);
  out(`fieldseal listening on ${server.url} (key store: ${store.kind})`);
  await stopped;
  return 0;
}

/** One of the processes of `serve --workers N`: serves, and tells the primary when it listens. */
async function serveWorker(config: Config, withFlags: Env): Promise<number> {
  try {
    const store = await keyStoreFromConfig(config);
    const server = await startServer(config, store);
    const stopped = handleSignals(server, config, withFlags, true);
    // The primary's heartbeat: answered from the event loop, so a hung worker stops answering.
    process.on("message", (message: unknown) => {
      if (isHeartbeatPing(message)) process.send?.({ fieldseal: "pong" } satisfies WorkerHeartbeat);
    });
    const listening: WorkerListening = { fieldseal: "listening", url: server.url, store: store.kind };
    process.send?.(listening);
    await stopped;
    return 0;
  } finally {
    // The IPC channel would keep the process alive, after a drain and after a failed start alike (a port
    // in use: the error goes up to main(), which prints it, and the primary sees this worker exit).
    if (cluster.worker?.isConnected()) cluster.worker.disconnect();
  }
}

/**
 * SIGHUP reloads, SIGTERM and SIGINT drain; resolves once the server has shut down. In a worker a repeated
 * signal is ignored (the terminal's SIGINT reaches it as well as the primary's SIGTERM), and losing the
 * primary drains it too, so no worker outlives its supervisor.
 */
function handleSignals(
  server: RunningServer,
  config: Config,
  withFlags: Env,
  worker: boolean,
): Promise<void> {
  const log = createLogger(config.logLevel);
  const reload = () => {
    reloadAccess(server.access, () => loadConfig(withFlags, process.cwd()), log, config);
    server.reopenAudit();
  };
  process.on("SIGHUP", reload);
  // The signal handlers are in place before the listening line, which supervisors and tests wait for:
  // a SIGTERM sent right after it could otherwise meet the default action and kill the process.
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      const who = worker ? `worker ${process.pid}` : "fieldseal";
      out(`${who}: ${signal}: finishing in-flight calls (up to ${config.shutdownGraceMs} ms)`);
      void server.shutdown().then(() => {
        process.removeListener("SIGHUP", reload);
        resolve();
      });
    };
    if (worker) {
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
      process.once("disconnect", () => stop("primary gone"));
    } else {
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    }
  });
}

function adminTokenBanner(created: { token: string; configFile: string }, url: string): string {
  return [
    "",
    "Fieldseal created an admin token. It is shown only now; the config keeps only its SHA-256:",
    `  ${created.configFile}`,
    "",
    `  ${created.token}`,
    "",
    "Call the API with it, for example:",
    `  curl -s ${url}/fieldseal.v1.FieldsealService/EncryptFields \\`,
    `    -H 'authorization: Bearer ${created.token}' -H 'content-type: application/json' \\`,
    `    -d '{"scope":{"sessionId":"s1"},"fields":{"credit_card":"4111111111111111"}}'`,
    "",
  ].join("\n");
}

async function withKeys<T>(
  env: Env,
  work: (keyrings: Keyrings, config: Config) => Promise<T>,
  sealBlockSize = 1,
): Promise<T> {
  const config = loadConfig(env, process.cwd());
  const store = await keyStoreFromConfig(config);
  // Any command that reads a tutorial keyring adopts it (a store write the old middleware will notice):
  // say so on standard error rather than do it silently.
  const adopting = adoptingTutorialKeys(store, {
    onAdopted: (keyring, version) =>
      err(
        `fieldseal: adopted the tutorial key of keyring "${keyring}": it is decrypt-only now, version ${version} is the new primary`,
      ),
    onAdoptionFailed: (keyring, e) =>
      err(
        `fieldseal: warning: keyring "${keyring}" holds the tutorial key and the store refused its successor (${isFieldsealError(e) ? e.code : "internal"}): it opens values, nothing seals`,
      ),
  });
  const keyrings = new Keyrings(adopting, {
    policy: {
      sealBudget: config.rotation.sealBudget,
      ...(config.rotation.maxAgeMs === undefined ? {} : { maxAgeMs: config.rotation.maxAgeMs }),
    },
    storeWritesPerDay: config.rotation.storeWritesPerDay,
    // A one-shot command reserves only what it uses; a bulk job reserves in blocks (one store write each).
    sealBlockSize: Math.min(sealBlockSize, config.rotation.sealBudget),
  });
  try {
    return await work(keyrings, config);
  } finally {
    await keyrings.close();
    await store.close();
  }
}

async function keys(args: string[], env: Env): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") return help(KEYS_HELP);
  return withKeys(env, async (keyrings, config) => {
    switch (sub) {
      case "list":
        for (const name of await keyrings.list()) out(name);
        return 0;
      case "describe":
        out(describe(await keyrings.describe(rest[0] ?? config.defaultKeyring)));
        return 0;
      case "create": {
        const [name] = rest;
        if (name === undefined) {
          err("usage: fieldseal keys create KEYRING");
          return 2;
        }
        await keyrings.create(name);
        out(`${name}: created with version 1 as primary`);
        return 0;
      }
      case "rotate": {
        const name = rest[0] ?? config.defaultKeyring;
        if (name === config.defaultKeyring) await keyrings.ensure(name);
        const state = await keyrings.rotate(name);
        out(`${name}: version ${state.primary} is now primary`);
        return 0;
      }
      case "retire": {
        const [name, min] = rest;
        if (name === undefined || min === undefined || !/^[1-9][0-9]*$/.test(min)) {
          err("usage: fieldseal keys retire KEYRING MIN_VERSION");
          return 2;
        }
        const state = await keyrings.retire(name, Number(min));
        out(`${name}: versions below ${state.minDecryptVersion} no longer open values`);
        return 0;
      }
      case "destroy": {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { retire: { type: "boolean" } },
        });
        const [name, below] = positionals;
        if (name === undefined || below === undefined || !/^[1-9][0-9]*$/.test(below)) {
          err("usage: fieldseal keys destroy KEYRING BELOW_VERSION [--retire]");
          return 2;
        }
        const state = await keyrings.destroy(name, Number(below), { retire: values.retire === true });
        const through = destroyedThrough(state);
        out(
          through === 0
            ? `${name}: no version was destroyed`
            : `${name}: the key material of versions 1 to ${through} is destroyed; their values can never be opened again`,
        );
        return 0;
      }
      default:
        err(`fieldseal keys: unknown subcommand "${sub}"\n\n${KEYS_HELP}`);
        return 2;
    }
  });
}

function describe(state: KeyringState & { rotateBy?: string; sealBudget: number }): string {
  const lines = [
    `keyring ${state.name}: primary ${state.primary}, minimum decryption version ${state.minDecryptVersion}`,
    `seal budget per version ${state.sealBudget}${state.rotateBy === undefined ? "" : `, rotate by ${state.rotateBy}`}`,
  ];
  for (const range of state.destroyed ?? []) {
    const which = range.from === range.through ? `v${range.from}` : `v${range.from}-v${range.through}`;
    lines.push(`  ${which}  destroyed    at ${range.destroyedAt} (no key material)`);
  }
  for (const v of state.versions) {
    const role =
      v.version === state.primary
        ? "primary"
        : v.version < state.minDecryptVersion
          ? "retired"
          : "decrypt-only";
    const label = v.legacyLabel === undefined ? "" : ` (tutorial label ${v.legacyLabel})`;
    lines.push(
      `  v${v.version}  ${role.padEnd(12)} created ${v.createdAt}  seals reserved ${v.sealsReserved}${label}`,
    );
  }
  return lines.join("\n");
}

const CONTEXT_OPTIONS = {
  field: { type: "string" },
  session: { type: "string" },
  user: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function contextOf(values: { field?: string; session?: string; user?: string }): {
  field: string;
  scope: Scope;
} {
  if (values.field === undefined) throw usage("--field is required");
  if ((values.session === undefined) === (values.user === undefined))
    throw usage("give exactly one of --session or --user");
  const scope: Scope =
    values.session !== undefined
      ? { kind: "session", id: values.session }
      : { kind: "user", id: values.user ?? "" };
  return { field: values.field, scope };
}

async function seal(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...CONTEXT_OPTIONS, keyring: { type: "string" }, json: { type: "boolean" } },
  });
  if (values.help) return help(SEAL_HELP);
  const { field, scope } = contextOf(values);
  const text = argOrStdin(positionals[0], "VALUE");
  let value: JsonValue = text;
  if (values.json) {
    try {
      value = JSON.parse(text) as JsonValue;
    } catch {
      throw usage("--json was given but VALUE is not valid JSON");
    }
  }
  return withKeys(env, async (keyrings, config) => {
    const sealer = new Sealer(keyrings, { legacyKeyring: config.legacyKeyring });
    const keyring = values.keyring ?? config.defaultKeyring;
    // Like EncryptFields: only the default keyring is created on first use; others need `keys create`.
    if (keyring === config.defaultKeyring) await keyrings.ensure(keyring);
    const result = await sealer.sealFields(keyring, scope, [[field, value]]);
    out(result.sealed.get(field) ?? "");
    return 0;
  });
}

async function open(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: CONTEXT_OPTIONS });
  if (values.help) return help(OPEN_HELP);
  const { field, scope } = contextOf(values);
  const sealed = argOrStdin(positionals[0], "SEALED").trim();
  return withKeys(env, async (keyrings, config) => {
    const sealer = new Sealer(keyrings, {
      legacyKeyring: config.legacyKeyring,
      legacyEnabled: config.legacyEnabled,
    });
    // An operator with the key store's credentials can open anything; legacy values need no grant here.
    const opened = await sealer.open({ scope, field }, sealed, { allowLegacy: true });
    out(JSON.stringify(opened.value));
    return 0;
  });
}

/** Seals reserved per store write by `legacy migrate`: few writes, and at most this many seals unused. */
const MIGRATION_SEAL_BLOCK = 4096;

async function legacy(args: string[], env: Env): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { keyring: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (sub === undefined || sub === "--help" || sub === "-h" || values.help) return help(LEGACY_HELP);
  if (sub !== "migrate") {
    err(`fieldseal legacy: unknown subcommand "${sub}"\n\n${LEGACY_HELP}`);
    return 2;
  }
  if (positionals.length > 0) throw usage("legacy migrate reads values from standard input only");
  const target = values.keyring;
  if (target !== undefined) assertKeyringName(target);
  return withKeys(
    env,
    async (keyrings, config) => {
      const sealer = new Sealer(keyrings, {
        legacyKeyring: config.legacyKeyring,
        legacyEnabled: config.legacyEnabled,
      });
      const output = lineOutput(process.stdout);
      let summary: MigrationSummary;
      try {
        summary = await migrateLegacyLines(
          process.stdin,
          (line) => output.write(line),
          // The operator's own tool: legacy blobs need no grant here, only the key store's credentials.
          (ctx, sealed) => sealer.rewrap(ctx, sealed, target, { allowLegacy: true }),
        );
      } catch (e) {
        // `| head`, a closed pipe: stop reading, and say so rather than die with a stack trace.
        if (!(e instanceof OutputClosedError)) throw e;
        err(`fieldseal legacy migrate: ${e.message}; stopped, later lines were not migrated`);
        return 1;
      }
      err(`fieldseal legacy migrate: ${summary.rewrapped} rewrapped, ${summary.failed} failed`);
      return summary.failed === 0 ? 0 : 1;
    },
    MIGRATION_SEAL_BLOCK,
  );
}

function token(args: string[]): number {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: { name: { type: "string" }, scopes: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (sub !== "create" || values.help) return help(TOKEN_HELP);
  if (values.name === undefined || values.scopes === undefined)
    throw usage("--name and --scopes are required");
  const scopes = values.scopes
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  assertScopes(values.name, scopes);
  const secret = generateToken();
  out(`token (give it to the service; it is not stored anywhere):\n  ${secret}\n`);
  out(
    `add to "principals" in the config file:\n  ${JSON.stringify({ name: values.name, tokenSha256: hashToken(secret), scopes })}`,
  );
  return 0;
}

function argOrStdin(arg: string | undefined, name: string): string {
  if (arg === undefined) throw usage(`${name} is required ('-' reads it from standard input)`);
  if (arg !== "-") return arg;
  return readFileSync(0, "utf8").replace(/\r?\n$/, "");
}

/** A command line that does not say what the command needs; exit code 2. */
class UsageError extends Error {}

function usage(message: string): UsageError {
  return new UsageError(message);
}

function help(text: string): number {
  out(text);
  return 0;
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

function err(text: string): void {
  process.stderr.write(`${text}\n`);
}
