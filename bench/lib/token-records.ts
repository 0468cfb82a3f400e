import { createHash } from 'node:crypto';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { compileIdentityPolicy } from '../../src/policy/match.js';
import type { AccessTokenRecord } from '../../src/types.js';

/**
 * How the token's metadata is built: `shared` (no claim mapping: every token of the identity gets
 * the identity's one metadata object, as the engine does), or `mapped` (two claims mapped, one of
 * them the per-run `run_id`: each token gets its own small frozen object).
 */
export type MetadataVariant = 'shared' | 'mapped';

const ISSUER = 'https://token.actions.githubusercontent.com';

/** GitHub Actions claims (TOKEN-SHAPES B1) as JSON text; `run_id` varies per token. */
function payloadText(runId: number): string {
  return `{"jti":"7c9a3d1e-2b4f-4c8a-9e6d-1f2a3b4c5d6e","sub":"repo:acme-corp/payments-api:ref:refs/heads/main","aud":"https://github.com/acme-corp","ref":"refs/heads/main","ref_type":"branch","repository":"acme-corp/payments-api","repository_id":"612345678","repository_owner":"acme-corp","run_id":"${runId}","run_attempt":"1","event_name":"push","job_workflow_ref":"acme-corp/payments-api/.github/workflows/deploy.yml@refs/heads/main","iss":"${ISSUER}","nbf":1764100000,"iat":1764100060,"exp":1764121660}`;
}

/** Options of {@link recordFactory}. */
export interface RecordFactoryOptions {
  /** Default `2f1e6c1a-8b7d-4c3e-9f10-5a6b7c8d9e0f`. */
  identityId?: string;
}

/**
 * Builds access-token records exactly as `createOidcAuth`'s login does: the identity's (frozen,
 * shared) trusted-IP array, the policy's metadata, and `iss`/`sub` read from a freshly parsed
 * payload, so each record carries its own copies of those strings like a real login.
 */
export function recordFactory(
  variant: MetadataVariant,
  options: RecordFactoryOptions = {},
): (i: number, now: number) => AccessTokenRecord {
  const identityId = options.identityId ?? '2f1e6c1a-8b7d-4c3e-9f10-5a6b7c8d9e0f';
  const config = parseIdentityConfig({
    identityId,
    oidcDiscoveryUrl: ISSUER,
    boundIssuer: ISSUER,
    boundAudiences: 'https://github.com/acme-corp',
    boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/*',
    accessTokenTTL: 600,
    accessTokenMaxTTL: 3600,
    metadata: { workspaces: ['payments-api'] },
    claimMetadataMapping: variant === 'mapped' ? { repository: 'repository', runId: 'run_id' } : {},
  });
  const policy = compileIdentityPolicy(config);
  return (i, now) => {
    const payload = JSON.parse(payloadText(9_000_000_000 + i)) as Record<string, unknown>;
    return {
      tokenId: benchTokenId(i),
      identityId: config.identityId,
      createdAt: now,
      expiresAt: now + Math.min(config.accessTokenTTL, config.accessTokenMaxTTL) * 1000,
      maxExpiresAt: now + config.accessTokenMaxTTL * 1000,
      ttlSeconds: config.accessTokenTTL,
      usesLimit: config.accessTokenNumUsesLimit,
      usesCount: 0,
      revoked: false,
      trustedIps: config.accessTokenTrustedIps,
      metadata: policy.metadata(payload),
      issuer: payload.iss as string,
      subject: payload.sub as string,
      generation: 0,
    };
  };
}

/**
 * A token id shaped like `newTokenId()`'s (16 bytes, base64url: 22 characters), derived from `i`
 * so a benchmark can find its tokens again without holding a list of them.
 */
export function benchTokenId(i: number): string {
  return createHash('md5').update(`bench-token-${i}`).digest('base64url');
}
