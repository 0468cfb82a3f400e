/**
 * Memory per live access token: the memory store's V8 heap, and Redis' `MEMORY USAGE`.
 *
 *   node --expose-gc --import tsx bench/memory.ts [--sizes 1000,100000,1000000] [--skip-heap]
 *     [--skip-redis] [--redis-url redis://127.0.0.1:6379]
 *
 * Memory store: each (store, metadata variant, size) runs in a fresh child process, which creates
 * the tokens through `store.create` with records built as the engine builds them, then reports the
 * `heapUsed` delta after `global.gc()`, and times `consume` and `revokeIdentity` on the result.
 * Stores: `MemoryTokenStore` (`src/stores/memory.ts`) as the engine feeds it today; the same fed
 * interned `issuer`/`subject` strings (the cheapest fix); `CompactMemoryTokenStore`, the prototype
 * of the proposed layout (`bench/lib/compact-memory-store.ts`). "Where the bytes go" rebuilds the
 * memory store's structures one layer at a time. Redis: 1,000 tokens per variant created through
 * `RedisTokenStore` under a unique prefix (deleted afterwards), measured key by key. Prints markdown.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisTokenStore } from '../adapters/redis/index.js';
import { MemoryTokenStore } from '../src/stores/memory.js';
import type { TokenStore } from '../src/types.js';
import { CompactMemoryTokenStore } from './lib/compact-memory-store.js';
import { benchTokenId, recordFactory, type MetadataVariant } from './lib/token-records.js';

/** `memory-interned`: the memory store given records whose `issuer`/`subject` the caller interned. */
type StoreKind = 'memory' | 'memory-interned' | 'compact';
const STORES = ['memory', 'memory-interned', 'compact'] as const;
/** Cumulative rebuilds of the memory store's structures, for the breakdown. */
type Layer = 'ids' | 'records-interned' | 'records' | 'store';

interface ChildJob {
  store: StoreKind;
  variant: MetadataVariant;
  size: number;
  layer?: Layer;
}

interface ChildResult extends ChildJob {
  bytesPerToken: number;
  /** Mean `consume` time over every token, µs; median of 3 passes (full stores only). */
  consumeUs?: number;
  /** `revokeIdentity` of the identity holding every token, ms; median of 3 calls (full stores only). */
  revokeIdentityMs?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
const THIS_FILE = fileURLToPath(import.meta.url);

function heapAfterGc(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** Runs in the child: build one structure, measure it, keep it alive until measured. */
async function measure(job: ChildJob): Promise<ChildResult> {
  const build = recordFactory(job.variant, { internClaims: job.store === 'memory-interned' });
  const start = Date.now();
  const layer = job.layer ?? 'store';
  const store: TokenStore & { size: number } =
    job.store === 'compact' ? new CompactMemoryTokenStore() : new MemoryTokenStore({ sweepIntervalMs: 0 });
  const map = new Map<string, unknown>();
  const constant = {};
  const before = heapAfterGc();
  for (let i = 0; i < job.size; i++) {
    const record = build(i, start + i);
    if (layer === 'store') await store.create(record);
    else if (layer === 'ids') map.set(record.tokenId, constant);
    else if (layer === 'records') map.set(record.tokenId, { ...record });
    else map.set(record.tokenId, { ...record, issuer: ISSUER, subject: SUBJECT });
  }
  const after = heapAfterGc();
  const result: ChildResult = { ...job, bytesPerToken: (after - before) / job.size };
  if (store.size + map.size !== job.size) throw new Error('structure lost entries');
  if (layer !== 'store') return result;

  const now = start;
  const ids = Array.from({ length: job.size }, (_, i) => benchTokenId(i));
  const identityId = build(0, now).identityId;
  const consumeUs: number[] = [];
  const revokeMs: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    const t0 = process.hrtime.bigint();
    for (const id of ids) {
      const outcome = await store.consume(id, now);
      if (!outcome.ok) throw new Error(`consume refused: ${outcome.reason}`);
    }
    consumeUs.push(Number(process.hrtime.bigint() - t0) / 1000 / job.size);
  }
  for (let pass = 0; pass < 3; pass++) {
    const t0 = process.hrtime.bigint();
    const revoked = await store.revokeIdentity(identityId);
    revokeMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (revoked !== (pass === 0 ? job.size : 0)) throw new Error(`revokeIdentity counted ${revoked}`);
  }
  result.consumeUs = median(consumeUs);
  result.revokeIdentityMs = median(revokeMs);
  return result;
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

const ISSUER = 'https://token.actions.githubusercontent.com';
const SUBJECT = 'repo:acme-corp/payments-api:ref:refs/heads/main';

function runChild(job: ChildJob): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', THIS_FILE, '--child', JSON.stringify(job)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`child ${JSON.stringify(job)} exited ${code}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ChildResult);
    });
  });
}

