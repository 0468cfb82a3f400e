import { spawn } from 'node:child_process';
import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  SignatureWorker,
  WORKER_SOURCE,
  signatureKey,
  verifyOnThreadPool,
  type SignatureScheme,
  type WorkerLike,
} from '../../src/tokens/signature-worker.js';

/** A key pair, the `SignatureKey` of its public half, and JWS-style signatures by its private half. */
function keyPair(kind: 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'RS256' | 'PS256') {
  const spec: Record<
    typeof kind,
    { type: string; options: object; hash: string | null; scheme: SignatureScheme }
  > = {
    ES256: { type: 'ec', options: { namedCurve: 'P-256' }, hash: 'sha256', scheme: 'ecdsa' },
    ES384: { type: 'ec', options: { namedCurve: 'P-384' }, hash: 'sha384', scheme: 'ecdsa' },
    ES512: { type: 'ec', options: { namedCurve: 'P-521' }, hash: 'sha512', scheme: 'ecdsa' },
    EdDSA: { type: 'ed25519', options: {}, hash: null, scheme: 'eddsa' },
    RS256: { type: 'rsa', options: { modulusLength: 2048 }, hash: 'sha256', scheme: 'pkcs1' },
    PS256: { type: 'rsa', options: { modulusLength: 2048 }, hash: 'sha256', scheme: 'pss' },
  };
  const { type, options, hash, scheme } = spec[kind];
  const { publicKey, privateKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string });
  // Signed with options of the test's own, so a wrong option in signatureKey() fails a check.
  const schemeOptions = (key: KeyObject) =>
    scheme === 'ecdsa'
      ? { key, dsaEncoding: 'ieee-p1363' as const }
      : scheme === 'pss'
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
        : key;
  const key = signatureKey(publicKey, hash, scheme);
  const signed = (input: string) =>
    sign(hash, Buffer.from(input), schemeOptions(privateKey) as KeyObject).toString('base64url');
  return { key, signed };
}

/** A real worker running WORKER_SOURCE, with the messages each way counted. */
function countedWorker(source = WORKER_SOURCE) {
  const counts = { sent: 0, answers: 0, terminated: 0 };
  const start = (): WorkerLike => {
    const worker = new Worker(source, { eval: true });
    worker.on('message', () => counts.answers++);
    const post = worker.postMessage.bind(worker);
    worker.postMessage = (value: unknown) => {
      counts.sent++;
      post(value);
    };
    const terminate = worker.terminate.bind(worker);
    worker.terminate = () => {
      counts.terminated++;
      return terminate();
    };
    return worker;
  };
  return { counts, start };
}

const es256 = keyPair('ES256');
const INPUT = 'eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJqdGkiOiIxIn0';

/** Two checks asked in one turn: a valid ES256 signature of INPUT, and the same signature of another input. */
function validAndTampered(worker: SignatureWorker): Promise<boolean[]> {
  const signature = es256.signed(INPUT);
  return Promise.all([
    worker.verify(es256.key, INPUT, signature),
    worker.verify(es256.key, `${INPUT}x`, signature),
  ]);
}

