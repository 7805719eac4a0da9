import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileAudit, jsonLinesAudit } from "./audit.js";
import { assertScopes, hashToken } from "./auth/principals.js";
import { bootstrapAdmin, generateToken } from "./bootstrap.js";
import { type Config, describeFsError, loadConfig, parseConfig, SETTINGS } from "./config.js";
import { editConfigFile } from "./config-file-edit.js";
import type { Scope } from "./engine/aad.js";
import type { JsonValue } from "./engine/json-value.js";
import { assertAadPart, assertKeyringName, KEYRING_NAME } from "./engine/names.js";
import { scopeName } from "./engine/scoped.js";
import { FieldsealError, isFieldsealError } from "./errors.js";
import { destroyedThrough } from "./keys/keyring-state.js";
import { Keyrings } from "./keys/keyrings.js";
import { keyStoreFromConfig } from "./keys/store-from-config.js";
import { adoptingTutorialKeys } from "./keys/tutorial-adoption.js";
import type { KeyringState } from "./keys/types.js";
import { type MigrationSummary, migrateLegacyLines } from "./legacy-migration.js";
import { lineOutput, OutputClosedError } from "./line-output.js";
import { createLogger } from "./log.js";
import type { ScopeKeys } from "./scopes/scope-keys.js";
import {
  dynamoDbScopeKeyStore,
  scopeKeyStoreFromConfig,
  scopeKeysFromConfig,
} from "./scopes/store-from-config.js";
import { Sealer } from "./sealer.js";
import type { RunningServer } from "./server/app.js";
import type { reloadAccess as ReloadAccess } from "./server/reload.js";
import { announceServer, reloadServers } from "./server/run-file.js";
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
  fieldseal keys destroy KEYRING BELOW [--retire] [--force]
                                        Irreversibly destroy the material of retired versions below BELOW
  fieldseal seal --field F (--session S | --user U) [--keyring K] [--json] VALUE|-
  fieldseal open --field F (--session S | --user U) SEALED|-
  fieldseal token create --name N --scopes S1,S2 [--apply]
                                        Generate a bearer token and the config entry holding its hash
  fieldseal legacy migrate [--keyring K] < values.jsonl > rewrapped.jsonl
                                        Rewrap legacy tutorial blobs (JSON lines) to fs1 envelopes
  fieldseal scopes forget --keyring K (--session S | --user U)
                                        Erase a scope of an erasable keyring (IRREVERSIBLE)
  fieldseal scopes reapply-tombstones AUDIT_FILE|-
                                        After restoring the scope key database: forget again every
                                        scope the audit trail records as forgotten
  fieldseal scopes rewrap-keys --keyring K
                                        Re-wrap every scope key under the primary version (before
                                        destroying older versions)
  fieldseal scopes create-table         Create the DynamoDB table of scope keys

Run 'fieldseal COMMAND --help' for a command's options.`;

/** Every declared setting (src/config.ts), for `fieldseal --help` and `fieldseal serve --help`. */
const SETTINGS_HELP = `Settings (environment variable, config file key, default; a secret one's file must be 0600 or 0400):
${SETTINGS.map((s) => `  ${s.env.padEnd(32)} ${s.file.padEnd(22)} ${s.description} [${s.default}]${s.secret ? " (secret)" : ""}`).join("\n")}`;

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

${SETTINGS_HELP}`;

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
                               its store's size limit, where a separate retire no longer fits).
    --force                    Destroy even when an erasable keyring's scope data keys are still wrapped
                               under those versions (refused otherwise: run scopes rewrap-keys first);
                               those scopes can then never seal or open again.`;

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

