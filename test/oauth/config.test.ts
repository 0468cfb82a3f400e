import { describe, expect, it } from 'vitest';
import { ConfigError, parseIdentityConfig } from '../../src/index.js';
import { checkGrantRequest, narrowGrant } from '../../src/tokens/grant.js';
import { githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';

const key = makeKey('RS256');

describe('identity fields scopes and accessTokenAudiences', () => {
  it('are absent from a config that does not set them (configs keep their shape)', () => {
    const config = parseIdentityConfig(githubIdentity(key));
    expect(Object.hasOwn(config, 'scopes')).toBe(false);
    expect(Object.hasOwn(config, 'accessTokenAudiences')).toBe(false);
  });

  it('take arrays or comma/space-separated strings, deduplicated and frozen', () => {
    const config = parseIdentityConfig(
      githubIdentity(key, {
        scopes: 'a:read, b:write a:read',
        accessTokenAudiences: ['https://x', 'https://x'],
      }),
    );
    expect(config.scopes).toEqual(['a:read', 'b:write']);
    expect(config.accessTokenAudiences).toEqual(['https://x']);
    expect(Object.isFrozen(config.scopes)).toBe(true);
  });

  it('RFC 6749 §3.3: a scope outside the scope-token characters (space, quote, backslash, non-ASCII) is a ConfigError naming the item', () => {
    for (const bad of [['a"b'], ['a\\b'], ['é'], [''], [7]]) {
      expect(() => parseIdentityConfig(githubIdentity(key, { scopes: bad as string[] }))).toThrow(
        ConfigError,
      );
    }
    expect(() => parseIdentityConfig(githubIdentity(key, { scopes: ['ok', 'a"b'] }))).toThrow(/scopes\[1\]/);
    expect(() => parseIdentityConfig(githubIdentity(key, { accessTokenAudiences: ['has space'] }))).toThrow(
      /accessTokenAudiences\[0\]/,
    );
    expect(() =>
      parseIdentityConfig(githubIdentity(key, { scopes: Array.from({ length: 65 }, (_, i) => `s${i}`) })),
    ).toThrow(/more than 64/);
  });
});

describe('narrowGrant only narrows (RFC 8693 section 2.1 downscoping)', () => {
  const config = parseIdentityConfig(
    githubIdentity(key, {
      accessTokenTTL: 600,
      accessTokenMaxTTL: 3600,
      scopes: ['read', 'write'],
      accessTokenAudiences: ['https://api'],
    }),
  );
  const opaque = { format: 'opaque', issuer: undefined } as const;

  it('without a request: the identity TTLs and every declared scope, no audience asked', () => {
    expect(narrowGrant(config, undefined, opaque)).toMatchObject({
      format: 'opaque',
      ttlSeconds: 600,
      maxTtlSeconds: 3600,
      scopes: ['read', 'write'],
      askedAudience: undefined,
    });
  });

  it('a shorter TTL shortens both lifetimes; a longer one changes nothing', () => {
    expect(narrowGrant(config, { ttlSeconds: 60 }, opaque)).toMatchObject({
      ttlSeconds: 60,
      maxTtlSeconds: 60,
    });
    expect(narrowGrant(config, { ttlSeconds: 100_000 }, opaque)).toMatchObject({
      ttlSeconds: 600,
      maxTtlSeconds: 3600,
    });
  });

  it('scopes and audiences outside the declared lists are refused with scope_not_allowed / target_not_allowed, never dropped', () => {
    expect(narrowGrant(config, { scopes: ['read'] }, opaque).scopes).toEqual(['read']);
    expect(() => narrowGrant(config, { scopes: ['read', 'admin'] }, opaque)).toThrow(
      expect.objectContaining({ code: 'scope_not_allowed', verified: true }),
    );
    expect(narrowGrant(config, { audience: ['https://api'] }, opaque).askedAudience).toEqual(['https://api']);
    expect(() => narrowGrant(config, { audience: ['https://api', 'https://evil'] }, opaque)).toThrow(
      expect.objectContaining({ code: 'target_not_allowed' }),
    );
    const noScopes = parseIdentityConfig(githubIdentity(key));
    expect(narrowGrant(noScopes, undefined, opaque).scopes).toBeUndefined();
    expect(() => narrowGrant(noScopes, { scopes: ['read'] }, opaque)).toThrow(
      expect.objectContaining({ code: 'scope_not_allowed' }),
    );
  });

  it('a TTL that is not a positive whole number is refused before any work (400 invalid_request)', () => {
    for (const ttlSeconds of [0, -1, 1.5, Number.NaN]) {
      expect(() => checkGrantRequest({ ttlSeconds })).toThrow(
        expect.objectContaining({ code: 'invalid_request', status: 400 }),
      );
    }
  });
});
