/**
 * Bounds of an identity's rules, checked at config time, so a stored config can never make one
 * login's evaluation large (every glob keeps the bounds of `GLOB_LIMITS` besides).
 */
export const RULE_LIMITS = Object.freeze({
  /** Rules in `rules`, and again in `candidateRules`. */
  maxRules: 64,
  /** Claims bound by one rule. */
  maxClaimsPerRule: 64,
  /** Globs in one binding (a rule's `subject`, `audiences`, or one claim). */
  maxPatternsPerBinding: 64,
  /** Values of one `oneOf`. */
  maxOneOf: 1024,
  /** Values of one `in`. */
  maxIn: 1024,
  /** Bindings (issuer, subject, audiences, each claim) of all rules and candidate rules together. */
  maxBindingsPerIdentity: 512,
  /** Globs of all rules and candidate rules together (each is one matcher to run at most). */
  maxPatternsPerIdentity: 2048,
  /** `equals`, `oneOf` and `in` values of all rules and candidate rules together. */
  maxComparisonValuesPerIdentity: 8192,
  /** Length of a rule `name`. */
  maxNameLength: 128,
});
