/** Test doubles around a real KeyStore: call counting, an outage switch and a barrier for loads. */
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FieldsealError } from "../../src/errors.js";
import { LocalFileKeyStore } from "../../src/keys/local-file-store.js";
import type { CasResult, KeyringState, KeyStore } from "../../src/keys/types.js";

/** A fresh LocalFileKeyStore in its own temp directory. */
export async function tempStore(): Promise<{
  store: LocalFileKeyStore;
  dir: string;
  cleanup: () => Promise<void>;
}> {
  const root = await mkdtemp(join(tmpdir(), "fieldseal-keys-"));
  const dir = join(root, "keys");
  return {
    store: new LocalFileKeyStore(dir),
    dir,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** Wraps a store: counts calls, can simulate an outage, and can hold loads until `n` have arrived. */
export class ObservedStore implements KeyStore {
  readonly kind: string;
  readonly #inner: KeyStore;
  loads = 0;
  cases = 0;
  lists = 0;
  down = false;
  #barrier: { size: number; waiting: Array<() => void> } | undefined;

  constructor(inner: KeyStore) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  /** The next `size` loads wait for each other, so they all see the same state. */
  holdLoadsUntil(size: number): void {
    this.#barrier = { size, waiting: [] };
  }

  /** Lets every held load continue. */
  releaseLoads(): void {
    const barrier = this.#barrier;
    this.#barrier = undefined;
    for (const release of barrier?.waiting ?? []) release();
  }

  async load(name: string): Promise<KeyringState | undefined> {
    this.loads++;
    this.#failIfDown();
    const barrier = this.#barrier;
    if (barrier) {
      const arrived = new Promise<void>((resolve) => barrier.waiting.push(resolve));
      if (barrier.waiting.length >= barrier.size) {
        this.#barrier = undefined;
        for (const release of barrier.waiting) release();
      }
      await arrived;
    }
    return this.#inner.load(name);
  }

  async list(): Promise<string[]> {
    this.lists++;
    this.#failIfDown();
    return this.#inner.list();
  }

  async compareAndSwap(expectedRevision: number, next: KeyringState): Promise<CasResult> {
    this.cases++;
    this.#failIfDown();
    return this.#inner.compareAndSwap(expectedRevision, next);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #failIfDown(): void {
    if (this.down) throw new FieldsealError("store_unavailable", "simulated outage");
  }
}

/**
 * The file that holds a local keyring's current state: its highest revision file (`<name>.<revision>.json`,
 * see src/keys/local-file-store.ts).
 */
export function currentKeyringFile(dir: string, name: string): string {
  const revisions = readdirSync(dir)
    .map((f) => new RegExp(`^${name}\\.([0-9]+)\\.json$`).exec(f)?.[1])
    .filter((r) => r !== undefined)
    .map(Number);
  if (revisions.length === 0) throw new Error(`no revision file of keyring ${name} in ${dir}`);
  return join(dir, `${name}.${Math.max(...revisions)}.json`);
}

/** Every revision file of a local keyring, as the store left them on disk. */
export function keyringRevisionFiles(dir: string, name: string): string[] {
  return readdirSync(dir)
    .filter((f) => new RegExp(`^${name}\\.[0-9]+\\.json$`).test(f))
    .map((f) => join(dir, f));
}

/** Writes `state` as its own revision file behind the store's back, as a buggy tool or a restore would. */
export function writeKeyringRevision(dir: string, state: KeyringState, text: string): Promise<void> {
  return writeFile(join(dir, `${state.name}.${state.revision}.json`), text, { mode: 0o600 });
}
