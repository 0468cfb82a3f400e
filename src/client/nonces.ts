/** Most servers (origins) whose nonce one {@link DpopNonces} remembers; the oldest is forgotten first. */
export const MAX_NONCE_ORIGINS = 64;
/** Longest `DPoP-Nonce` value kept, in characters. */
const MAX_NONCE_LENGTH = 1024;
const NONCE = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 9449 §8.1 NQCHAR

/**
 * The latest `DPoP-Nonce` each server gave (RFC 9449 §8.2: a client keeps the most recent one and
 * puts it into its next proofs for that server). Keyed by origin, bounded.
 */
export class DpopNonces {
  readonly #byOrigin = new Map<string, string>();

  /** The nonce to put into a proof for `url`, if its server gave one. */
  get(url: string | URL): string | undefined {
    return this.#byOrigin.get(new URL(url).origin);
  }

  /**
   * Remember the `DPoP-Nonce` header of an answer from `url`, if it has a well-formed one.
   * @returns the nonce remembered, or undefined when the answer carried none.
   */
  update(url: string | URL, headers: Headers): string | undefined {
    const nonce = headers.get('dpop-nonce');
    if (nonce === null || nonce.length > MAX_NONCE_LENGTH || !NONCE.test(nonce)) return undefined;
    const origin = new URL(url).origin;
    this.#byOrigin.delete(origin);
    this.#byOrigin.set(origin, nonce);
    if (this.#byOrigin.size > MAX_NONCE_ORIGINS) {
      this.#byOrigin.delete(this.#byOrigin.keys().next().value!);
    }
    return nonce;
  }
}