const SCOPES_HELP = `fieldseal scopes: erasable keyrings' scope keys (docs/erasable-scopes.md), with the
scope key database and key store of the config (same config as serve).

  scopes forget --keyring K (--session S | --user U)
        Destroys the scope's data key and leaves a tombstone: every value of the scope, wherever it was
        copied, fails with scope_forgotten from then on. IRREVERSIBLE. Answers once no replica can still
        use the key (FIELDSEAL_SCOPE_KEY_TTL_MS). Writes one audit line (to FIELDSEAL_AUDIT_FILE, else to
        standard output, as the server does).
  scopes reapply-tombstones AUDIT_FILE|-
        Restoring a backup of the scope key database brings forgotten data keys back. This reads the
        audit trail (JSON lines; '-' for standard input), kept apart from the database, and forgets again
        every scope it records as forgotten ("action":"forget","outcome":"ok"), unless the scope has a
        newer generation than the one forgotten. Prints how many were forgotten again.
  scopes rewrap-keys --keyring K
        Re-wraps every scope data key of keyring K still wrapped under an older version under the primary
        (each seal does this for its own scope). Run it after a rotation and before destroying the older
        versions: a scope whose key is wrapped only under a destroyed version can never seal or open again,
        and database backups taken before the rotation become useless once those versions are destroyed.
  scopes create-table
        Creates the DynamoDB table FIELDSEAL_SCOPE_TABLE (on-demand) when it does not exist.`;

const TOKEN_HELP = `fieldseal token create: generate a bearer token for a calling service.

Options:
  --name N        Principal name. Required.
  --scopes LIST   Comma-separated: encrypt, rewrap, rotate, destroy, forget, push, admin, decrypt:<field>,
                  decrypt:*, index:<field>, index:*, legacy:decrypt, legacy:rewrap
  --apply         Add the principal to the config file (0600, replaced atomically, under a lock) and
                  make every running server of this data directory reload it (SIGHUP), waiting until
                  each has; the token then works at once.
Prints the token (give it to the service; it is not stored) and, without --apply, the JSON entry to add
to the config file's "principals" array (it holds only the token's SHA-256).`;

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
        return await token(rest, env);
      case "legacy":
        return await legacy(rest, env);
      case "scopes":
        return await scopes(rest, env);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(command === undefined ? USAGE : `${USAGE}\n\n${SETTINGS_HELP}`);
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
  const { startServer, reloadAccess } = await serverModules();
  const store = await keyStoreFromConfig(config);
  const server = await startServer(config, store);
  if (created !== undefined) out(adminTokenBanner(created, server.url));
  const stopped = handleSignals(server, config, withFlags, false, reloadAccess);
  out(`fieldseal listening on ${server.url} (key store: ${store.kind})`);
  await stopped;
  exitSoonIfHeld();
  return 0;
}

/** The server's modules (connect-node, HTTP/2) load only when serving, so the other commands start quickly. */
async function serverModules() {
  const [{ startServer }, { reloadAccess }] = await Promise.all([
    import("./server/app.js"),
    import("./server/reload.js"),
  ]);
  return { startServer, reloadAccess };
}

/**
 * Everything of ours is closed. A request still open in a library (a trace export to a collector that never
 * answers) must not keep the stopped process alive: exit a second later if something still does.
 */
function exitSoonIfHeld(): void {
  setTimeout(() => process.exit(), 1000).unref();
}

