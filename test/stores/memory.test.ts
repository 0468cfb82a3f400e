import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import { githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';
import { describeTokenStoreContract } from './contract.js';

describeTokenStoreContract('MemoryTokenStore', () => new MemoryTokenStore({ sweepIntervalMs: 0 }));

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
