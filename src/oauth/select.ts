import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { compileIdentityPolicy } from '../policy.js';
import type { IdentityConfig, IdentityStore, Logger } from '../types.js';

/** How long a listing of the identity store serves selections before it is read again, in ms. */
export const SELECTION_LISTING_MS = 5_000;

/**
 * Picks the identity of a token exchange that names none (no `client_id`), the way Azure picks a
 * federated credential: among the identities whose `boundIssuer` holds the token's `iss`, those
 * whose bindings (`boundSubject`, audiences, claims) accept its payload. Exactly one: its id.
 * None, or more than one (ambiguous): an id no identity has (random), so that the login which
 * follows runs exactly as one naming an unknown identity does — it verifies the token against its
 * issuer's keys first and answers as for any unknown identity — and the answer never tells "no
 * identity matches" from "several do" from "the token is forged" (issue 13's no-enumeration rule).
 *
 * The payload is read unverified here; that is safe because it only picks which identity the login
 * then verifies the token for, with that identity's own keys and bindings.
 *
 * Needs `IdentityStore.list`; the listing is indexed by issuer and kept {@link SELECTION_LISTING_MS}
 * (one listing per engine, its size the store's, never the clients'), so an identity written since
 * is selectable within that time, and a deleted one is refused at its login.
 */
export class IdentitySelector {
  readonly #store: IdentityStore;
  readonly #clock: () => number;
  readonly #logger: Logger | undefined;
  #index: { at: number; byIssuer: Map<string, IdentityConfig[]> } | undefined;
  #reading: Promise<Map<string, IdentityConfig[]>> | undefined;

  constructor(store: IdentityStore, clock: () => number, logger?: Logger) {
    this.#store = store;
    this.#clock = clock;
    this.#logger = logger;
  }

  /** Whether the store can list identities (selection needs it). */
  get available(): boolean {
    return typeof this.#store.list === 'function';
  }

  /** The id of the one identity that accepts `payload`, else a random id no identity has. */
  async select(payload: JWTPayload): Promise<string> {
    const issuer = payload.iss;
    if (typeof issuer === 'string') {
      const candidates = (await this.#byIssuer()).get(issuer) ?? [];
      let chosen: IdentityConfig | undefined;
      let matches = 0;
      for (const config of candidates) {
        let ok = false;
        try {
          ok = compileIdentityPolicy(config).check(payload as Record<string, unknown>).ok;
        } catch {
          ok = false;
        }
        if (ok && ++matches === 1) chosen = config;
      }
      if (matches === 1) return chosen!.identityId;
      if (matches > 1) {
        this.#logger?.warn(
          { event: 'oauth.selection.ambiguous', matches },
          'token exchange: several identities accept the token; none selected (name one with client_id)',
        );
      }
    }
    return `unselected:${randomUUID()}`;
  }

  async #byIssuer(): Promise<Map<string, IdentityConfig[]>> {
    const now = this.#clock();
    const index = this.#index;
    if (index && now - index.at < SELECTION_LISTING_MS && now >= index.at) return index.byIssuer;
    this.#reading ??= this.#read(now).finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(now: number): Promise<Map<string, IdentityConfig[]>> {
    const listed = (await this.#store.list?.()) ?? [];
    const byIssuer = new Map<string, IdentityConfig[]>();
    for (const config of listed) {
      for (const issuer of config?.boundIssuer ?? []) {
        let configs = byIssuer.get(issuer);
        if (!configs) byIssuer.set(issuer, (configs = []));
        configs.push(config);
      }
    }
    this.#index = { at: now, byIssuer };
    return byIssuer;
  }
}