describe('signature checks on a worker thread', () => {
  it.each(['ES256', 'ES384', 'ES512', 'EdDSA', 'RS256', 'PS256'] as const)(
    'RFC 7518 §3 / RFC 8037: a %s signature verifies; another input or a flipped signature byte does not',
    async (alg) => {
      const { key, signed } = keyPair(alg);
      const worker = new SignatureWorker();
      const signature = signed(INPUT);
      const flipped = Buffer.from(signature, 'base64url');
      flipped[5]! ^= 1;
      const results = await Promise.all([
        worker.verify(key, INPUT, signature),
        worker.verify(key, `${INPUT}x`, signature),
        worker.verify(key, INPUT, flipped.toString('base64url')),
      ]);
      expect(results).toEqual([true, false, false]);
      expect(worker.healthy).toBe(true);
    },
  );

  it('answers each check of a mixed batch with its own result, in any order of keys and validity', async () => {
    const ed = keyPair('EdDSA');
    const { counts, start } = countedWorker();
    const worker = new SignatureWorker({ start });
    const cases = Array.from({ length: 40 }, (_, i) => {
      const pair = i % 2 === 0 ? es256 : ed;
      const input = `${INPUT}.${i}`;
      const valid = i % 3 !== 0;
      return { pair, input, valid, signature: pair.signed(valid ? input : `${input}-other`) };
    });
    const results = await Promise.all(cases.map((c) => worker.verify(c.pair.key, c.input, c.signature)));
    expect(results).toEqual(cases.map((c) => c.valid));
    // Asked in one turn: one message to the worker, answered 4 at a time as it goes.
    expect(counts.sent).toBe(1);
    expect(counts.answers).toBe(10);
  });

  it('splits one turn of checks into messages of maxBatch, answered answerEvery at a time', async () => {
    const { counts, start } = countedWorker();
    const worker = new SignatureWorker({ start, maxBatch: 256, answerEvery: 16 });
    const signature = es256.signed(INPUT);
    const results = await Promise.all(
      Array.from({ length: 600 }, () => worker.verify(es256.key, INPUT, signature)),
    );
    expect(results.every((r) => r === true)).toBe(true);
    expect(counts.sent).toBe(3); // 256 + 256 + 88
    expect(counts.answers).toBe(16 + 16 + 6);
    expect(worker.pending).toBe(0);
  });

  it('checks asked in later turns go in later messages', async () => {
    const { counts, start } = countedWorker();
    const worker = new SignatureWorker({ start });
    const signature = es256.signed(INPUT);
    expect(await worker.verify(es256.key, INPUT, signature)).toBe(true);
    expect(await worker.verify(es256.key, INPUT, signature)).toBe(true);
    expect(counts.sent).toBe(2);
  });

  it('a worker that cannot start: every check runs on the thread pool, with the same answers', async () => {
    const worker = new SignatureWorker({
      start: () => {
        throw new Error('worker_threads unavailable');
      },
    });
    expect(await validAndTampered(worker)).toEqual([true, false]);
    expect(worker.healthy).toBe(false);
    expect(await worker.verify(es256.key, INPUT, es256.signed(INPUT))).toBe(true);
  });

  it('a worker that exits with checks pending: they and every later check run on the thread pool', async () => {
    const { counts, start } = countedWorker(
      `require('node:worker_threads').parentPort.on('message', () => process.exit(3));`,
    );
    const worker = new SignatureWorker({ start });
    expect(await validAndTampered(worker)).toEqual([true, false]);
    expect(worker.healthy).toBe(false);
    expect(worker.pending).toBe(0);
    expect(await worker.verify(es256.key, `${INPUT}y`, es256.signed(INPUT))).toBe(false);
    expect(counts.sent).toBe(1);
  });

  it('a worker that throws: its checks run on the thread pool', async () => {
    const { start } = countedWorker(
      `require('node:worker_threads').parentPort.on('message', () => { throw new Error('boom'); });`,
    );
    const worker = new SignatureWorker({ start });
    expect(await validAndTampered(worker)).toEqual([true, false]);
    expect(worker.healthy).toBe(false);
  });

  it.each([
    [
      'an unknown batch id',
      'm => ({ id: m.id + 1, from: 0, results: new Uint8Array(m.checks.length).fill(1) })',
    ],
    [
      'too many results',
      'm => ({ id: m.id, from: 0, results: new Uint8Array(m.checks.length + 1).fill(1) })',
    ],
    ['results out of order', 'm => ({ id: m.id, from: 1, results: new Uint8Array(1).fill(1) })'],
    ['no results', 'm => ({ id: m.id, from: 0, results: new Uint8Array(0) })'],
    ['results that are not bytes', 'm => ({ id: m.id, from: 0, results: m.checks.map(() => 1) })'],
    ['no object', '() => "valid"'],
  ])(
    'a worker answering with %s is given up; no check is taken as valid from it (fails safe)',
    async (_name, answer) => {
      const { counts, start } = countedWorker(
        `const { parentPort } = require('node:worker_threads'); const answer = ${answer};
         parentPort.on('message', (m) => parentPort.postMessage(answer(m)));`,
      );
      const worker = new SignatureWorker({ start });
      expect(await validAndTampered(worker)).toEqual([true, false]);
      expect(worker.healthy).toBe(false);
      expect(counts.terminated).toBe(1);
    },
  );

  it('a worker that never answers is given up after answerTimeoutMs; its checks run on the thread pool', async () => {
    const { counts, start } = countedWorker(
      `require('node:worker_threads').parentPort.on('message', () => {});`,
    );
    const worker = new SignatureWorker({ start, answerTimeoutMs: 100 });
    const asked = Date.now();
    expect(await validAndTampered(worker)).toEqual([true, false]);
    expect(Date.now() - asked).toBeGreaterThanOrEqual(90);
    expect(worker.healthy).toBe(false);
    expect(counts.terminated).toBe(1);
  });

  it('the thread-pool path alone gives the same answers (dpop.proofChecks: thread-pool)', async () => {
    const signature = es256.signed(INPUT);
    expect(await verifyOnThreadPool(es256.key, INPUT, signature)).toBe(true);
    expect(await verifyOnThreadPool(es256.key, 'x.y', signature)).toBe(false);
    expect(await verifyOnThreadPool(es256.key, INPUT, 'not base64url at all!')).toBe(false);
  });

  it('holds the process open while a check is pending and not after: a script (run with --import tsx --input-type=module, flags the worker must not inherit) exits by itself once answered by the worker', async () => {
    const script = `
      import { generateKeyPairSync, sign } from 'node:crypto';
      import { sharedSignatureWorker } from './src/tokens/signature-worker.ts';
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const key = { spki: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), hash: 'sha256',
        scheme: 'ecdsa', verifyKey: { key: publicKey, dsaEncoding: 'ieee-p1363' } };
      const signature = sign('sha256', Buffer.from('a.b'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
      sharedSignatureWorker().verify(key, 'a.b', signature).then((valid) => {
        console.log(JSON.stringify({ valid, healthy: sharedSignatureWorker().healthy }));
      });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ valid: true, healthy: true });
  });
});
