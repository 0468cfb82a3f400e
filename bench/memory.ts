/**
 * Memory per live access token: the memory store's V8 heap, and Redis' `MEMORY USAGE`.
 *
 *   node --expose-gc --import tsx bench/memory.ts [--sizes 1000,100000,1000000] [--skip-heap]
 *     [--skip-redis] [--redis-url redis://127.0.0.1:6379]
 *
 * Memory store: each (metadata variant, size) runs in a fresh child process, which creates the
 * tokens through `store.create` with records built as the engine builds them, then reports the
 * `heapUsed` and `arrayBuffers` (the store's typed arrays, outside the V8 heap) deltas after
 * `global.gc()`, the time of one full collection with the tokens alive (what every major GC of a
 * server holding them pays), and times `consume` and `revokeIdentity` on the result. Redis: 1,000
 * tokens per variant created through `RedisTokenStore` under a unique prefix (deleted afterwards),
 * measured key by key. Prints markdown.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisTokenStore } from '../adapters/redis/index.js';
import { MemoryTokenStore } from '../src/stores/memory.js';
import { benchTokenId, recordFactory, type MetadataVariant } from './lib/token-records.js';

interface ChildJob {
  variant: MetadataVariant;
  size: number;
}

interface ChildResult extends ChildJob {
  bytesPerToken: number;
  /** Of which in typed arrays (outside the V8 heap). */
  arrayBytesPerToken: number;
  /** One full `gc()` with the tokens alive, ms; median of 3. */
  fullGcMs: number;
  /** Mean `consume` time over every token, µs; median of 3 passes (full stores only). */
  consumeUs?: number;
  /** `revokeIdentity` of the identity holding every token, ms; median of 3 calls (full stores only). */
  revokeIdentityMs?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
const THIS_FILE = fileURLToPath(import.meta.url);

/** V8 heap and ArrayBuffer bytes after two full collections. */
function afterGc(): { heap: number; arrays: number } {
  gc!();
  gc!();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heap: heapUsed, arrays: arrayBuffers };
}

/** Runs in the child: build one store, measure it, keep it alive until measured. */
async function measure(job: ChildJob): Promise<ChildResult> {
  const build = recordFactory(job.variant);
  const start = Date.now();
  const store = new MemoryTokenStore({ sweepIntervalMs: 0 });
  const before = afterGc();
  for (let i = 0; i < job.size; i++) await store.create(build(i, start + i));
  const after = afterGc();
  if (store.size !== job.size) throw new Error('store lost entries');
  const gcMs: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    const t0 = process.hrtime.bigint();
    gc!();
    gcMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const arrays = after.arrays - before.arrays;
  const result: ChildResult = {
    ...job,
    bytesPerToken: (after.heap - before.heap + arrays) / job.size,
    arrayBytesPerToken: arrays / job.size,
    fullGcMs: median(gcMs),
  };

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
  for (const variant of ['shared', 'mapped'] as const) {
    for (const size of sizes) results.push(await runChild({ variant, size }));
  }
  const at = (variant: MetadataVariant, size: number) =>
    results.find((r) => r.variant === variant && r.size === size)!;
  const lines = [
    '## Memory store: bytes per token (`heapUsed` + `arrayBuffers` delta after `gc()`)',
    '',
    `| metadata | ${sizes.map((s) => `${int(s)} tokens`).join(' | ')} | of which typed arrays, ${int(largest)} | one full GC, ${sizes.map((s) => int(s)).join(' / ')} tokens (ms) |`,
    `|---|${sizes.map(() => '---:').join('|')}|---:|---:|`,
  ];
  for (const variant of ['shared', 'mapped'] as const) {
    const cells = sizes.map((size) => int(at(variant, size).bytesPerToken));
    const gcs = sizes.map((size) => at(variant, size).fullGcMs.toFixed(0)).join(' / ');
    lines.push(
      `| ${variant} | ${cells.join(' | ')} | ${int(at(variant, largest).arrayBytesPerToken)} | ${gcs} |`,
    );
  }
  lines.push(
    '',
    '`shared`: no claim mapping, every token holds the identity metadata object. `mapped`: two mapped ' +
      'claims (`repository`, and the per-run `run_id`), a small object per token. Target: < 400 at 1,000,000. ' +
      'Typed arrays double when full, so sizes just past a power of two carry up to 2x their numbers part.',
    '',
    `## Operation costs, ${int(largest)} live tokens of one identity (median of 3 passes)`,
    '',
    '| metadata | `consume` µs/op | `revokeIdentity` ms |',
    '|---|---:|---:|',
  );
  for (const variant of ['shared', 'mapped'] as const) {
    const r = at(variant, largest);
    lines.push(`| ${variant} | ${r.consumeUs!.toFixed(2)} | ${r.revokeIdentityMs!.toFixed(0)} |`);
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
