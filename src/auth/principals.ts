import { createHash, timingSafeEqual } from "node:crypto";
import { FieldsealError } from "../errors.js";
import { type Grant, grants, type Operation, parseGrants, type Target } from "./policy.js";

export type { Operation } from "./policy.js";

/** A caller known to the service, with what it may do. */
export interface Principal {
  readonly name: string;
  readonly grants: readonly Grant[];
}

/** How a verified client certificate names its principal (either is enough). */
export interface CertificateMatch {
  /** `CN=<common name>` of the certificate's subject. */
  readonly subject?: string;
  /** A subjectAltName value: a DNS name, a URI (e.g. `spiffe://...`) or an IP address. */
  readonly san?: string;
}

/** A principal as configured: its token only as a SHA-256 hash, never in clear. */
export interface PrincipalConfig {
  readonly name: string;
  /** Lowercase hex SHA-256 of the bearer token; absent for principals that authenticate by certificate. */
  readonly tokenSha256?: string;
  readonly certificate?: CertificateMatch;
  readonly grants: readonly Grant[];
}

/** Throws invalid_argument unless every scope is one the service understands. */
export function assertScopes(principal: string, scopes: readonly string[]): void {
  parseGrants(scopes, undefined, `principal "${principal}"`);
}

/** SHA-256 of a bearer token, as stored in the configuration. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A verified client certificate's names, as the TLS layer reports them. */
export interface PeerCertificate {
  /** Subject common name, if any. */
  readonly commonName: string | undefined;
  /** subjectAltName values without their type prefix (`DNS:`, `URI:`, `IP Address:`). */
  readonly altNames: readonly string[];
}

/**
 * Resolves credentials to principals: bearer tokens by hash (in constant time with respect to the
 * configured tokens), verified client certificates by subject CN or SAN, internal callers by name.
 * Immutable: a reload builds a new one.
 */
export class TokenAuthenticator {
  readonly #entries: Array<{ hash: Buffer | undefined; config: PrincipalConfig; principal: Principal }>;

  constructor(principals: readonly PrincipalConfig[]) {
    this.#entries = principals.map((p) => {
      if (p.tokenSha256 !== undefined && !/^[0-9a-f]{64}$/.test(p.tokenSha256)) {
        throw new FieldsealError(
          "invalid_argument",
          `principal "${p.name}" has a tokenSha256 that is not 64 lowercase hex characters`,
        );
      }
      return {
        hash: p.tokenSha256 === undefined ? undefined : Buffer.from(p.tokenSha256, "hex"),
        config: p,
        principal: { name: p.name, grants: p.grants },
      };
    });
  }

  /** How many principals are configured. */
  get size(): number {
    return this.#entries.length;
  }

  /** The configured principal of that name, for callers authenticated another way (signed webhooks). */
  byName(name: string): Principal | undefined {
    return this.#entries.find((e) => e.principal.name === name)?.principal;
  }

  /** The principal whose token this is, or undefined. */
  authenticate(token: string): Principal | undefined {
    const presented = createHash("sha256").update(token, "utf8").digest();
    let found: Principal | undefined;
    // Every entry is compared, with no early exit, so timing does not tell which (if any) matched.
    for (const entry of this.#entries) {
      if (entry.hash === undefined) continue;
      if (timingSafeEqual(presented, entry.hash) && found === undefined) found = entry.principal;
    }
    return found;
  }

  /**
   * The principal a *verified* client certificate maps to, or undefined. The caller must have checked
   * that the TLS layer verified the chain: an unverified certificate's names are whatever the client chose.
   */
  byCertificate(cert: PeerCertificate): Principal | undefined {
    for (const { config, principal } of this.#entries) {
      const m = config.certificate;
      if (m === undefined) continue;
      if (m.subject !== undefined && cert.commonName !== undefined && m.subject === `CN=${cert.commonName}`)
        return principal;
      if (m.san !== undefined && cert.altNames.includes(m.san)) return principal;
    }
    return undefined;
  }
}

/** True when the principal may perform `op` on the target field and keyring. */
export function isAllowed(principal: Principal, op: Operation, target: Target = {}): boolean {
  return grants(principal.grants, op, target);
}

/** Throws permission_denied unless the principal may perform the operation. */
export function authorize(principal: Principal, op: Operation, target: Target = {}): void {
  if (!isAllowed(principal, op, target)) {
    const on = [
      target.field === undefined ? "" : ` field "${target.field}"`,
      target.keyring === undefined ? "" : ` in keyring "${target.keyring}"`,
    ].join("");
    throw new FieldsealError("permission_denied", `principal "${principal.name}" may not ${op}${on}`);
  }
}
