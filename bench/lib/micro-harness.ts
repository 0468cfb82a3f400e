/** One micro-benchmarked operation. */
export interface MicroCase {
  /** What is measured, e.g. `jose jwtVerify RS256`. */
  name: string;
  /** Table section, e.g. `IdP token verify`. */
  group: string;
  /** One operation; sync, or returning a promise (then awaited). */
  op: () => unknown;
  /** Operations kept in flight for async ops. Default 1. */
  inFlight?: number;
}

/** Timing of one case: medians (and spread) over batches, per operation. */
export interface MicroResult {
  name: string;
  group: string;
  inFlight: number;
  /** Wall-clock ns per operation: median, min, max over batches. */
  wallNs: number;
  wallMinNs: number;
  wallMaxNs: number;
  /** Process CPU (all threads, so WebCrypto's thread pool counts) ns per operation, median over batches. */
  cpuNs: number;
  /**
   * Main-thread busy ns per operation (event-loop utilisation's active time), median over batches: what an
   * operation takes from a server's single JS thread when thread-pool work (WebCrypto, callback crypto) overlaps.
   */
  mainNs: number;
  batches: number;
  batchSize: number;
}

/** Harness settings. */
export interface MicroOptions {
  /** Measured batches per case. Default 15. */
  batches: number;
  /** Target wall time of one batch, ms. Default 60. */
  batchMs: number;
  /** Unmeasured warm-up per case, ms. Default 400. */
  warmupMs: number;
}

let sink: unknown;

/** Keeps results alive so the optimiser cannot drop the measured work. */
export function consumeSink(): unknown {
  return sink;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

async function runBatch(op: () => unknown, size: number, isAsync: boolean, inFlight: number): Promise<void> {
  if (!isAsync) {
    for (let i = 0; i < size; i++) sink = op();
    return;
  }
  if (inFlight <= 1) {
    for (let i = 0; i < size; i++) sink = await op();
    return;
  }
  const each = size / inFlight;
  const lanes: Promise<void>[] = [];
  for (let l = 0; l < inFlight; l++) {
    lanes.push(
      (async () => {
        for (let i = 0; i < each; i++) sink = await op();
      })(),
    );
  }
  await Promise.all(lanes);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Measure one case: warm up (growing batches until `warmupMs` passed, which also sizes the batch to
 * about `batchMs`), then time `batches` batches with `process.hrtime.bigint()` and `process.cpuUsage()`.
 */
export async function measureCase(c: MicroCase, options: MicroOptions): Promise<MicroResult> {
  const inFlight = Math.max(1, c.inFlight ?? 1);
  const first = c.op();
  const isAsync = isThenable(first);
  if (isAsync) await first;
  let size = inFlight;
  let perOpNs = 0;
  const warmEnd = process.hrtime.bigint() + BigInt(Math.round(options.warmupMs * 1e6));
  for (;;) {
    const t0 = process.hrtime.bigint();
    await runBatch(c.op, size, isAsync, inFlight);
    const t1 = process.hrtime.bigint();
    perOpNs = Number(t1 - t0) / size;
    if (t1 >= warmEnd) break;
    if (perOpNs * size < options.batchMs * 1e6) size *= 2;
  }
  const batchSize = Math.max(inFlight, Math.ceil((options.batchMs * 1e6) / perOpNs / inFlight) * inFlight);
  (globalThis as { gc?: () => void }).gc?.();
  const wall: number[] = [];
  const cpu: number[] = [];
  const main: number[] = [];
  for (let b = 0; b < options.batches; b++) {
    const e0 = performance.eventLoopUtilization();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await runBatch(c.op, batchSize, isAsync, inFlight);
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    const e1 = performance.eventLoopUtilization(e0);
    wall.push(Number(t1 - t0) / batchSize);
    cpu.push(((c1.user + c1.system) * 1000) / batchSize);
    main.push((e1.active * 1e6) / batchSize);
  }
  return {
    name: c.name,
    group: c.group,
    inFlight,
    wallNs: median(wall),
    wallMinNs: Math.min(...wall),
    wallMaxNs: Math.max(...wall),
    cpuNs: median(cpu),
    mainNs: median(main),
    batches: options.batches,
    batchSize,
  };
}

/** Micro results as a Markdown table (µs per operation). */
export function microMarkdown(results: readonly MicroResult[]): string {
  const us = (ns: number) => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);
  const lines = [
    '| group | operation | in flight | wall µs/op (median) | wall spread | CPU µs/op, all threads | main-thread µs/op |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const mainThread = r.mainNs === undefined ? '–' : us(r.mainNs);
    lines.push(
      `| ${r.group} | ${r.name} | ${r.inFlight} | ${us(r.wallNs)} | ${us(r.wallMinNs)}–${us(r.wallMaxNs)} | ${us(r.cpuNs)} | ${mainThread} |`,
    );
  }
  return lines.join('\n');
}

/**
 * Every case measured once per round, the order reversed every other round, so drift over the run
 * hits all cases alike. Results by case name, one per round.
 */
export async function measureAlternating(
  cases: readonly MicroCase[],
  rounds: number,
  options: MicroOptions,
): Promise<Map<string, MicroResult[]>> {
  const results = new Map<string, MicroResult[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) results.get(c.name)!.push(await measureCase(c, options));
  }
  return results;
}

/** One line per case: its median wall and CPU µs per operation over the rounds. */
export function writeCaseMedians(
  results: ReadonlyMap<string, readonly MicroResult[]>,
  options: { pad: number; digits: number },
): void {
  const us = (values: number[]) => (median(values) / 1000).toFixed(options.digits);
  for (const [name, rounds] of results) {
    process.stdout.write(
      `${name.padEnd(options.pad)} wall ${us(rounds.map((r) => r.wallNs))} µs/op  cpu ${us(rounds.map((r) => r.cpuNs))} µs/op\n`,
    );
  }
}

/**
 * Throughput of case `of` relative to case `against`: `against`'s time per operation over `of`'s,
 * per round (same process, same moment), then the median with the rounds' min–max.
 */
export function throughputRatio(
  results: ReadonlyMap<string, readonly MicroResult[]>,
  of: string,
  against: string,
  pick: (r: MicroResult) => number,
  digits = 2,
): string {
  const base = results.get(against)!;
  const per = results.get(of)!.map((r, i) => pick(base[i]!) / pick(r));
  return `${median(per).toFixed(digits)}x (rounds ${Math.min(...per).toFixed(digits)}–${Math.max(...per).toFixed(digits)})`;
}
