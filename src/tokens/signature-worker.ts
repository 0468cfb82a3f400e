import {
  constants,
  verify as nodeVerify,
  type KeyObject,
  type VerifyKeyObjectInput,
  type VerifyPublicKeyInput,
} from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * How a signature verifies in node:crypto: the hash (`null` for Ed25519) and the signature scheme
 * (ECDSA signatures in the JWS `r || s` form, RFC 7518 §3.4; PSS with a salt as long as the hash,
 * RFC 7518 §3.5).
 */
export type SignatureScheme = 'ecdsa' | 'pkcs1' | 'pss' | 'eddsa';

/** A public key and how its signatures verify. */
export interface SignatureKey {
  /** The key as the worker receives it: its SPKI DER in base64 (also the worker's cache key). */
  spki: string;
  hash: string | null;
  scheme: SignatureScheme;
  /** The key as `crypto.verify` on this thread takes it (with the scheme's options). */
  verifyKey: KeyObject | VerifyKeyObjectInput | VerifyPublicKeyInput;
}

/** The {@link SignatureKey} of a public key checking signatures of `scheme` with `hash`. */
export function signatureKey(
  publicKey: KeyObject,
  hash: string | null,
  scheme: SignatureScheme,
): SignatureKey {
  const verifyKey =
    scheme === 'ecdsa'
      ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
      : scheme === 'pss'
        ? {
            key: publicKey,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
          }
        : publicKey;
  return {
    spki: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    hash,
    scheme,
    verifyKey,
  };
}

/** One check: the JWS signing input (`header.payload`) and its base64url signature. */
interface Check {
  key: SignatureKey;
  input: string;
  signature: string;
  resolve: (valid: boolean) => void;
}

/** A batch sent and not yet answered. */
interface Sent {
  checks: Check[];
  /** Checks answered so far (the worker answers them in order, `answerEvery` at a time). */
  answered: number;
  timer: ReturnType<typeof setTimeout>;
}

/** The part of a `worker_threads` Worker this module uses (tests hand in broken ones). */
export interface WorkerLike {
  postMessage(value: unknown): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  ref(): void;
  unref(): void;
  terminate(): unknown;
}

/** Options of {@link SignatureWorker}. */
export interface SignatureWorkerOptions {
  /** Starts the worker thread. Default: a `worker_threads` Worker running {@link WORKER_SOURCE}. */
  start?: () => WorkerLike;
  /** Checks sent in one message at most. Default 256. */
  maxBatch?: number;
  /**
   * The worker answers a message's checks this many at a time, as it goes, so the loop resumes the
   * first requests of a batch while the worker checks the rest. Default 4.
   */
  answerEvery?: number;
  /**
   * Milliseconds a batch may go unanswered before the worker is given up (its checks then run on the
   * thread pool). Default 10,000: 256 RSA-4096 checks take some 150 ms.
   */
  answerTimeoutMs?: number;
}

/**
 * The worker's program (CommonJS, run with `eval`): for each batch, every check in order with
 * node:crypto's synchronous `verify`, public keys imported once and kept by their DER (at most 1,024,
 * then forgotten all at once) with the options {@link signatureKey} gives them, and answers of 0/1
 * bytes, `answerEvery` checks each. A check that throws is a 0.
 */
