/**
 * `npm run bench`: HTTP candidates under autocannon (each server in its own process, alternating
 * order, several rounds) and micro-benchmarks, written to `bench/RESULTS.md`. See `--help`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, type BenchArgs } from './lib/args.js';
import { COMPARISONS, selectCandidates, type Candidate, type Comparison } from './lib/candidates.js';
import { ratioChartSvg } from './lib/chart.js';
import { startServer, type ServerProcess } from './lib/child.js';
import { combineMeasures, measure, smokeCheck, warmUp, type RunMeasure } from './lib/load.js';
import type { MicroResult } from './lib/micro-harness.js';
import { profileMarkdown, summariseProfile } from './lib/profile.js';
import { Progress, plannedSeconds } from './lib/progress.js';
import {
  chartRows,
  compare,
  nodesMarkdown,
  nodesSectionOf,
  renderReport,
  withNodesSection,
  type BenchReport,
  type ExtraSection,
  type RunRecord,
} from './lib/report.js';
import { fmt, median } from './lib/stats.js';
import { idleNoise, machineInfo } from './lib/system.js';

const BENCH = fileURLToPath(new URL('./', import.meta.url));
const OUT = `${BENCH}out/`;

const args = parseBenchArgs();
const startedAt = new Date();
const machine = machineInfo();
/** With `--nodes`: every candidate and comparison once per node binary, ids suffixed `@<version>`. */
function perNode(
  selected: readonly Candidate[],
  comparisons: readonly Comparison[],
  nodes: readonly string[] | undefined,
): { candidates: Candidate[]; comparisons: Comparison[] } {
  if (!nodes || nodes.length === 0) return { candidates: [...selected], comparisons: [...comparisons] };
  const versions = nodes.map((bin) => ({ bin, version: execFileSync(bin, ['--version']).toString().trim() }));
  return {
    candidates: versions.flatMap(({ bin, version }) =>
      selected.map((c) => ({
        ...c,
        id: `${c.id}@${version}`,
        label: `${c.label}, Node ${version}`,
        bare: `${c.bare}@${version}`,
        node: bin,
      })),
    ),
    comparisons: versions.flatMap(({ version }) =>
      comparisons.map((k) => ({
        ...k,
        label: `${k.label}, Node ${version}`,
        candidate: `${k.candidate}@${version}`,
        baseline: `${k.baseline}@${version}`,
        node: { version, of: k.label },
      })),
    ),
  };
}

const matrix = perNode(args.skipHttp ? [] : selectCandidates(args.only, args.set), COMPARISONS, args.nodes);
const candidates = matrix.candidates;
const comparisons = matrix.comparisons;
const progress = new Progress(plannedSeconds(candidates.length, args));
const fullRun =
  !args.only && args.set === 'default' && !args.quick && !args.profile && !args.skipHttp && !args.skipMicro;
const outFile = args.out ?? (fullRun ? `${BENCH}RESULTS.md` : `${OUT}RESULTS.partial.md`);
mkdirSync(`${OUT}profiles`, { recursive: true });

const log = (line: string) => process.stdout.write(`${line}\n`);
/** The chart beside a report: `RESULTS.svg` next to `RESULTS.md`. */
const chartFile = (report: string) => report.replace(/(\.md)?$/, '.svg');
const chartTitle = (r: Pick<BenchReport, 'command' | 'startedAt'>) =>
  `${r.command}, ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: requests/s ratios`;

/** Wait until other processes are quiet (or the limit passed); returns the last noise sample. */
async function waitQuiet(a: BenchArgs): Promise<number | undefined> {
  if (a.quietWait <= 0) return undefined;
  const end = Date.now() + a.quietWait * 1000;
  let noise: number | undefined;
  do {
    noise = await idleNoise(1000);
    if (noise === undefined || noise <= a.noisyShare) return noise;
  } while (Date.now() < end);
  log(`  machine still busy (${fmt(noise, 2)} core used by others); measuring anyway`);
  return noise;
}

function profilePath(id: string, round: number, attempt: number): string {
  return `${OUT}profiles/${id}-r${round + 1}-a${attempt + 1}.cpuprofile`;
}

