import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { MemoryTokenStore } from '../../src/index.js';
import { makeRecord } from '../../src/testing/index.js';
import type { TokenStore } from '../../src/types.js';
import { sharedRedisOptions, uniqueName } from '../helpers/servers.js';

const prefix = `${uniqueName('oma_oauth')}:`;
let client: Redis;

beforeAll(async () => {
  client = new Redis({
    ...sharedRedisOptions(),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  client.on('error', () => {});
  await client.connect(); // a Redis that cannot be reached fails this file, never skips it
});

afterAll(async () => {
  const keys = await client.keys(`${prefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});

const stores: Array<[string, () => TokenStore]> = [
  ['MemoryTokenStore', () => new MemoryTokenStore({ sweepIntervalMs: 0 })],
  ['RedisTokenStore', () => new RedisTokenStore({ client, prefix })],
];

describe.each(stores)('%s keeps a token exchange grant (scope, audience) on the record', (_name, make) => {
  it('through create, get, consume and extend; a record without them reads back without them', async () => {
    const store = make();
    const now = Date.now();
    const narrowed = makeRecord({
      scope: 'secrets:read deploy',
      audience: ['https://api.example', 'urn:x'],
    });
    const plain = makeRecord();
    await store.create(narrowed);
    await store.create(plain);
    for (const read of [
      await store.get(narrowed.tokenId, now),
      ((await store.consume(narrowed.tokenId, now)) as { record: unknown }).record,
      ((await store.extend(narrowed.tokenId, now)) as { record: unknown }).record,
    ]) {
      expect(read).toMatchObject({
        scope: 'secrets:read deploy',
        audience: ['https://api.example', 'urn:x'],
      });
    }
    const back = await store.get(plain.tokenId, now);
    expect(back).toBeDefined();
    expect(back?.scope).toBeUndefined();
    expect(back?.audience).toBeUndefined();
    await store.close?.();
  });
});
