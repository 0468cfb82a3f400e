import assert from 'node:assert/strict';
import { CONFIG_LIMITS, parseIdentityConfig } from '../trust/config.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore } from '../types.js';
import { assertFailsClosed, eventually } from './assertions.js';
import { newIdentityId } from './records.js';
import type { TestFunctions } from './test-functions.js';
import { storeFixture } from './test-functions.js';
import type { OutageHook } from './outage-hook.js';

/** Options of {@link identityStoreConformance}. */
export interface IdentityStoreSuiteOptions {
  /** Names the suite: `<name>: IdentityStore conformance`. */
  name: string;
  /** The test framework's `describe`, `it` and (optional) `before`/`after`. */
  test: TestFunctions;
  /**
   * A store on the backend under test, with `put`, `delete` and `list` (the admin API's). Called
   * twice: the instances must share state. Cases use fresh random identity ids.
   */
  create(): IdentityStore | Promise<IdentityStore>;
  /** Makes the backend unreachable, then reachable again: adds the fail-closed cases. */
  outage?: OutageHook;
}

/** A valid config of a GitHub Actions identity, overridable. */
export function identityInput(
  identityId: string,
  overrides: Partial<IdentityConfigInput> = {},
): IdentityConfigInput {
  return {
    identityId,
    oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com',
    boundIssuer: 'https://token.actions.githubusercontent.com',
    boundSubject: 'repo:acme/api:ref:refs/heads/main',
    boundAudiences: 'https://github.com/acme',
    boundClaims: { repository_id: '612345678', 'job_workflow_ref/x': ['a*', 'b?'] },
    accessTokenTTL: 3600,
    accessTokenMaxTTL: 7200,
    metadata: { role: 'deployer', nested: { list: [1, 'two', null, true] } },
    ...overrides,
  };
}

/** `got` is a config that validates and says what `input` says. */
function assertSameConfig(got: unknown, input: IdentityConfigInput | IdentityConfig, what: string): void {
  assert.ok(got !== undefined && got !== null, `${what}: expected a config, got ${String(got)}`);
  let config: IdentityConfig;
  try {
    config = parseIdentityConfig(got as IdentityConfigInput);
  } catch (error) {
    assert.fail(`${what}: the config handed back does not validate: ${(error as Error).message}`);
  }
  assert.deepStrictEqual(config, parseIdentityConfig(input), `${what}: the config handed back differs`);
}

type Writable = Required<Pick<IdentityStore, 'put' | 'delete' | 'list'>> & IdentityStore;

/** The store, checked to have the admin API's methods this suite exercises. */
function writable(store: IdentityStore): Writable {
  for (const method of ['put', 'delete', 'list'] as const) {
    assert.equal(
      typeof store[method],
      'function',
      `the store has no ${method}: this suite needs put, delete and list (the admin API calls them; the engine needs only get)`,
    );
  }
  return store as Writable;
}

/**
 * Declares the cases every {@link IdentityStore} must pass: validated configs in and out (an invalid
 * config refused on `put`, nothing stored), unknown ids, replacing, listing, deleting (idempotent),
 * concurrent writes of one id, two instances sharing configs, the largest values a config may hold,
 * and, with `outage`, failing closed and recovering.
 */