async function runOnce(c: Candidate, round: number, position: number, attempt: number): Promise<RunRecord> {
  const record: RunRecord = { candidate: c.id, round, position, attempt, used: true, noisy: false };
  record.preNoise = await waitQuiet(args);
  const profileFile = profilePath(c.id, round, attempt);
  if (args.profile) rmSync(profileFile, { force: true });
  let server: ServerProcess | undefined;
  try {
    progress.step(`round ${round + 1}/${args.rounds}: ${c.id} (whole run)`, args.warmup + args.duration);
    server = await startServer({
      server: c.server,
      env: args.profile ? { ...c.env, BENCH_PROFILE_FILE: profileFile } : c.env,
      execPath: c.node,
    });
    record.info = server.spec.info;
    const failures = await smokeCheck(server.url, server.spec.smoke);
    if (failures.length > 0) throw new Error(`smoke check failed: ${failures.join('; ')}`);
    const load = { connections: args.connections, pipelining: args.pipelining };
    await warmUp(server.url, server.spec.request, { ...load, duration: args.warmup });
    const m = await measure(server.url, server.spec.request, {
      ...load,
      duration: args.duration,
      profile: args.profile,
    });
    record.measure = m;
    record.noisy = m.otherCores !== undefined && m.otherCores > args.noisyShare;
    if (m.requests === 0) throw new Error('no 2xx answers under load');
    if (m.non2xx + m.errors > m.requests * 0.001) {
      throw new Error(`${m.non2xx} non-2xx answers and ${m.errors} errors under load`);
    }
  } catch (error) {
    record.error = (error as Error).message.split('\n')[0]!.slice(0, 300);
    log(`  ${c.id}: ${(error as Error).message}`);
  } finally {
    await server?.stop();
  }
  return record;
}

interface LiveServer {
  candidate: Candidate;
  server: ServerProcess;
  record: RunRecord;
  parts: RunMeasure[];
}

/** Start, smoke-check and warm a candidate's server for a sliced round; `undefined` (and a failed record) on error. */
async function bringUp(
  c: Candidate,
  round: number,
  position: number,
  runs: RunRecord[],
): Promise<LiveServer | undefined> {
  const record: RunRecord = { candidate: c.id, round, position, attempt: 0, used: true, noisy: false };
  let server: ServerProcess | undefined;
  try {
    progress.step(`round ${round + 1}/${args.rounds}: starting ${c.id}`, 0);
    server = await startServer({ server: c.server, env: c.env, execPath: c.node });
    record.info = server.spec.info;
    const failures = await smokeCheck(server.url, server.spec.smoke);
    if (failures.length > 0) throw new Error(`smoke check failed: ${failures.join('; ')}`);
    return { candidate: c, server, record, parts: [] };
  } catch (error) {
    await server?.stop();
    record.error = (error as Error).message.split('\n')[0]!.slice(0, 300);
    log(`  ${c.id}: ${(error as Error).message}`);
    runs.push(record);
    return undefined;
  }
}

/**
 * One round in slices: every server up at once, warmed, then `slices` passes over the candidates
 * (order reversed every pass), each measuring `duration / slices` seconds; noisy slices are retried.
 */
async function runRoundSliced(
  round: number,
  order: readonly Candidate[],
  runs: RunRecord[],
  broken: Set<string>,
) {
  const live: LiveServer[] = [];
  const load = { connections: args.connections, pipelining: args.pipelining };
  try {
    for (const c of order) {
      if (broken.has(c.id)) continue;
      const up = await bringUp(c, round, live.length + 1, runs);
      if (up) live.push(up);
      else broken.add(c.id);
    }
    for (const l of live) {
      progress.step(`round ${round + 1}/${args.rounds}: warming up ${l.candidate.id}`, args.warmup);
      await warmUp(l.server.url, l.server.spec.request, { ...load, duration: args.warmup });
    }
    const sliceSeconds = args.duration / args.slices;
    for (let k = 0; k < args.slices; k++) {
      const pass = k % 2 === 0 ? live : [...live].reverse();
      for (const l of pass) {
        if (l.record.error) continue;
        progress.step(
          `round ${round + 1}/${args.rounds}, slice ${k + 1}/${args.slices}: ${l.candidate.id}`,
          sliceSeconds,
        );
        let best: RunMeasure | undefined;
        for (let attempt = 0; attempt <= args.retries; attempt++) {
          await waitQuiet(args);
          try {
            const m = await measure(l.server.url, l.server.spec.request, { ...load, duration: sliceSeconds });
            if (!best || (m.otherCores ?? 0) < (best.otherCores ?? 0)) best = m;
            if (m.otherCores === undefined || m.otherCores <= args.noisyShare) break;
          } catch (error) {
            l.record.error = (error as Error).message.split('\n')[0]!.slice(0, 300);
            break;
          }
        }
        if (best) l.parts.push(best);
      }
    }
  } finally {
    await Promise.all(live.map((l) => l.server.stop()));
  }
  for (const l of live) {
    const record = l.record;
    if (l.parts.length > 0) {
      const m = combineMeasures(l.parts);
      record.measure = m;
      record.noisy = m.otherCores !== undefined && m.otherCores > args.noisyShare;
      if (!record.error && m.requests === 0) record.error = 'no 2xx answers under load';
      if (!record.error && m.non2xx + m.errors > m.requests * 0.001) {
        record.error = `${m.non2xx} non-2xx answers and ${m.errors} errors under load`;
      }
    }
    runs.push(record);
    log(`  ${describeRun(record)}${record.error ? `  error: ${record.error}` : ''}`);
  }
}

