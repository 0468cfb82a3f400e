import type { ListInput } from '../types.js';

/**
 * How a rule binds one claim: globs (a list, as `boundClaims` values), or a typed comparison.
 * `equals` and `oneOf` compare exact strings (no wildcard); `in` compares integer ids numerically
 * (a claim given as a number or a canonical decimal string).
 */
export type ClaimMatchInput =
  ListInput | { equals: string } | { oneOf: readonly string[] } | { in: readonly number[] };

/**
 * One rule of an identity: an AND of bindings with an effect. A login passes when at least one allow
 * rule matches and no deny rule does. Unset bindings match anything (except the audience of an allow
 * rule: see {@link IdentityConfigInput.boundAudiences}).
 */
export interface RuleInput {
  effect: 'allow' | 'deny';
  /** Shown in events, `explain` and the `test` CLI. Default `rules[i]` (`candidateRules[i]`). */
  name?: string;
  /** Exact `iss` values (each one of the identity's `boundIssuer`). */
  issuer?: ListInput;
  /** Glob(s) the `sub` must match. */
  subject?: ListInput;
  /** Glob(s); any token audience matching any of them matches. */
  audiences?: ListInput;
  /** `{claimPath: globs | {equals} | {oneOf} | {in}}`; every key must match. */
  claims?: Record<string, ClaimMatchInput>;
}

/** A claim binding of a normalised rule. */
export type ClaimMatch =
  | readonly string[]
  | { readonly equals: string }
  | { readonly oneOf: readonly string[] }
  | { readonly in: readonly number[] };

/** A validated, normalised rule: lists are arrays; unset bindings are empty. */
export interface Rule {
  readonly effect: 'allow' | 'deny';
  readonly name?: string;
  readonly issuer: readonly string[];
  readonly subject: readonly string[];
  readonly audiences: readonly string[];
  readonly claims: Readonly<Record<string, ClaimMatch>>;
}
