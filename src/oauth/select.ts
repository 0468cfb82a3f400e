import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { compileIdentityPolicy } from '../policy/match.js';
import { acceptsIssuer, exactIssuers, patternSources } from '../trust/sources.js';
import type { IdentityConfig, IdentityStore, Logger } from '../types.js';

/** An engine's resolution of an identity naming a trust entry into its effective config. */
export type ResolveTrust = (config: IdentityConfig) => IdentityConfig;

interface SelectionIndex {
  at: number;
  /** By exact issuer (`boundIssuer`, or the key sources' `issuer`s). */
  byIssuer: Map<string, IdentityConfig[]>;
  /** Configs with an issuer-pattern key source: tried with {@link acceptsIssuer} per token. */
  byPattern: IdentityConfig[];
}

/** How long a listing of the identity store serves selections before it is read again, in ms. */
export const SELECTION_LISTING_MS = 5_000;

/**
 * Picks the identity of a token exchange that names none (no `client_id`), the way Azure picks a
 * federated credential: among the identities that vouch for the token's `iss` (`boundIssuer`, a key
 * source's issuer or issuer pattern, or those of the trust entry they name), those
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
  readonly #resolve: ResolveTrust | undefined;
  #index: SelectionIndex | undefined;
  #reading: Promise<SelectionIndex> | undefined;

  constructor(store: IdentityStore, clock: () => number, logger?: Logger, resolve?: ResolveTrust) {
    this.#store = store;
    this.#resolve = resolve;
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
      const index = await this.#listing();
      const candidates = [
        ...(index.byIssuer.get(issuer) ?? []),
        ...index.byPattern.filter((config) => acceptsIssuer(config, issuer)),
      ];
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

  async #listing(): Promise<SelectionIndex> {
    const now = this.#clock();
    const index = this.#index;
    if (index && now - index.at < SELECTION_LISTING_MS && now >= index.at) return index;
    this.#reading ??= this.#read(now).finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(now: number): Promise<SelectionIndex> {
    const listed = (await this.#store.list?.()) ?? [];
    const byIssuer = new Map<string, IdentityConfig[]>();
    const byPattern: IdentityConfig[] = [];
    for (const listedConfig of listed) {
      const config = this.#effective(listedConfig);
      if (!config) continue;
      if (patternSources(config).length > 0) byPattern.push(config);
      for (const issuer of exactIssuers(config)) {
        let configs = byIssuer.get(issuer);
        if (!configs) byIssuer.set(issuer, (configs = []));
        configs.push(config);
      }
    }
    this.#index = { at: now, byIssuer, byPattern };
    return this.#index;
  }

  /** The config as login sees it: a trust entry resolved in; none when it cannot be (never selected). */
  #effective(config: IdentityConfig | undefined): IdentityConfig | undefined {
    if (!config) return undefined;
    if (config.trust === undefined) return config;
    try {
      return this.#resolve?.(config);
    } catch {
      return undefined;
    }
  }
}
