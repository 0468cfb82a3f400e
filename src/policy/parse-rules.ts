import { checkAudiencePattern, parseList } from '../trust/config.js';
import { ConfigError } from '../errors.js';
import { validateClaimPath, validateGlob } from './match.js';
import { isTypedInput, parseComparison } from './compare.js';
import { RULE_LIMITS } from './limits.js';
import type { ClaimMatch, Rule } from './types.js';

const RULE_FIELDS: ReadonlySet<string> = new Set([
  'effect',
  'name',
  'issuer',
  'subject',
  'audiences',
  'claims',
]);

/** What the identity's flat fields give the rule checks. */
export interface FlatContext {
  /** The identity's `boundIssuer` (a rule's issuers must be among them when it is non-empty). */
  boundIssuer: readonly string[];
  /** Whether `boundSubject`, `boundAudiences` or `boundClaims` binds anything (it then applies to every rule). */
  flatBinds: boolean;
}

/** Running totals over `rules` and `candidateRules` (RULE_LIMITS per identity). */
export interface RuleTotals {
  bindings: number;
  patterns: number;
  /** `oneOf` and `in` values. */
  values: number;
}

/**
 * Validate and normalise `rules` or `candidateRules` (docs/POLICIES.md). Errors name the identity,
 * the rule index and the field: `identity "x": rules[2].claims.repository: …`.
 *
 * @returns `undefined` for an absent list (`undefined`, `null`).
 * @throws {ConfigError}
 */
export function parseRules(
  value: unknown,
  field: 'rules' | 'candidateRules',
  id: string,
  flat: FlatContext,
  totals: RuleTotals,
): readonly Rule[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new ConfigError(field, 'must be an array of rules', id);
  if (value.length > RULE_LIMITS.maxRules) {
    throw new ConfigError(field, `has more than ${RULE_LIMITS.maxRules} rules`, id);
  }
  if (value.length === 0) {
    if (field === 'candidateRules') {
      throw new ConfigError(field, 'is empty; remove it to turn audit mode off', id);
    }
    return Object.freeze([]);
  }
  const names = new Set<string>();
  const rules = value.map((input: unknown, i) => {
    const rule = parseRule(input, `${field}[${i}]`, id, flat, totals);
    if (rule.name !== undefined) {
      if (names.has(rule.name)) {
        throw new ConfigError(
          `${field}[${i}].name`,
          'is the name of an earlier rule; rule names must be unique',
          id,
        );
      }
      names.add(rule.name);
    }
    return rule;
  });
  if (!rules.some((rule) => rule.effect === 'allow')) {
    throw new ConfigError(field, 'has no allow rule, so every login would be refused', id);
  }
  return Object.freeze(rules);
}

function parseRule(input: unknown, field: string, id: string, flat: FlatContext, totals: RuleTotals): Rule {
  if (!isPlainObject(input)) throw new ConfigError(field, 'must be an object ({ effect, … })', id);
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!RULE_FIELDS.has(key)) {
      throw new ConfigError(
        `${field}.${/^[\w-]{1,64}$/.test(key) ? key : '?'}`,
        'is not a rule field (effect, name, issuer, subject, audiences, claims)',
        id,
      );
    }
  }
  const get = (key: string): unknown => (Object.hasOwn(raw, key) && raw[key] !== null ? raw[key] : undefined);
  const effect = get('effect');
  if (effect !== 'allow' && effect !== 'deny')
    throw new ConfigError(`${field}.effect`, 'must be "allow" or "deny"', id);
  const name = parseName(get('name'), `${field}.name`, id);

  const issuer = parseList(get('issuer'), `${field}.issuer`, id, RULE_LIMITS.maxPatternsPerBinding);
  issuer.forEach((iss, i) => {
    const itemField = `${field}.issuer[${i}]`;
    if (/[*?]/.test(iss)) {
      throw new ConfigError(
        itemField,
        'is an exact string compared verbatim; globs are not supported here',
        id,
      );
    }
    if (flat.boundIssuer.length > 0 && !flat.boundIssuer.includes(iss)) {
      throw new ConfigError(
        itemField,
        "is not one of the identity's boundIssuer, so the rule could never match (tokens of other issuers are refused before the rules)",
        id,
      );
    }
  });
  const subject = patterns(get('subject'), `${field}.subject`, id, totals);
  const audiences = patterns(get('audiences'), `${field}.audiences`, id, totals);
  audiences.forEach((pattern, i) => checkAudiencePattern(pattern, `${field}.audiences[${i}]`, id));
  const claims = parseClaims(get('claims'), `${field}.claims`, id, totals);

  const claimCount = Object.keys(claims).length;
  const binds = subject.length > 0 || audiences.length > 0 || claimCount > 0;
  if (!binds && issuer.length === 0) {
    throw new ConfigError(
      field,
      'binds nothing, so it would match every token; bind an issuer, subject, audience or claim',
      id,
    );
  }
  if (effect === 'allow' && !binds && !flat.flatBinds) {
    throw new ConfigError(
      field,
      'is an allow rule binding no subject, audience or claim, so every token of the issuer would log in; bind one (or set boundSubject, boundAudiences or boundClaims, which apply to every rule)',
      id,
    );
  }
  totals.bindings +=
    (issuer.length > 0 ? 1 : 0) + (subject.length > 0 ? 1 : 0) + (audiences.length > 0 ? 1 : 0) + claimCount;
  if (totals.bindings > RULE_LIMITS.maxBindingsPerIdentity) {
    throw new ConfigError(
      field,
      `takes the identity past ${RULE_LIMITS.maxBindingsPerIdentity} bindings in all its rules and candidate rules`,
      id,
    );
  }
  const rule: Rule = {
    effect,
    ...(name === undefined ? {} : { name }),
    issuer: Object.freeze(issuer),
    subject: Object.freeze(subject),
    audiences: Object.freeze(audiences),
    claims,
  };
  return Object.freeze(rule);
}

