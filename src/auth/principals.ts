import { createHash, timingSafeEqual } from "node:crypto";
import { FieldsealError } from "../errors.js";

/**
 * What a principal may do. `decrypt:<field>` allows opening that field only; `decrypt:*` any field;
 * `admin` allows everything.
 */
export type Scope = "encrypt" | "rewrap" | "rotate" | "push" | "admin" | `decrypt:${string}`;

/** A caller known to the service. */
export interface Principal {
  readonly name: string;
  readonly scopes: ReadonlySet<string>;
}

/** A principal as configured: its token is stored as a SHA-256 hash, never in clear. */
export interface PrincipalConfig {
  readonly name: string;
  /** Lowercase hex SHA-256 of the bearer token. */
  readonly tokenSha256: string;
  readonly scopes: readonly string[];
}

const SCOPE_PATTERN = /^(encrypt|rewrap|rotate|push|admin|decrypt:(\*|[^\s\0]{1,256}))$/;

/** Throws invalid_argument unless every scope is one the service understands. */
export function assertScopes(principal: string, scopes: readonly string[]): void {
  for (const scope of scopes) {
    if (!SCOPE_PATTERN.test(scope)) {
      throw new FieldsealError(
        "invalid_argument",
        `principal "${principal}" has unknown scope "${scope}" (expected encrypt, rewrap, rotate, push, admin or decrypt:<field|*>)`,
      );
    }
  }
}

/** SHA-256 of a bearer token, as stored in the configuration. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Resolves bearer tokens to principals by hash, in constant time with respect to the configured tokens. */
export class TokenAuthenticator {
  readonly #entries: Array<{ hash: Buffer; principal: Principal }>;

  constructor(principals: readonly PrincipalConfig[]) {
    this.#entries = principals.map((p) => {
      if (!/^[0-9a-f]{64}$/.test(p.tokenSha256)) {
        throw new FieldsealError(
          "invalid_argument",
          `principal "${p.name}" has a tokenSha256 that is not 64 lowercase hex characters`,
        );
      }
      assertScopes(p.name, p.scopes);
      return {
        hash: Buffer.from(p.tokenSha256, "hex"),
        principal: { name: p.name, scopes: new Set(p.scopes) },
      };
    });
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
      if (timingSafeEqual(presented, entry.hash) && found === undefined) found = entry.principal;
    }
    return found;
  }
}

/** True when the principal may perform `operation` (for decrypt: on `field`). */
export function isAllowed(
  principal: Principal,
  operation: "encrypt" | "decrypt" | "rewrap" | "rotate" | "push" | "admin",
  field?: string,
): boolean {
  const s = principal.scopes;
  if (s.has("admin")) return true;
  if (operation === "decrypt")
    return s.has("decrypt:*") || (field !== undefined && s.has(`decrypt:${field}`));
  return s.has(operation);
}

/** Throws permission_denied unless the principal may perform the operation. */
export function authorize(
  principal: Principal,
  operation: "encrypt" | "decrypt" | "rewrap" | "rotate" | "push" | "admin",
  field?: string,
): void {
  if (!isAllowed(principal, operation, field)) {
    const what = field === undefined ? operation : `${operation} field "${field}"`;
    throw new FieldsealError("permission_denied", `principal "${principal.name}" may not ${what}`);
  }
}
