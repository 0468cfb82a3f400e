import { parseIdentityConfig } from '../trust/config.js';
import { ConfigError } from '../errors.js';
import { TrustRegistry, type TrustEntryInput } from '../trust/entries.js';
import type { IdentityConfig } from '../types.js';
import { FAIL, PASS, WARN, show } from './text.js';

/** The verdict on one entry of an identities file. */
export interface ValidationResult {
  /** Position in the file's list. */
  index: number;
  /** The entry's `identityId`, when it has a string one. */
  identityId: string | undefined;
  ok: boolean;
  /** The field at fault (e.g. `boundClaims["ref"][1]`), when not ok. */
  field?: string;
  /** The problem, naming the identity and the field. */
  error?: string;
  /** Legal but risky choices. */
  warnings: string[];
}

/**
 * Validate every entry of an identities list as login would (`parseIdentityConfig`), plus duplicate
 * ids. Never stops at the first error: each invalid entry gets its own result.
 */
export function validateIdentities(
  entries: readonly unknown[],
  trust?: readonly unknown[],
): ValidationResult[] {
  const seen = new Map<string, number>();
  let registry: TrustRegistry | undefined;
  let trustError: ConfigError | undefined;
  try {
    registry = trust === undefined ? undefined : new TrustRegistry(trust as readonly TrustEntryInput[]);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    trustError = error;
  }
  return entries.map((entry, index) => {
    const rawId = (entry as { identityId?: unknown } | null)?.identityId;
    const identityId = typeof rawId === 'string' ? rawId : undefined;
    let config: IdentityConfig;
    try {
      config = parseIdentityConfig(entry);
      // A trust entry the file declares: the identity must resolve against it as the engine would.
      if (config.trust !== undefined && trustError !== undefined) throw trustError;
      if (config.trust !== undefined && registry !== undefined) registry.resolve(config);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return { index, identityId, ok: false, field: error.field, error: error.message, warnings: [] };
    }
    const first = seen.get(config.identityId);
    if (first !== undefined) {
      return {
        index,
        identityId,
        ok: false,
        field: 'identityId',
        error: `identity ${JSON.stringify(config.identityId)}: identityId: is also the id of entry ${first}; ids must be unique`,
        warnings: [],
      };
    }
    seen.set(config.identityId, index);
    const warnings = warningsFor(config);
    if (config.trust !== undefined && registry === undefined) {
      warnings.push(
        `names trust entry ${JSON.stringify(config.trust)}, which this file does not declare ("trust": [...]): ` +
          "it is checked at login against the engine's trust entries",
      );
    }
    return { index, identityId, ok: true, warnings };
  });
}

function warningsFor(config: IdentityConfig): string[] {
  const warnings: string[] = [];
  if (config.allowAnyAudience) {
    warnings.push(
      'allowAnyAudience: true and boundAudiences not bound, so tokens this issuer mints for any other service log in too',
    );
  } else if (config.boundAudiences.length === 0) {
    warnings.push(
      'boundAudiences: not bound, so every token that carries an aud is refused (audience_not_allowed); ' +
        'bind the audience your tokens carry, or set allowAnyAudience: true if the IdP sends no usable one',
    );
  }
  const patterns = [
    ...config.boundSubject.map((p) => ['boundSubject', p] as const),
    ...Object.entries(config.boundClaims).flatMap(([k, ps]) =>
      ps.map((p) => [`boundClaims[${JSON.stringify(k)}]`, p] as const),
    ),
  ];
  for (const [field, pattern] of patterns) {
    if (pattern.includes('**')) {
      warnings.push(`${field}: ${show(pattern)} has "**", which crosses "/" (any branch, any subgroup)`);
    }
  }
  return warnings;
}

/** The results for people: one line per identity, errors naming identity and field. */
export function formatValidation(results: readonly ValidationResult[], source: string): string {
  const lines: string[] = [
    `${source}: ${results.length} ${results.length === 1 ? 'identity' : 'identities'}`,
  ];
  for (const r of results) {
    const name = `[${r.index}] ${r.identityId === undefined ? '(no identityId)' : show(r.identityId)}`;
    if (r.ok) lines.push(`  ${PASS} ${name}`);
    else lines.push(`  ${FAIL} ${name}: ${r.error ?? 'invalid'}`);
    for (const warning of r.warnings) lines.push(`      ${WARN} ${warning}`);
  }
  const bad = results.filter((r) => !r.ok).length;
  lines.push(bad === 0 ? `${PASS} all valid` : `${FAIL} ${bad} invalid`);
  return `${lines.join('\n')}\n`;
}
