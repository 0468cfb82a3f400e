import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import { githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';
import { identityStoreConformance, makeRecord, tokenStoreConformance } from '../../src/testing/index.js';

const test = { describe, it, before: beforeAll, after: afterAll };

describe('#18 memory stores through the exported conformance suites', () => {
  // One process's memory: the two "instances" the suites ask for are one store.
  const tokens = new MemoryTokenStore({ sweepIntervalMs: 0 });
  tokenStoreConformance({ name: 'MemoryTokenStore', test, create: () => tokens });

  const identities = new MemoryIdentityStore();
  identityStoreConformance({ name: 'MemoryIdentityStore', test, create: () => identities });
});

describe('MemoryIdentityStore', () => {
  const key = makeKey('RS256');
  const config = (identityId: string, overrides = {}) =>
    githubIdentity(key, {
      identityId,
      boundClaims: { repository_id: '612345678', 'job_workflow_ref/x': ['a*', 'b?'] },
      metadata: { role: 'deployer', nested: { list: [1, 'two', null, true] } },
      ...overrides,
    });

  it('gives back an evicted config equal to the one stored, validated and frozen again', async () => {
    const store = new MemoryIdentityStore([], { cacheSize: 2 });
    const stored = await Promise.all(['a', 'b', 'c'].map((id) => store.put(config(id))));
    // Only b and c are still parsed; a comes back from its JSON.
    const again = await store.get('a');
    expect(again).toEqual(stored[0]);
    expect(again).not.toBe(stored[0]);
    expect(Object.isFrozen(again)).toBe(true);
    expect(Object.isFrozen(again!.boundClaims['job_workflow_ref/x'])).toBe(true);
    expect(await store.get('a')).toBe(again); // cached once parsed
    expect(await store.list()).toEqual(stored);
    expect(store.size).toBe(3);
  });

  it('replaces on put and forgets on delete, parsed copy included', async () => {
    const store = new MemoryIdentityStore([config('a')], { cacheSize: 1 });
    await store.put(config('a', { accessTokenTTL: 60 }));
    expect((await store.get('a'))?.accessTokenTTL).toBe(60);
    expect(await store.delete('a')).toBe(true);
    expect(await store.get('a')).toBeUndefined();
    expect(await store.delete('a')).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  it('refuses duplicates, invalid configs and a bad cache size', async () => {
    expect(() => new MemoryIdentityStore([config('a'), config('a')])).toThrow(/duplicate identity "a"/);
    const store = new MemoryIdentityStore();
    await expect(store.put(config('b', { accessTokenTTL: 10_000, accessTokenMaxTTL: 60 }))).rejects.toThrow(
      ConfigError,
    );
    expect(await store.get('b')).toBeUndefined();
    expect(() => new MemoryIdentityStore([], { cacheSize: 0 })).toThrow(ConfigError);
  });
});

describe('MemoryTokenStore layout (slots in typed arrays)', () => {
  it('keeps every record apart past its initial capacity, across growth', async () => {
    const store = new MemoryTokenStore({ sweepIntervalMs: 0 });
    const records = Array.from({ length: 3000 }, (_, i) =>
      makeRecord({ usesLimit: (i % 7) + 1, ttlSeconds: 60 + i, metadata: Object.freeze({ i }) }),
    );
    for (const record of records) await store.create(record);
    expect(store.size).toBe(3000);
    for (const record of records) {
      const result = await store.consume(record.tokenId, record.createdAt + 1);
      expect(result).toEqual({ ok: true, record: { ...record, usesCount: 1 } });
    }
  });

  it('a freed slot carries nothing of its previous token into the next', async () => {
    let now = Date.now();
    const store = new MemoryTokenStore({ sweepIntervalMs: 0, clock: () => now });
    const old = makeRecord({ createdAt: now, expiresAt: now + 1000, usesLimit: 1, usesCount: 1 });
    await store.create(old);
    await store.revoke(old.tokenId);
    now += 2000;
    expect(store.sweep()).toBe(1);
    const next = makeRecord({
      createdAt: now,
      expiresAt: now + 60_000,
      issuer: undefined,
      subject: undefined,
    });
    delete next.issuer;
    delete next.subject;
    await store.create(next);
    expect(await store.consume(old.tokenId, now)).toEqual({ ok: false, reason: 'not_found' });
    const used = await store.consume(next.tokenId, now);
    expect(used.ok && used.record).toMatchObject({ revoked: false, usesCount: 1, usesLimit: 0 });
    expect(used.ok && used.record.issuer).toBeUndefined();
    expect(await store.revokeIdentity(old.identityId)).toBe(0);
    expect(await store.revokeIdentity(next.identityId)).toBe(1);
  });

  it('create on a known id replaces its record in place', async () => {
    const store = new MemoryTokenStore({ sweepIntervalMs: 0 });
    const record = makeRecord({ usesLimit: 1 });
    await store.create(record);
    await store.consume(record.tokenId, record.createdAt + 1);
    await store.create({ ...record, usesLimit: 5, usesCount: 0 });
    expect(store.size).toBe(1);
    const result = await store.consume(record.tokenId, record.createdAt + 1);
    expect(result.ok && result.record.usesCount).toBe(1);
  });

  it('shares one frozen object among tokens with equal flat metadata, keeps others as given', async () => {
    const store = new MemoryTokenStore({ sweepIntervalMs: 0 });
    const a = makeRecord({ metadata: Object.freeze({ repo: 'acme/api' }) });
    const b = makeRecord({ metadata: Object.freeze({ repo: 'acme/api' }) });
    const nested = makeRecord({ metadata: Object.freeze({ list: ['x'] }) });
    for (const r of [a, b, nested]) await store.create(r);
    const got = await Promise.all([a, b, nested].map((r) => store.get(r.tokenId, r.createdAt + 1)));
    expect(got[1]!.metadata).toBe(got[0]!.metadata);
    expect(got[2]!.metadata).toBe(nested.metadata);
  });
});
