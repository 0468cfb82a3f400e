import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createOidcAuth } from '../../src/index.js';
import { githubIdentity, SIGNING_KEYS } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('memory held by an engine', () => {
  it('does not keep the caller’s identities array alive (the store keeps its own copy)', async () => {
    const key = makeKey('RS256');
    let input: object[] | undefined = Array.from({ length: 3 }, (_, i) =>
      githubIdentity(key, { identityId: `id-${i}` }),
    );
    const ref = new WeakRef(input);
    const auth = createOidcAuth({ identities: input as never, signingKeys: SIGNING_KEYS, onEvent: () => {} });
    input = undefined;
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(ref.deref()).toBeUndefined();
    expect((await auth.identities.get('id-2'))?.identityId).toBe('id-2');
  });
});