function parseName(value: unknown, field: string, id: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new ConfigError(field, 'must be a string', id);
  if (value.length > RULE_LIMITS.maxNameLength) {
    throw new ConfigError(field, `is longer than ${RULE_LIMITS.maxNameLength} characters`, id);
  }
  if (!/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(value)) {
    throw new ConfigError(field, 'must be printable ASCII without leading or trailing spaces', id);
  }
  return value;
}

function patterns(value: unknown, field: string, id: string, totals: RuleTotals): string[] {
  const list = parseList(value, field, id, RULE_LIMITS.maxPatternsPerBinding);
  list.forEach((pattern, i) => validateGlob(pattern, `${field}[${i}]`, id));
  countPatterns(list.length, field, id, totals);
  return list;
}

function countPatterns(n: number, field: string, id: string, totals: RuleTotals): void {
  totals.patterns += n;
  if (totals.patterns > RULE_LIMITS.maxPatternsPerIdentity) {
    throw new ConfigError(
      field,
      `takes the identity past ${RULE_LIMITS.maxPatternsPerIdentity} globs in all its rules and candidate rules`,
      id,
    );
  }
}

function parseClaims(
  value: unknown,
  field: string,
  id: string,
  totals: RuleTotals,
): Readonly<Record<string, ClaimMatch>> {
  if (value === undefined) return Object.freeze({});
  if (!isPlainObject(value))
    throw new ConfigError(field, 'must be an object of claim path to globs or a comparison', id);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > RULE_LIMITS.maxClaimsPerRule) {
    throw new ConfigError(field, `has more than ${RULE_LIMITS.maxClaimsPerRule} claims`, id);
  }
  const out: Record<string, ClaimMatch> = {};
  for (const [path, match] of entries) {
    const claimField = `${field}${claimKey(path)}`;
    validateClaimPath(path, claimField, id);
    let parsed: ClaimMatch;
    if (isTypedInput(match)) {
      parsed = parseComparison(match, claimField, id);
      const n = 'oneOf' in parsed ? parsed.oneOf.length : 'in' in parsed ? parsed.in.length : 1;
      totals.values += n;
      if (totals.values > RULE_LIMITS.maxComparisonValuesPerIdentity) {
        throw new ConfigError(
          claimField,
          `takes the identity past ${RULE_LIMITS.maxComparisonValuesPerIdentity} equals/oneOf/in values in all its rules and candidate rules`,
          id,
        );
      }
    } else {
      const list = patterns(match, claimField, id, totals);
      if (list.length === 0) {
        throw new ConfigError(
          claimField,
          'has no patterns; a bound claim needs at least one allowed value',
          id,
        );
      }
      parsed = Object.freeze(list);
    }
    Object.defineProperty(out, path, { value: parsed, enumerable: true });
  }
  return Object.freeze(out);
}

/** `.repository` for a plain key, `["kubernetes.io/namespace"]` otherwise (truncated). */
function claimKey(path: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(path)) return `.${path}`;
  return `[${JSON.stringify(path.length > 64 ? `${path.slice(0, 64)}…` : path)}]`;
}

function isPlainObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