export function identityStoreConformance(options: IdentityStoreSuiteOptions): void {
  const { test } = options;
  const { describe, it } = test;
  describe(`${options.name}: IdentityStore conformance`, () => {
    const instances = storeFixture(test, () => options.create(), 2);
    const stores = async () => {
      const [a, b] = await instances();
      return [writable(a!), writable(b!)] as const;
    };

    describe('validated configs in and out', () => {
      it('put hands back the validated config, and get and list hand back the same', async () => {
        const [store] = await stores();
        const input = identityInput(newIdentityId());
        assertSameConfig(await store.put(input), input, 'put');
        assertSameConfig(await store.get(input.identityId), input, 'get');
        const listed = (await store.list()).filter((c) => c?.identityId === input.identityId);
        assert.equal(listed.length, 1, 'list must hold the config once');
        assertSameConfig(listed[0], input, 'list');
      });

      it('accepts a config already validated (what parseIdentityConfig returns), as the admin API passes it', async () => {
        const [store] = await stores();
        const config = parseIdentityConfig(identityInput(newIdentityId()));
        assertSameConfig(await store.put(config), config, 'put of a parsed config');
        assertSameConfig(await store.get(config.identityId), config, 'get');
      });

      it('refuses an invalid config on put with a ConfigError, and stores nothing (nor replaces what was there)', async () => {
        const [store] = await stores();
        const id = newIdentityId();
        const invalid = identityInput(id, { accessTokenTTL: 10_000, accessTokenMaxTTL: 60 });
        await assert.rejects(
          store.put(invalid),
          { name: 'ConfigError', code: 'invalid_config' },
          'put of TTL > max TTL',
        );
        assert.equal(await store.get(id), undefined, 'nothing stored for a refused config');
        const valid = identityInput(id);
        await store.put(valid);
        await assert.rejects(
          store.put({ ...valid, boundIssuer: [] }),
          { code: 'invalid_config' },
          'put of no issuer',
        );
        assertSameConfig(await store.get(id), valid, 'the config stored before the refused put');
      });

      it('holds configs at the limits: the largest TTLs and uses limit, unicode metadata with astral characters, nested arrays, empty strings', async () => {
        const [store] = await stores();
        const input = identityInput(newIdentityId(), {
          accessTokenTTL: CONFIG_LIMITS.maxTtlSeconds,
          accessTokenMaxTTL: CONFIG_LIMITS.maxTtlSeconds,
          accessTokenNumUsesLimit: CONFIG_LIMITS.maxUsesLimit,
          metadata: {
            '': '',
            astral: '\u{1F512}\u{1F600}𝄞',
            mixed: 'żółć ✓ 漢字 العربية',
            nested: [[[]], [[1, ['a', [true, [null]]]]]],
            long: 'x'.repeat(16 * 1024),
          },
        });
        await store.put(input);
        assertSameConfig(await store.get(input.identityId), input, 'get of a config at the limits');
      });
    });

    describe('rules', () => {
      it('rules and candidateRules (typed comparisons, names, dotted claim paths) round-trip through put, get and list', async () => {
        const [store] = await stores();
        const input = identityInput(newIdentityId(), {
          boundSubject: undefined,
          boundClaims: undefined,
          rules: [
            {
              effect: 'deny',
              name: 'kube-system',
              claims: { 'kubernetes.io.namespace': { equals: 'kube-system' } },
            },
            { effect: 'deny', claims: { repository: { oneOf: ['acme/legacy', 'acme/ünïcode'] } } },
            {
              effect: 'allow',
              name: 'main or v* tag',
              subject: ['repo:acme/*:ref:refs/heads/main', 'repo:acme/*:ref:refs/tags/v*'],
              claims: { repository_owner_id: { in: [81234567, 9007199254740991] } },
            },
          ],
          candidateRules: [
            {
              effect: 'allow',
              audiences: 'https://github.com/acme',
              issuer: 'https://token.actions.githubusercontent.com',
            },
          ],
        });
        assertSameConfig(await store.put(input), input, 'put with rules');
        assertSameConfig(await store.get(input.identityId), input, 'get with rules');
        const listed = (await store.list()).filter((c) => c?.identityId === input.identityId);
        assertSameConfig(listed[0], input, 'list with rules');
        const got = await store.get(input.identityId);
        assert.equal(got?.rules?.length, 3, 'three rules');
        assert.deepStrictEqual(got?.rules?.[2]?.claims, {
          repository_owner_id: { in: [81234567, 9007199254740991] },
        });
        assert.equal(got?.candidateRules?.length, 1, 'one candidate rule');
      });

      it('refuses an invalid rule on put (ConfigError naming the rule index and field) and stores nothing', async () => {
        const [store] = await stores();
        const id = newIdentityId();
        await assert.rejects(
          store.put(identityInput(id, { rules: [{ effect: 'allow', claims: { id: { in: [1.5] } } }] })),
          { name: 'ConfigError', code: 'invalid_config', field: 'rules[0].claims.id.in[0]' },
        );
        assert.equal(await store.get(id), undefined, 'nothing stored for a refused config');
      });
    });

    describe('ids', () => {
      it('an unknown id gives undefined', async () => {
        const [store] = await stores();
        assert.equal(await store.get(newIdentityId()), undefined);
      });

      it('HTTP-04: ids with quotes, wildcards and SQL metacharacters are data: get gives undefined, delete false', async () => {
        const [store] = await stores();
        for (const id of ["x' OR '1'='1", '%', '*', '_', 'a"; DROP TABLE identities; --', '../a', '']) {
          assert.equal(await store.get(id), undefined, `get(${JSON.stringify(id)})`);
          assert.equal(await store.delete(id), false, `delete(${JSON.stringify(id)})`);
        }
      });
    });

    describe('writes', () => {
      it('put replaces: get and list hand back the latest config', async () => {
        const [store] = await stores();
        const id = newIdentityId();
        await store.put(identityInput(id));
        const latest = identityInput(id, { accessTokenTTL: 60, metadata: { replaced: true } });
        await store.put(latest);
        assertSameConfig(await store.get(id), latest, 'get after the second put');
        const listed = (await store.list()).filter((c) => c?.identityId === id);
        assert.equal(listed.length, 1, 'list must hold the id once');
        assertSameConfig(listed[0], latest, 'list after the second put');
      });

      it('delete removes the config and is idempotent: true, then false', async () => {
        const [store] = await stores();
        const id = newIdentityId();
        await store.put(identityInput(id));
        assert.equal(await store.delete(id), true, 'delete of a stored config');
        assert.equal(await store.get(id), undefined, 'get after delete');
        assert.equal(
          (await store.list()).some((c) => c?.identityId === id),
          false,
          'list after delete',
        );
        assert.equal(await store.delete(id), false, 'a second delete');
      });

      it('concurrent puts of one id from two instances: one of them wins, whole (never a mix)', async () => {
        const [a, b] = await stores();
        const id = newIdentityId();
        const inputs = Array.from({ length: 12 }, (_, i) =>
          identityInput(id, {
            accessTokenTTL: 60 + i,
            metadata: { writer: i },
            boundSubject: `repo:acme/r${i}:*`,
          }),
        );
        await Promise.all(inputs.map((input, i) => (i % 2 ? b : a).put(input)));
        const got = await a.get(id);
        const writer = (got?.metadata as { writer?: number } | undefined)?.writer;
        assert.ok(
          typeof writer === 'number' && inputs[writer],
          `the stored config names no writer: ${JSON.stringify(got)}`,
        );
        assertSameConfig(got, inputs[writer]!, `the config stored is writer ${writer}'s, whole`);
        assertSameConfig(await b.get(id), inputs[writer]!, 'the other instance reads the same');
        assert.equal(
          (await a.list()).filter((c) => c?.identityId === id).length,
          1,
          'list holds the id once',
        );
      });

      it('two instances share configs: a put on one is read on the other, a delete on one is seen by the other', async () => {
        const [a, b] = await stores();
        const input = identityInput(newIdentityId());
        await a.put(input);
        assertSameConfig(await b.get(input.identityId), input, 'get on the other instance');
        const changed = identityInput(input.identityId, { accessTokenTTL: 120 });
        await b.put(changed);
        assertSameConfig(await a.get(input.identityId), changed, 'get after a put on the other instance');
        assert.equal(await b.delete(input.identityId), true);
        assert.equal(await a.get(input.identityId), undefined, 'get after a delete on the other instance');
      });
    });

    const { outage } = options;
    if (outage) {
      describe('backend outage (fail closed)', () => {
        it('fails closed while its backend is unreachable: get, put, delete and list throw within the bound, and work again once it is back', async () => {
          const [store] = await stores();
          const input = identityInput(newIdentityId());
          await store.put(input);
          const failWithinMs = outage.failWithinMs ?? 5000;
          await outage.break();
          try {
            await Promise.all([
              assertFailsClosed(() => store.get(input.identityId), failWithinMs, 'get'),
              assertFailsClosed(() => store.put(identityInput(newIdentityId())), failWithinMs, 'put'),
              assertFailsClosed(() => store.delete(newIdentityId()), failWithinMs, 'delete'),
              assertFailsClosed(() => store.list(), failWithinMs, 'list'),
            ]);
          } finally {
            await outage.restore();
          }
          await eventually(
            async () => assertSameConfig(await store.get(input.identityId), input, 'get after the outage'),
            outage.recoverWithinMs ?? 15_000,
            'the store after the backend came back',
          );
        });
      });
    }
  });
}
