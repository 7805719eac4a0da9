import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { createContextValues } from "@connectrpc/connect";
import { peerCertificateKey } from "../service/context.js";

/**
 * Context values for one RPC carrying the client certificate of its TLS connection, if it sent one, and
 * whether Node verified it against the configured client CA (`authorized`). Cleartext connections carry none.
 */
export function peerContextValues(req: http.IncomingMessage | http2.Http2ServerRequest) {
  const values = createContextValues();
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== "function") return values;
  const cert = socket.getPeerCertificate();
  // An empty object means the client sent no certificate.
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return values;
  const cn = cert.subject?.CN;
  values.set(peerCertificateKey, {
    verified: socket.authorized === true,
    certificate: {
      commonName: Array.isArray(cn) ? undefined : cn,
      altNames: altNames(cert.subjectaltname),
    },
  });
  return values;
}

/** `DNS:a, URI:spiffe://b, IP Address:127.0.0.1` → [a, spiffe://b, 127.0.0.1]. Quoted (escaped) entries are skipped. */
function altNames(text: string | undefined): string[] {
  if (text === undefined || text === "") return [];
  return text
    .split(", ")
    .map((entry) => entry.slice(entry.indexOf(":") + 1))
    .filter((value) => value !== "" && !value.startsWith('"'));
}
