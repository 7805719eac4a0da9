import type { Tracer } from "@opentelemetry/api";
import { inSpan, SpanKind } from "../tracing.js";
import type { KeyStore } from "./types.js";

/**
 * The key store with a client span around each call (`fieldseal.keystore/<operation>`), a child of the RPC
 * being served. Attributes: the store's kind, the keyring's name and, for writes, the revision written;
 * never key material or the state read.
 */
export function tracedKeyStore(store: KeyStore, tracer: Tracer): KeyStore {
  const span = <T>(operation: string, attributes: Record<string, string | number>, work: () => Promise<T>) =>
    inSpan(
      tracer,
      `fieldseal.keystore/${operation}`,
      { kind: SpanKind.CLIENT, attributes: { "fieldseal.keystore.kind": store.kind, ...attributes } },
      work,
    );
  const revision = store.revision?.bind(store);
  return {
    kind: store.kind,
    load: (name) => span("load", { "fieldseal.keyring": name }, () => store.load(name)),
    list: () => span("list", {}, () => store.list()),
    compareAndSwap: (expectedRevision, next) =>
      span(
        "compareAndSwap",
        { "fieldseal.keyring": next.name, "fieldseal.keyring.revision": next.revision },
        () => store.compareAndSwap(expectedRevision, next),
      ),
    ...(revision === undefined
      ? {}
      : {
          revision: (name: string) => span("revision", { "fieldseal.keyring": name }, () => revision(name)),
        }),
    close: () => store.close(),
  };
}