function describeRun(r: RunRecord): string {
  const m = r.measure;
  if (!m) return `${r.candidate}: failed`;
  return (
    `${r.candidate.padEnd(36)} ${fmt(m.rps).padStart(7)} req/s  p50 ${fmt(m.p50, 1)} ms  p99 ${fmt(m.p99, 1)} ms  ` +
    `server ${fmt(m.serverUsPerReq)} µs/req  cores s/c/db/o ${fmt(m.serverCores, 2)}/${fmt(m.clientCores, 2)}/${fmt(
      m.storeCores ?? 0,
      2,
    )}/${m.otherCores === undefined ? '?' : fmt(m.otherCores, 2)}${r.noisy ? '  NOISY' : ''}`
  );
}

async function runHttp(): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  const broken = new Set<string>();
  for (let round = 0; round < args.rounds; round++) {
    const order = round % 2 === 0 ? candidates : [...candidates].reverse();
    log(`round ${round + 1}/${args.rounds}: ${order.map((c) => c.id).join(' → ')}`);
    // Candidates marked `alone` (million-record servers) run whole, after the sliced ones.
    const sliced = args.slices > 1 ? order.filter((c) => !c.alone) : [];
    if (sliced.length > 0) await runRoundSliced(round, sliced, runs, broken);
    let position = sliced.length;
    for (const c of args.slices > 1 ? order.filter((c) => c.alone) : order) {
      if (broken.has(c.id)) continue;
      position++;
      const attempts: RunRecord[] = [];
      for (let attempt = 0; attempt <= args.retries; attempt++) {
        const record = await runOnce(c, round, position, attempt);
        attempts.push(record);
        runs.push(record);
        log(`  ${describeRun(record)}`);
        if (record.error && !record.measure) {
          if (record.error.startsWith('smoke') || attempt === args.retries) broken.add(c.id);
          break;
        }
        if (!record.noisy) break;
      }
      // Keep the quietest measured attempt of this candidate in this round.
      const measured = attempts.filter((r) => r.measure && !r.error);
      const best = measured.sort((a, b) => (a.measure!.otherCores ?? 0) - (b.measure!.otherCores ?? 0))[0];
      for (const r of attempts) r.used = r === (best ?? attempts.at(-1));
    }
  }
  return runs;
}

function runMicro(): Promise<MicroResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', `${BENCH}micro.ts`, '--json', ...(args.quick ? ['--quick'] : [])],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('[')) return reject(new Error(`micro.ts exited ${code}`));
      resolve(JSON.parse(last) as MicroResult[]);
    });
  });
}

/** Runs `node <nodeArgs> --import tsx bench/<script> <scriptArgs>` and returns its stdout (Markdown). */
function runScript(script: string, scriptArgs: string[], nodeArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...nodeArgs, '--import', 'tsx', `${BENCH}${script}`, ...scriptArgs],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(stdout.trim()) : reject(new Error(`${script} exited ${code}`)),
    );
  });
}

/** The non-HTTP sections of a full run: cold-start fetch counts and memory per live token. */
async function runExtras(): Promise<ExtraSection[]> {
  const jobs: [string, string, () => Promise<string>][] = [
    [
      'Cold start and key rotation',
      'A fresh engine meets a burst of concurrent logins against a loopback IdP (`npx tsx bench/coldstart.ts`): ' +
        'IdP fetches counted by the IdP, latency per login.',
      () => runScript('coldstart.ts', ['--logins', args.quick ? '50' : '200']),
    ],
    [
      'Memory per live token',
      'Heap per token after `gc()`, each size in a fresh process, and Redis `MEMORY USAGE` ' +
        '(`node --expose-gc --import tsx bench/memory.ts`; see docs/STORES.md for the breakdown).',
      () =>
        runScript(
          'memory.ts',
          ['--sizes', args.quick ? '1000,10000' : '1000,100000,1000000'],
          ['--expose-gc'],
        ),
    ],
  ];
  const sections: ExtraSection[] = [];
  for (const [title, intro, job] of jobs) {
    progress.phase(title.toLowerCase());
    log(`${title.toLowerCase()}…`);
    await waitQuiet(args);
    try {
      sections.push({ title, intro, markdown: await job() });
    } catch (error) {
      sections.push({ title, intro, markdown: `Failed: ${(error as Error).message}` });
    }
  }
  return sections;
}