interface RedisResult {
  variant: MetadataVariant;
  tokens: number;
  meanKeyBytes: number;
  minKeyBytes: number;
  maxKeyBytes: number;
  encoding: string;
  indexBytesPerToken: number;
  indexEncoding: string;
}

interface RedisReport {
  version: string;
  listpackValue: string;
  rows: RedisResult[];
}

async function measureRedis(url: string, tokens = 1000): Promise<RedisReport> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  await client.connect();
  const prefix = `oma_bench_mem_${randomBytes(6).toString('hex')}:`;
  const store = new RedisTokenStore({ client, prefix });
  const results: RedisResult[] = [];
  try {
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    const [, listpackValue] = (await client.config('GET', 'hash-max-listpack-value')) as [string, string];
    for (const variant of ['shared', 'mapped'] as const) {
      const identityId = `bench-${variant}-${randomBytes(4).toString('hex')}`;
      const build = recordFactory(variant, { identityId });
      const now = Date.now();
      for (let i = 0; i < tokens; i++) await store.create(build(i, now));
      const pipeline = client.pipeline();
      for (let i = 0; i < tokens; i++) {
        pipeline.call('MEMORY', 'USAGE', store.tokenKey(benchTokenId(i)), 'SAMPLES', '0');
      }
      const sizes = ((await pipeline.exec()) ?? []).map(([error, value]) => {
        if (error || typeof value !== 'number') throw new Error('MEMORY USAGE failed');
        return value;
      });
      const index = store.identityKey(identityId);
      results.push({
        variant,
        tokens,
        meanKeyBytes: sizes.reduce((a, b) => a + b, 0) / sizes.length,
        minKeyBytes: Math.min(...sizes),
        maxKeyBytes: Math.max(...sizes),
        encoding: String(await client.object('ENCODING', store.tokenKey(benchTokenId(0)))),
        indexBytesPerToken: Number(await client.call('MEMORY', 'USAGE', index, 'SAMPLES', '0')) / tokens,
        indexEncoding: String(await client.object('ENCODING', index)),
      });
    }
    return { version, listpackValue, rows: results };
  } finally {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await client.quit();
  }
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const STORE_NAMES: Record<StoreKind, string> = {
  memory: '`MemoryTokenStore` (src/stores/memory.ts)',
  'memory-interned': '`MemoryTokenStore`, `iss`/`sub` interned by the engine',
  compact: '`CompactMemoryTokenStore` (prototype)',
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      sizes: { type: 'string', default: '1000,100000,1000000' },
      'skip-redis': { type: 'boolean', default: false },
      'skip-heap': { type: 'boolean', default: false },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    },
  });
  if (!gc) throw new Error('run with: node --expose-gc --import tsx bench/memory.ts');
  if (values.child) {
    console.log(JSON.stringify(await measure(JSON.parse(values.child) as ChildJob)));
    return;
  }
  const lines = [
    '# Memory per live access token',
    '',
    `\`node --expose-gc --import tsx bench/memory.ts\` on Node ${process.version}, ${new Date().toISOString()}.`,
    '',
  ];
  if (!values['skip-heap']) lines.push(...(await heapReport(values.sizes.split(',').map(Number))));
  if (!values['skip-redis']) lines.push(...redisReport(await measureRedis(values['redis-url'])));
  console.log(lines.join('\n'));
}

