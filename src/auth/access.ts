import { type PrincipalConfig, TokenAuthenticator } from "./principals.js";

/**
 * Who may call and what each caller may do, as one swappable value. The interceptor reads `current` once
 * per call, so a reload (SIGHUP) never changes the rules under a call in progress and never drops one:
 * calls that started before the swap finish under the old rules, later calls see the new ones.
 */
export class AccessControl {
  #current: TokenAuthenticator;

  constructor(principals: readonly PrincipalConfig[]) {
    this.#current = new TokenAuthenticator(principals);
  }

  /** The rules in force now. */
  get current(): TokenAuthenticator {
    return this.#current;
  }

  /** Replaces every principal and grant at once; throws, leaving the old rules, if the new ones are invalid. */
  replace(principals: readonly PrincipalConfig[]): void {
    this.#current = new TokenAuthenticator(principals);
  }
}