function printSummary(report: BenchReport): void {
  for (const c of compare(report)) {
    const target = c.comparison.target;
    const mark = (pass: boolean | undefined) => (pass === undefined ? '' : pass ? ' met' : ' MISSED');
    log(
      `${c.comparison.label.padEnd(48)} rps ${fmt(median(c.ratios), 2)}x${mark(c.pass)}  ` +
        `CPU ${fmt(median(c.cpuRatios), 2)}x${mark(c.cpuPass)}${target ? `  (target ≥ ${fmt(target, 2)})` : ''}`,
    );
  }
}

/** Write the report and its ratio chart beside it (no chart when no comparison ran). */
/** The `--nodes` section of the committed bench/RESULTS.md, if it has one. */
function savedNodesSection(): string | undefined {
  const file = `${BENCH}RESULTS.md`;
  return existsSync(file) ? nodesSectionOf(readFileSync(file, 'utf8')) : undefined;
}

/**
 * After a `--nodes` run without `--out`: its side-by-side table replaces the `--nodes` section of
 * bench/RESULTS.md (a full run keeps that section as it is).
 */
function saveNodesSection(report: BenchReport): string | undefined {
  const file = `${BENCH}RESULTS.md`;
  const section = nodesMarkdown(report);
  if (section.length === 0 || !existsSync(file)) return undefined;
  writeFileSync(file, withNodesSection(readFileSync(file, 'utf8'), section.join('\n')));
  return file;
}

function writeReport(report: BenchReport, file: string): void {
  const rows = chartRows(report);
  const svg = chartFile(file);
  if (rows.length > 0) writeFileSync(svg, ratioChartSvg(rows, chartTitle(report)));
  writeFileSync(file, renderReport(report, rows.length > 0 ? svg.split('/').at(-1) : undefined));
}

if (args.render) {
  // Re-render a saved run (bench/out/results-*.json) with the current report code.
  const saved = JSON.parse(readFileSync(args.render, 'utf8')) as BenchReport & { outFile?: string };
  const report: BenchReport = {
    ...saved,
    startedAt: new Date(saved.startedAt),
    finishedAt: new Date(saved.finishedAt),
    // A run over several node binaries saved its per-binary comparisons.
    comparisons: saved.args.nodes ? saved.comparisons : COMPARISONS,
  };
  const file = args.out ?? saved.outFile ?? `${OUT}RESULTS.partial.md`;
  writeReport(report, file);
  printSummary(report);
  log(`report: ${file}`);
  process.exit(0);
}

const runs = candidates.length > 0 ? await runHttp() : [];
let micro: MicroResult[] | undefined;
let microError: string | undefined;
if (!args.skipMicro) {
  progress.phase('micro-benchmarks');
  log('micro-benchmarks…');
  await waitQuiet(args);
  try {
    micro = await runMicro();
  } catch (error) {
    microError = (error as Error).message;
  }
}
const extras = args.skipMicro ? undefined : await runExtras();
let profiles: string[] | undefined;
if (args.profile) {
  profiles = [];
  for (const r of runs) {
    if (!r.measure) continue;
    const file = profilePath(r.candidate, r.round, r.attempt);
    if (existsSync(file)) {
      profiles.push(
        profileMarkdown(`${r.candidate}, round ${r.round + 1}`, summariseProfile(file), r.measure.requests),
      );
    }
  }
}

const report: BenchReport = {
  startedAt,
  finishedAt: new Date(),
  command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
  args,
  machine,
  candidates,
  comparisons,
  runs,
  micro,
  microError,
  extras,
  profiles,
  ...(outFile === `${BENCH}RESULTS.md` && { nodesSection: savedNodesSection() ?? '' }),
};
writeReport(report, outFile);
const nodesFile = args.nodes && !args.out ? saveNodesSection(report) : undefined;
if (nodesFile) log(`Node versions side by side: ${nodesFile}`);
const json = `${OUT}results-${startedAt.toISOString().replaceAll(':', '-')}.json`;
writeFileSync(json, JSON.stringify({ ...report, outFile }, null, 2));
printSummary(report);
if (profiles) for (const p of profiles) log(p);
log(`report: ${outFile}, chart ${chartFile(outFile)} (raw data: ${json})`);