/** One of the processes of `serve --workers N`: serves, and tells the primary when it listens. */
async function serveWorker(config: Config, withFlags: Env): Promise<number> {
  try {
    const { startServer, reloadAccess } = await serverModules();
    const store = await keyStoreFromConfig(config);
    const server = await startServer(config, store);
    const stopped = handleSignals(server, config, withFlags, true, reloadAccess);
    // The primary's heartbeat: answered from the event loop, so a hung worker stops answering.
    process.on("message", (message: unknown) => {
      if (isHeartbeatPing(message)) process.send?.({ fieldseal: "pong" } satisfies WorkerHeartbeat);
    });
    const listening: WorkerListening = { fieldseal: "listening", url: server.url, store: store.kind };
    process.send?.(listening);
    await stopped;
    exitSoonIfHeld();
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
  reloadAccess: typeof ReloadAccess,
): Promise<void> {
  const log = createLogger(config.logLevel);
  // Lets `token create --apply` find this server, signal it and wait for the reload (removed on exit).
  const runFile = announceServer(config.dataDir, config.configFile);
  if (runFile === undefined) {
    log.warn(
      "cannot write a run record in the data directory; token create --apply will not find this server",
      {
        dataDir: config.dataDir,
      },
    );
  }
  const reload = () => {
    const ok = reloadAccess(server.access, () => loadConfig(withFlags, process.cwd()), log, config);
    server.reopenAudit();
    runFile?.reloaded(ok);
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
        runFile?.remove();
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
  work: (keyrings: Keyrings, config: Config, scopeKeys: ScopeKeys | undefined) => Promise<T>,
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
  // Erasable keyrings seal and open through their scope keys from the CLI too, never around them.
  const scopeKeys = await scopeKeysFromConfig(config.scopes, keyrings);
  try {
    return await work(keyrings, config, scopeKeys);
  } finally {
    await scopeKeys?.close();
    await keyrings.close();
    await store.close();
  }
}

async function keys(args: string[], env: Env): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") return help(KEYS_HELP);
  return withKeys(env, async (keyrings, config, scopeKeys) => {
    switch (sub) {
      case "list":
        for (const name of await keyrings.list()) out(name);
        return 0;
      case "describe": {
        const name = rest[0] ?? config.defaultKeyring;
        out(describe(await keyrings.describe(name), config.scopes.erasable[name]));
        return 0;
      }
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
          options: { retire: { type: "boolean" }, force: { type: "boolean" } },
        });
        const [name, below] = positionals;
        if (name === undefined || below === undefined || !/^[1-9][0-9]*$/.test(below)) {
          err("usage: fieldseal keys destroy KEYRING BELOW_VERSION [--retire] [--force]");
          return 2;
        }
        // As DestroyKeyVersions: a scope data key wrapped only under a destroyed version is erased with it.
        if (
          values.force !== true &&
          scopeKeys?.policy(name) !== undefined &&
          (await scopeKeys.wrapsBelow(name, Number(below)))
        ) {
          err(
            `fieldseal keys destroy: keyring "${name}" has scope data keys still wrapped under versions below ${below}: destroying those versions would make their scopes unopenable. Run "fieldseal scopes rewrap-keys --keyring ${name}" first (or give --force to erase those scopes too)`,
          );
          return 1;
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

function describe(
  state: KeyringState & { rotateBy?: string; sealBudget: number },
  erasable: { reuseAfterForget: boolean } | undefined,
): string {
  const lines = [
    `keyring ${state.name}: primary ${state.primary}, minimum decryption version ${state.minDecryptVersion}`,
    `seal budget per version ${state.sealBudget}${state.rotateBy === undefined ? "" : `, rotate by ${state.rotateBy}`}`,
  ];
  if (erasable !== undefined) {
    lines.push(
      `erasable: values sealed per scope; a forgotten scope ${erasable.reuseAfterForget ? "may seal again under a new data key" : "never seals again"}`,
    );
  }
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
  return withKeys(env, async (keyrings, config, scopeKeys) => {
    const sealer = new Sealer(keyrings, {
      legacyKeyring: config.legacyKeyring,
      ...(scopeKeys === undefined ? {} : { scopes: scopeKeys }),
    });
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
  return withKeys(env, async (keyrings, config, scopeKeys) => {
    const sealer = new Sealer(keyrings, {
      legacyKeyring: config.legacyKeyring,
      legacyEnabled: config.legacyEnabled,
      ...(scopeKeys === undefined ? {} : { scopes: scopeKeys }),
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
    async (keyrings, config, scopeKeys) => {
      const sealer = new Sealer(keyrings, {
        legacyKeyring: config.legacyKeyring,
        legacyEnabled: config.legacyEnabled,
        ...(scopeKeys === undefined ? {} : { scopes: scopeKeys }),
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

async function scopes(args: string[], env: Env): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      keyring: { type: "string" },
      session: { type: "string" },
      user: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (sub === undefined || sub === "--help" || sub === "-h" || values.help) return help(SCOPES_HELP);
  const config = loadConfig(env, process.cwd());
  if (sub === "create-table") {
    if (config.scopes.store.kind !== "dynamodb")
      throw usage("create-table is for FIELDSEAL_SCOPE_STORE=dynamodb");
    const s = config.scopes.store;
    const store = await dynamoDbScopeKeyStore(s);
    try {
      await store.createTable();
    } finally {
      await store.close();
    }
    out(`table ${s.table} is ready`);
    return 0;
  }
  if (sub === "rewrap-keys") {
    const keyring = values.keyring;
    if (keyring === undefined) throw usage("--keyring is required");
    assertKeyringName(keyring);
    if (config.scopes.erasable[keyring] === undefined)
      throw usage(`keyring "${keyring}" is not erasable (FIELDSEAL_ERASABLE_KEYRINGS)`);
    return withKeys(env, async (keyrings, _config, scopeKeys) => {
      if (scopeKeys === undefined) throw usage("no keyring is erasable");
      const state = await keyrings.describe(keyring);
      const counts = await scopeKeys.rewrapAll(await keyrings.openingKey(keyring, state.primary));
      err(
        `${keyring}: ${counts.rewrapped} scope keys re-wrapped under version ${state.primary}` +
          (counts.changed === 0
            ? ""
            : `, ${counts.changed} changed meanwhile (forgotten or re-wrapped by a seal)`),
      );
      return 0;
    });
  }
  if (sub !== "forget" && sub !== "reapply-tombstones") {
    err(`fieldseal scopes: unknown subcommand "${sub}"\n\n${SCOPES_HELP}`);
    return 2;
  }
  let scope: Scope | undefined;
  let keyring = "";
  if (sub === "forget") {
    if (values.keyring === undefined) throw usage("--keyring is required");
    keyring = values.keyring;
    assertKeyringName(keyring);
    if ((values.session === undefined) === (values.user === undefined))
      throw usage("give exactly one of --session or --user");
    scope =
      values.session !== undefined
        ? { kind: "session", id: values.session }
        : { kind: "user", id: values.user ?? "" };
    assertAadPart(scope.kind === "session" ? "session id" : "user id", scope.id);
    if (config.scopes.erasable[keyring] === undefined)
      throw usage(`keyring "${keyring}" is not erasable (FIELDSEAL_ERASABLE_KEYRINGS)`);
  } else if (positionals[0] === undefined) {
    throw usage("AUDIT_FILE is required ('-' reads the audit trail from standard input)");
  }
  const audit =
    config.audit.file === undefined
      ? jsonLinesAudit((line) => process.stdout.write(line))
      : fileAudit(config.audit.file);
  const store = await scopeKeyStoreFromConfig(config.scopes);
  try {
    if (scope !== undefined) {
      const keyrings = (await withKeys(env, async (k) => k.list())) as string[];
      if (!keyrings.includes(keyring)) throw usage(`keyring "${keyring}" does not exist`);
      let tombstone: Awaited<ReturnType<typeof store.forget>>;
      try {
        tombstone = await store.forget(keyring, scopeName(scope), new Date().toISOString());
      } catch (e) {
        audit.record({
          action: "forget",
          principal: "cli",
          outcome: "error",
          code: isFieldsealError(e) ? e.code : "internal",
          keyring,
          scopeKind: scope.kind,
          scopeId: scope.id,
        });
        throw e;
      }
      audit.record({
        action: "forget",
        principal: "cli",
        outcome: "ok",
        keyring,
        scopeKind: scope.kind,
        scopeId: scope.id,
        generation: tombstone.generation,
      });
      // Every replica's cached copy of the key expires within the bound: wait it out before saying so.
      await new Promise((r) => setTimeout(r, config.scopes.cacheTtlMs));
      err(
        `${keyring}: ${scope.kind} scope forgotten (generation ${tombstone.generation}); its values can never be opened again`,
      );
      return 0;
    }
    const text =
      positionals[0] === "-" ? readFileSync(0, "utf8") : readFileSync(positionals[0] as string, "utf8");
    const counts = { forgotten: 0, newer: 0, skipped: 0 };
    for (const line of text.split("\n")) {
      const entry = forgetEntry(line);
      if (entry === undefined) {
        if (line.trim() !== "") counts.skipped++;
        continue;
      }
      const now = await store.forget(entry.keyring, entry.scope, new Date().toISOString(), entry.generation);
      if (now.state === "forgotten") counts.forgotten++;
      else counts.newer++;
    }
    await new Promise((r) => setTimeout(r, config.scopes.cacheTtlMs));
    err(
      `fieldseal scopes reapply-tombstones: ${counts.forgotten} scopes forgotten (again), ${counts.newer} left alone (a newer generation than the one forgotten), ${counts.skipped} other lines skipped`,
    );
    return 0;
  } finally {
    await store.close();
    audit.close?.();
  }
}

/** A successful forget recorded in an audit line, or undefined for any other line. */
function forgetEntry(line: string): { keyring: string; scope: string; generation: number } | undefined {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof event !== "object" || event === null || event.action !== "forget" || event.outcome !== "ok")
    return undefined;
  const { keyring, scopeKind, scopeId, generation } = event;
  if (typeof keyring !== "string" || !KEYRING_NAME.test(keyring)) return undefined;
  if ((scopeKind !== "session" && scopeKind !== "user") || typeof scopeId !== "string") return undefined;
  if (typeof generation !== "number" || !Number.isInteger(generation) || generation < 0) return undefined;
  try {
    assertAadPart("session id", scopeId);
  } catch {
    return undefined;
  }
  return { keyring, scope: scopeName({ kind: scopeKind, id: scopeId }), generation };
}

async function token(args: string[], env: Env): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      name: { type: "string" },
      scopes: { type: "string" },
      apply: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (sub !== "create" || values.help) return help(TOKEN_HELP);
  if (values.name === undefined || values.scopes === undefined)
    throw usage("--name and --scopes are required");
  const name = values.name;
  const scopes = values.scopes
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  assertScopes(name, scopes);
  const secret = generateToken();
  const principal = { name, tokenSha256: hashToken(secret), scopes };
  if (values.apply !== true) {
    out(`token (give it to the service; it is not stored anywhere):\n  ${secret}\n`);
    out(`add to "principals" in the config file:\n  ${JSON.stringify(principal)}`);
    return 0;
  }
  const config = loadConfig(env, process.cwd());
  const where = { dataDir: config.dataDir, configFile: config.configFile, cwd: process.cwd() };
  await editConfigFile(
    config.configFile,
    (file) => {
      const principals = Array.isArray(file.principals) ? file.principals : [];
      if (principals.some((p) => typeof p === "object" && p !== null && p.name === name)) {
        throw new FieldsealError(
          "failed_precondition",
          `principal "${name}" already exists in ${config.configFile}; choose another name`,
        );
      }
      return { ...file, principals: [...principals, principal] };
    },
    // The whole new file must still load, as the server will read it.
    (file) => void parseConfig(file, env, where),
  );
  out(`token (give it to the service; it is not stored anywhere):\n  ${secret}\n`);
  out(`principal "${name}" added to ${config.configFile}`);
  const outcomes = await reloadServers(config.dataDir, config.configFile);
  for (const { pid, result } of outcomes) {
    const words = {
      reloaded: "reloaded: the token works now",
      refused_config: "refused the new config (see its log); the token does not work there yet",
      no_answer: "did not confirm the reload in time; check its log",
      not_permitted: "could not be signalled (another user's process?); send it SIGHUP",
    }[result];
    out(`server ${pid} ${words}`);
  }
  if (outcomes.length === 0)
    out("no running server reads this config file; the token works from its next start");
  return outcomes.every((o) => o.result === "reloaded") ? 0 : 1;
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
