import { randomBytes } from 'node:crypto';
import type { AccessTokenRecord } from '../types.js';

/** A fresh token id shaped like the engine's: 128 random bits, base64url (22 characters). */
export function newId(): string {
  return randomBytes(16).toString('base64url');
}

/** A fresh identity id no other case uses (`identity-<newId()>`, a well-formed identity id). */
export function newIdentityId(): string {
  return `identity-${newId()}`;
}

/**
 * An access-token record as login builds one, with a fresh token and identity id, based on the real
 * clock (a shared server such as Redis expires keys by its own clock): live for a minute, renewable
 * for ten, unlimited uses, generation 0. Override any field.
 */
export function makeRecord(overrides: Partial<AccessTokenRecord> = {}): AccessTokenRecord {
  const now = Date.now();
  return {
    tokenId: newId(),
    identityId: newIdentityId(),
    createdAt: now,
    expiresAt: now + 60_000,
    maxExpiresAt: now + 600_000,
    ttlSeconds: 60,
    usesLimit: 0,
    usesCount: 0,
    revoked: false,
    trustedIps: ['0.0.0.0/0', '::/0'],
    metadata: { role: 'deployer' },
    issuer: 'https://token.actions.githubusercontent.com',
    subject: 'repo:acme/api:ref:refs/heads/main',
    generation: 0,
    ...overrides,
  };
}
