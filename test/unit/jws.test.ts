import { describe, expect, it } from 'vitest';
import { verifyJwsSignature } from '../../src/trust/jws.js';
import { makeKey, sign } from '../helpers/jwt.js';

const split = (jwt: string) => {
  const dot = jwt.lastIndexOf('.');
  return { input: jwt.slice(0, dot), signature: Buffer.from(jwt.slice(dot + 1), 'base64url') };
};

describe('node:crypto JWS verification (the login fast path)', () => {
  it.each(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])(
    '%s signed by jose verifies; any altered byte does not',
    async (alg) => {
      const key = makeKey(alg);
      const { input, signature } = split(await sign(key, { iss: 'x', n: 1 }));
      expect(await verifyJwsSignature(alg, key.publicKey, input, signature)).toBe(true);
      const flipped = Buffer.from(signature);
      flipped[5] = flipped[5]! ^ 1;
      expect(await verifyJwsSignature(alg, key.publicKey, input, flipped)).toBe(false);
      expect(
        await verifyJwsSignature(
          alg,
          key.publicKey,
          input.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
          signature,
        ),
      ).toBe(false);
    },
  );

  it('ALG-02/03/05: the key must be of the type and curve the algorithm names', async () => {
    const rsa = makeKey('RS256');
    const p256 = makeKey('ES256');
    const p384 = makeKey('ES384');
    const rs = split(await sign(rsa, { a: 1 }));
    expect(await verifyJwsSignature('PS256', rsa.publicKey, rs.input, rs.signature)).toBe(false);
    expect(await verifyJwsSignature('HS256', rsa.publicKey, rs.input, rs.signature)).toBe(false);
    expect(await verifyJwsSignature('none', rsa.publicKey, rs.input, Buffer.alloc(0))).toBe(false);
    expect(await verifyJwsSignature('RS256', rsa.privateKey, rs.input, rs.signature)).toBe(false);
    const es = split(await sign(p256, { a: 1 }));
    expect(await verifyJwsSignature('ES384', p256.publicKey, es.input, es.signature)).toBe(false);
    expect(await verifyJwsSignature('ES256', p384.publicKey, es.input, es.signature)).toBe(false);
    expect(await verifyJwsSignature('RS256', p256.publicKey, es.input, es.signature)).toBe(false);
    expect(await verifyJwsSignature('toString', p256.publicKey, es.input, es.signature)).toBe(false);
  });

  it('ALG-06: an all-zero ES256 signature and wrong-length signatures never verify (and never throw)', async () => {
    const p256 = makeKey('ES256');
    for (const length of [0, 1, 63, 64, 65, 128]) {
      expect(await verifyJwsSignature('ES256', p256.publicKey, 'e30.e30', Buffer.alloc(length))).toBe(false);
    }
  });
});
