/**
 * Adopting the tutorial's key. A keyring whose primary is a version taken from the tutorial (it carries a
 * `legacyLabel`) must not seal anything new under it: the tutorial's middleware still holds that key, it
 * was handled as ASCII text by that code, and its earlier seals were never counted against the nonce budget.
 * So the moment such a keyring is read, a fresh version from the CSPRNG is written as primary; the tutorial
 * version stays behind as a decrypt-only version that opens old blobs (and fs1 values sealed under it by
 * an earlier Fieldseal) until it is retired.
 *
 * This is a KeyStore wrapper, so both stores adopt the same way: on Secrets Manager the first read of the
 * tutorial's `{"key","version"}` secret writes the whole keyring in Fieldseal's format (v1 = the tutorial
 * key with its label, v2 = the new primary); on the local store a keyring file whose primary carries a legacy
 * label gets the same new version. The write is an ordinary compare-and-swap, so replicas adopting at once
 * converge on one new version. If the store refuses the write, the keyring is served as read (its versions
 * open their values) and nothing is sealed until a later read adopts it.
 */
import { FieldsealError } from "../errors.js";
import { withNewPrimary } from "./keyring-state.js";
import type { CasResult, KeyringState, KeyStore } from "./types.js";

/** Compare-and-swap attempts before adoption gives up with "conflict". */
const MAX_ATTEMPTS = 16;
/** After the store refused an adoption, how long reads and seals go without trying the write again. */
const RETRY_AFTER_MS = 1000;

export interface TutorialAdoptionOptions {
  /** Clock for the new version's creation time and for `retryAfterMs`. Default Date.now. */
  now?: () => number;
  /** Called once per adoption this process wrote: the keyring and its new primary version. Must not throw. */
  onAdopted?: (keyring: string, primary: number) => void;
  /**
   * Called when the store refused the adoption's write (a role without write permission, a full disk). The
   * keyring is then served as read, so the tutorial version keeps opening its values, and nothing seals
   * under it (every write that keeps it primary is refused); a read or seal after `retryAfterMs` tries
   * again. Must not throw.
   */
  onAdoptionFailed?: (keyring: string, err: unknown) => void;
  /**
   * After a refused adoption, how long to serve the keyring as read without trying the write again, so a
   * stream of seals cannot turn into a stream of refused store writes (Secrets Manager's write rate is
   * shared by the whole account). Default 1000 ms.
   */
  retryAfterMs?: number;
}

/**
 * True when the keyring's primary is a version taken from a tutorial secret: one that carries its label, or
 * version 1 of state read from a tutorial secret that had no label.
 */
export function hasTutorialPrimary(state: KeyringState): boolean {
  if (state.fromTutorialSecret === true && state.primary === 1) return true;
  return state.versions[state.primary - 1]?.legacyLabel !== undefined;
}

/** `store`, with every keyring whose primary is a tutorial key given a fresh primary as soon as it is read. */
export function adoptingTutorialKeys(store: KeyStore, options: TutorialAdoptionOptions = {}): KeyStore {
  const now = options.now ?? Date.now;
  const retryAfterMs = options.retryAfterMs ?? RETRY_AFTER_MS;
  /** Keyring name to the time before which a refused adoption is not tried again. */
  const refusedUntil = new Map<string, number>();
  const backingOff = (name: string) => (refusedUntil.get(name) ?? 0) > now();
  const adopt = async (state: KeyringState | undefined): Promise<KeyringState | undefined> => {
    let current = state;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (current === undefined || !hasTutorialPrimary(current) || backingOff(current.name)) return current;
      let result: CasResult;
      try {
        result = await store.compareAndSwap(current.revision, withNewPrimary(current, now()));
      } catch (err) {
        // Opening must not depend on a write: a read-only role opened these values before adoption
        // existed. Sealing stays fenced by compareAndSwap below, which refuses a tutorial primary.
        refusedUntil.set(current.name, now() + retryAfterMs);
        try {
          options.onAdoptionFailed?.(current.name, err);
        } catch {
          // An observer's failure changes nothing here.
        }
        return current;
      }
      if (result.ok) {
        refusedUntil.delete(result.state.name);
        try {
          options.onAdopted?.(result.state.name, result.state.primary);
        } catch {
          // An observer's failure must not undo an adoption that is stored.
        }
        return result.state;
      }
      current = result.current;
    }
    throw new FieldsealError(
      "conflict",
      `keyring "${state?.name ?? ""}": could not give the adopted tutorial key a successor after ${MAX_ATTEMPTS} attempts`,
    );
  };
  return {
    kind: store.kind,
    load: async (name) => adopt(await store.load(name)),
    list: () => store.list(),
    // A wrapper must keep the store's cheap revision check, or Keyrings falls back to its slow refresh. A
    // moved revision makes Keyrings load the keyring, and that load adopts.
    ...(store.revision === undefined ? {} : { revision: store.revision.bind(store) }),
    async compareAndSwap(expectedRevision, next): Promise<CasResult> {
      if (hasTutorialPrimary(next)) {
        // A writer still holding the tutorial primary (a seal reservation made while adoption could not be
        // written): adopt now, so it retries on the fresh primary. A rollback to the tutorial version, or a
        // store that still refuses the write, is refused.
        if (!backingOff(next.name)) {
          const current = await adopt(await store.load(next.name));
          if (
            current !== undefined &&
            current.revision !== expectedRevision &&
            !hasTutorialPrimary(current)
          ) {
            return { ok: false, current };
          }
        }
        throw new FieldsealError(
          "failed_precondition",
          `keyring "${next.name}": a version taken from the tutorial's secret may not be primary, and its successor could not be written yet (does the key store allow writes?)`,
        );
      }
      const result = await store.compareAndSwap(expectedRevision, next);
      if (result.ok) return result;
      return { ok: false, current: await adopt(result.current) };
    },
    close: () => store.close(),
  };
}