async function heapReport(sizes: number[]): Promise<string[]> {
  const largest = Math.max(...sizes);
  const results: ChildResult[] = [];
  for (const store of STORES) {
    for (const variant of ['shared', 'mapped'] as const) {
      for (const size of sizes) results.push(await runChild({ store, variant, size }));
    }
  }
  const full = (store: StoreKind, variant: MetadataVariant, size = largest) =>
    results.find((r) => r.store === store && r.variant === variant && r.size === size)!;
  const layer = async (name: Layer) =>
    (await runChild({ store: 'memory', variant: 'shared', size: largest, layer: name })).bytesPerToken;
  const ids = await layer('ids');
  const records = await layer('records-interned');
  const strings = await layer('records');
  const store = full('memory', 'shared').bytesPerToken;

  const lines = [`## Memory store: V8 heap per token (\`heapUsed\` delta after \`gc()\`, bytes)`, ''];
  lines.push(`| store | metadata | ${sizes.map((s) => `${int(s)} tokens`).join(' | ')} |`);
  lines.push(`|---|---|${sizes.map(() => '---:').join('|')}|`);
  for (const store of STORES) {
    for (const variant of ['shared', 'mapped'] as const) {
      const cells = sizes.map((size) => int(full(store, variant, size).bytesPerToken));
      lines.push(`| ${STORE_NAMES[store]} | ${variant} | ${cells.join(' | ')} |`);
    }
  }
  lines.push(
    '',
    '`shared`: no claim mapping, every token holds the identity metadata object. `mapped`: two mapped ' +
      'claims (`repository`, and the per-run `run_id`), a small object per token. Target: < 400 at 1,000,000.',
    '',
    `## Where the bytes go: \`MemoryTokenStore\`, ${int(largest)} tokens`,
    '',
    '| part | bytes per token |',
    '|---|---:|',
    `| token id string (22 chars) + \`Map\` entry | ${int(ids)} |`,
    `| record object (13 fields) + 3 boxed epoch-ms numbers | ${int(records - ids)} |`,
    `| \`issuer\` + \`subject\` strings, one copy per login | ${int(strings - records)} |`,
    `| per-identity \`Set\` index entry | ${int(store - strings)} |`,
    `| mapped metadata object + its strings (\`mapped\` only) | ${int(full('memory', 'mapped').bytesPerToken - store)} |`,
    '',
    `## Operation costs, ${int(largest)} live tokens of one identity (median of 3 passes)`,
    '',
    '| store | metadata | `consume` µs/op | `revokeIdentity` ms |',
    '|---|---|---:|---:|',
  );
  for (const store of STORES) {
    for (const variant of ['shared', 'mapped'] as const) {
      const r = full(store, variant);
      lines.push(
        `| ${STORE_NAMES[store]} | ${variant} | ${r.consumeUs!.toFixed(2)} | ${r.revokeIdentityMs!.toFixed(0)} |`,
      );
    }
  }
  lines.push('');
  return lines;
}

function redisReport(results: RedisReport): string[] {
  const lines = [
    `## Redis ${results.version}: \`MEMORY USAGE … SAMPLES 0\`, 1,000 tokens through \`RedisTokenStore\``,
    '',
    `Server \`hash-max-listpack-value\`: ${results.listpackValue}.`,
    '',
    '| metadata | token hash bytes, mean (min–max) | hash encoding | identity index bytes per token | index encoding | total per token |',
    '|---|---:|---|---:|---|---:|',
  ];
  for (const r of results.rows) {
    lines.push(
      `| ${r.variant} | ${int(r.meanKeyBytes)} (${r.minKeyBytes}–${r.maxKeyBytes}) | ${r.encoding} | ${int(r.indexBytesPerToken)} | ${r.indexEncoding} | ${int(r.meanKeyBytes + r.indexBytesPerToken)} |`,
    );
  }
  lines.push('');
  return lines;
}

await main();