export const WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
const { verify, createPublicKey, constants } = require('node:crypto');
const keys = new Map();
function keyOf(spki, scheme) {
  const id = scheme + ' ' + spki;
  let key = keys.get(id);
  if (key === undefined) {
    if (keys.size >= 1024) keys.clear();
    const publicKey = createPublicKey({ key: Buffer.from(spki, 'base64'), format: 'der', type: 'spki' });
    key = scheme === 'ecdsa' ? { key: publicKey, dsaEncoding: 'ieee-p1363' }
      : scheme === 'pss' ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : publicKey;
    keys.set(id, key);
  }
  return key;
}
parentPort.on('message', (message) => {
  const checks = message.checks;
  const every = message.answerEvery;
  let from = 0;
  let results = new Uint8Array(Math.min(every, checks.length));
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i];
    let valid = 0;
    try {
      valid = verify(c[1], Buffer.from(c[3], 'latin1'), keyOf(c[0], c[2]), Buffer.from(c[4], 'base64url')) ? 1 : 0;
    } catch {
      valid = 0;
    }
    results[i - from] = valid;
    if (i - from + 1 === results.length) {
      parentPort.postMessage({ id: message.id, from, results });
      from = i + 1;
      results = new Uint8Array(Math.min(every, checks.length - from));
    }
  }
});
`;

/**
 * Signature checks on a worker thread of their own, batched: the checks asked for in one event-loop
 * turn go to the worker as one message, and come back `answerEvery` at a time as the worker checks
 * them. The event loop pays a message per few checks instead of a thread-pool job per check (each
 * job costs the loop some 10-30 µs of set-up and thread wake-ups on a small VM, a third of an ES256
 * check: bench `--set dpop`), and OpenSSL checks
 * run beside the loop on a machine with a core to spare.
 *
 * Fails safe: a signature counts as valid only when the worker answered 1 for it. When the worker
 * cannot start, exits, errs, answers something else or not within `answerTimeoutMs`, it is given up
 * for good and every check it held, and every later one, runs on libuv's thread pool instead (the
 * same answer, at the old cost). The thread is started on first use and does not keep the process
 * alive while no check is pending.
 */
export class SignatureWorker {
  readonly #start: () => WorkerLike;
  readonly #maxBatch: number;
  readonly #answerEvery: number;
  readonly #timeoutMs: number;
  #worker: WorkerLike | undefined;
  #failed = false;
  #queue: Check[] = [];
  #scheduled = false;
  #nextId = 0;
  readonly #sent = new Map<number, Sent>();

  constructor(options: SignatureWorkerOptions = {}) {
    // No flags of the parent's (`execArgv: []`): a loader or `--input-type=module` would turn the
    // CommonJS program into something else, and the worker needs none of them.
    this.#start = options.start ?? (() => new Worker(WORKER_SOURCE, { eval: true, execArgv: [] }));
    this.#maxBatch = options.maxBatch ?? 256;
    this.#answerEvery = options.answerEvery ?? 4;
    this.#timeoutMs = options.answerTimeoutMs ?? 10_000;
  }

  /** Whether checks go to the worker (false once it was given up). */
  get healthy(): boolean {
    return !this.#failed;
  }

  /** Batches sent and not yet answered. */
  get pending(): number {
    return this.#sent.size;
  }

  /** Whether `signature` (base64url) verifies `input` (the JWS signing input, ASCII) with `key`. */
  verify(key: SignatureKey, input: string, signature: string): Promise<boolean> {
    if (this.#failed) return verifyOnThreadPool(key, input, signature);
    return new Promise<boolean>((resolve) => {
      this.#queue.push({ key, input, signature, resolve });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    const worker = this.#failed ? undefined : this.#ensureWorker();
    if (!worker) {
      runElsewhere(queue);
      return;
    }
    for (let i = 0; i < queue.length; i += this.#maxBatch) {
      const checks = queue.slice(i, i + this.#maxBatch);
      const id = this.#nextId++;
      const timer = setTimeout(() => this.#giveUp(), this.#timeoutMs);
      timer.unref?.();
      if (this.#sent.size === 0) worker.ref();
      this.#sent.set(id, { checks, answered: 0, timer });
      try {
        worker.postMessage({
          id,
          answerEvery: this.#answerEvery,
          checks: checks.map((c) => [c.key.spki, c.key.hash, c.key.scheme, c.input, c.signature]),
        });
      } catch {
        this.#giveUp();
        runElsewhere(queue.slice(i + this.#maxBatch));
        return;
      }
    }
  }

  #ensureWorker(): WorkerLike | undefined {
    if (this.#worker) return this.#worker;
    let worker: WorkerLike;
    try {
      worker = this.#start();
    } catch {
      this.#failed = true;
      return undefined;
    }
    worker.on('message', (message) => this.#answer(message));
    worker.on('error', () => this.#giveUp());
    worker.on('exit', () => this.#giveUp());
    worker.unref();
    this.#worker = worker;
    return worker;
  }

  #answer(message: unknown): void {
    const { id, from, results } = (message ?? {}) as { id?: unknown; from?: unknown; results?: unknown };
    const sent = typeof id === 'number' ? this.#sent.get(id) : undefined;
    if (
      !sent ||
      from !== sent.answered ||
      !(results instanceof Uint8Array) ||
      results.length === 0 ||
      sent.answered + results.length > sent.checks.length
    ) {
      this.#giveUp();
      return;
    }
    const start = sent.answered;
    sent.answered += results.length;
    if (sent.answered === sent.checks.length) {
      this.#sent.delete(id as number);
      clearTimeout(sent.timer);
      if (this.#sent.size === 0) this.#worker?.unref();
    }
    for (let i = 0; i < results.length; i++) sent.checks[start + i]!.resolve(results[i] === 1);
  }

  /** The worker is not used again; what it held runs on the thread pool. */
  #giveUp(): void {
    if (this.#failed && this.#sent.size === 0) return;
    this.#failed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    const held = [...this.#sent.values()];
    this.#sent.clear();
    for (const sent of held) {
      clearTimeout(sent.timer);
      runElsewhere(sent.checks.slice(sent.answered));
    }
    if (worker) {
      try {
        void Promise.resolve(worker.terminate()).catch(() => undefined);
      } catch {
        // Already gone.
      }
    }
  }
}

function runElsewhere(checks: readonly Check[]): void {
  for (const check of checks) {
    void verifyOnThreadPool(check.key, check.input, check.signature).then(check.resolve);
  }
}

/**
 * The same check as one `crypto.verify` job on libuv's thread pool (with a callback): the event loop
 * goes on with other requests while OpenSSL checks the signature. Resolves false for a signature that
 * does not verify or a key that cannot check it. A runtime whose `crypto.verify` ignores the callback
 * and returns the answer is answered from that.
 */
export function verifyOnThreadPool(key: SignatureKey, input: string, signature: string): Promise<boolean> {
  return new Promise((resolve) => {
    let returned: unknown;
    try {
      returned = nodeVerify(
        key.hash,
        Buffer.from(input, 'latin1'),
        key.verifyKey,
        Buffer.from(signature, 'base64url'),
        (error, valid) => resolve(!error && valid),
      );
    } catch {
      resolve(false);
      return;
    }
    if (typeof returned === 'boolean') resolve(returned);
  });
}

let shared: SignatureWorker | undefined;

/** The process's one {@link SignatureWorker}, shared by every engine (started on first use). */
export function sharedSignatureWorker(): SignatureWorker {
  return (shared ??= new SignatureWorker());
}
