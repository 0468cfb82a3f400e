import type { BenchArgs } from './args.js';
import type { Candidate, Comparison } from './candidates.js';
import type { ChartRow } from './chart.js';
import type { RunMeasure } from './load.js';
import { microMarkdown, type MicroResult } from './micro-harness.js';
import { fmt, fmtSpread, median, spread } from './stats.js';
import type { MachineInfo } from './system.js';

/** One attempt of one candidate in one round. */
export interface RunRecord {
  candidate: string;
  round: number;
  /** Position in the round's order (1-based). */
  position: number;
  attempt: number;
  /** Whether the statistics use this attempt (the quietest measured one of a candidate in a round). */
  used: boolean;
  measure?: RunMeasure;
  /** Set when the run could not be measured (start-up, smoke check, load error). */
  error?: string;
  /** Other processes used more than the allowed share of a core during the run. */
  noisy: boolean;
  /** Share of one core other processes used just before the run (quiet wait sample). */
  preNoise?: number;
  info?: Record<string, string | number>;
}

/** Everything a report is made of. */
export interface BenchReport {
  startedAt: Date;
  finishedAt: Date;
  command: string;
  args: BenchArgs;
  machine: MachineInfo;
  candidates: readonly Candidate[];
  comparisons: readonly Comparison[];
  runs: readonly RunRecord[];
  micro?: readonly MicroResult[];
  microError?: string;
  /** Sections measured by other scripts (cold start, memory per token), already Markdown. */
  extras?: readonly ExtraSection[];
  profiles?: readonly string[];
  /**
   * The `--nodes` section to print when this run measured no node versions side by side (a full
   * run keeps the one bench/RESULTS.md had); a placeholder saying how to make one when absent.
   */
  nodesSection?: string | undefined;
}

/** One section of the report written by another script. */
export interface ExtraSection {
  title: string;
  intro: string;
  markdown: string;
}

const isUsable = (r: RunRecord, id: string) => r.used && r.candidate === id && !!r.measure && !r.error;

/** Per-round values of a metric for a candidate (used attempts with a measure only). */
function byRound(
  runs: readonly RunRecord[],
  id: string,
  pick: (m: RunMeasure) => number,
): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of runs) if (isUsable(r, id)) out.set(r.round, pick(r.measure!));
  return out;
}

/** Per-round `f(a, b)` for rounds where both candidates were measured. */
function paired(
  a: Map<number, number>,
  b: Map<number, number>,
  f: (x: number, y: number) => number,
): number[] {
  const out: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y !== undefined) out.push(f(x, y));
  }
  return out;
}

/** Summary of one comparison, as numbers (for the console and the JSON dump). */
export interface ComparisonResult {
  comparison: Comparison;
  ratios: number[];
  cpuRatios: number[];
  /** Median rps ratio ≥ target; `undefined` without a target. */
  pass: boolean | undefined;
  /** Median server-CPU ratio ≥ target (the steadier figure on a busy machine). */
  cpuPass: boolean | undefined;
}

/** Per-round rps ratios and server-CPU ratios of every comparison whose two ends ran. */
export function compare(report: Pick<BenchReport, 'runs' | 'comparisons'>): ComparisonResult[] {
  const results: ComparisonResult[] = [];
  for (const comparison of report.comparisons) {
    const rps = (id: string) => byRound(report.runs, id, (m) => m.rps);
    const cpu = (id: string) => byRound(report.runs, id, (m) => m.serverUsPerReq);
    const ratios = paired(rps(comparison.candidate), rps(comparison.baseline), (x, y) => x / y);
    if (ratios.length === 0) continue;
    const cpuRatios = paired(cpu(comparison.candidate), cpu(comparison.baseline), (x, y) => y / x);
    const target = comparison.target;
    const pass = target === undefined ? undefined : median(ratios) >= target;
    const cpuPass = target === undefined || cpuRatios.length === 0 ? undefined : median(cpuRatios) >= target;
    results.push({ comparison, ratios, cpuRatios, pass, cpuPass });
  }
  return results;
}

const ratio = (xs: readonly number[]) => fmtSpread(xs, 2);

const NODES_START = '<!-- nodes: written by a `--nodes` run (bench/run.ts), kept by full runs -->';
const NODES_END = '<!-- /nodes -->';
const NODES_TITLE = '## Node versions side by side (`--nodes`)';
const NODES_COMMAND =
  'npm run bench -- --only express-guard-memory --skip-micro --nodes "$(command -v node),/tmp/n22/node_modules/.bin/node,/tmp/n24/node_modules/.bin/node"';
export const NODES_PLACEHOLDER = [
  NODES_START,
  NODES_TITLE,
  '',
  `No \`--nodes\` run recorded yet. Install Node 22 and 24 from the npm registry (\`npm install --prefix /tmp/n22 node@22\`, the same for 24; see docs/RUNTIMES.md), then \`${NODES_COMMAND}\` writes the Express guard's ratios on each version here.`,
  NODES_END,
];

/**
 * The ratios of a `--nodes` run side by side, one column per node version (empty without one):
 * for each comparison, its requests/s and server-CPU ratios.
 */
export function nodesMarkdown(
  report: Pick<BenchReport, 'runs' | 'comparisons' | 'command' | 'startedAt' | 'args'>,
): string[] {
  const results = compare(report).filter((c) => c.comparison.node);
  if (results.length === 0) return [];
  const versions = [...new Set(results.map((c) => c.comparison.node!.version))];
  const labels = [...new Set(results.map((c) => c.comparison.node!.of))];
  const cell = (of: string, version: string, pick: (c: ComparisonResult) => number[]) => {
    const found = results.find((c) => c.comparison.node!.of === of && c.comparison.node!.version === version);
    return found && pick(found).length > 0 ? ratio(pick(found)) : '–';
  };
  const used = report.runs.filter((r) => r.used && r.measure && !r.error);
  const noisy = used.filter((r) => r.noisy).length;
  const out = [
    NODES_START,
    NODES_TITLE,
    '',
    `\`${report.command}\`, ${report.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: ` +
      `${report.args.rounds} round(s) of ${report.args.duration} s, every version's servers in the same rounds; ` +
      `${noisy} of ${used.length} runs used were noisy. Ratios: median (min–max) over rounds.`,
    '',
    `| comparison | ratio | ${versions.map((v) => `Node ${v}`).join(' | ')} | target |`,
    `|---|---|${versions.map(() => '---:').join('|')}|---:|`,
  ];
  for (const of of labels) {
    const target = results.find((c) => c.comparison.node!.of === of)!.comparison.target;
    const goal = target === undefined ? '–' : `≥ ${fmt(target, 2)}`;
    out.push(
      `| ${of} | requests/s | ${versions.map((v) => cell(of, v, (c) => c.ratios)).join(' | ')} | ${goal} |`,
      `| ${of} | server CPU per request | ${versions.map((v) => cell(of, v, (c) => c.cpuRatios)).join(' | ')} | ${goal} |`,
    );
  }
  out.push(NODES_END);
  return out;
}

/** The `--nodes` section of a report's text (`''` when it has the markers' placeholder), or `undefined`. */
export function nodesSectionOf(text: string): string | undefined {
  const start = text.indexOf(NODES_START);
  const end = text.indexOf(NODES_END, start);
  if (start < 0 || end < 0) return undefined;
  const section = text.slice(start, end + NODES_END.length);
  return section === NODES_PLACEHOLDER.join('\n') ? '' : section;
}

/** `text` with its `--nodes` section replaced by `section` (added before "## Every run" when it has none). */
export function withNodesSection(text: string, section: string): string {
  const start = text.indexOf(NODES_START);
  const end = text.indexOf(NODES_END, start);
  if (start >= 0 && end >= 0) return text.slice(0, start) + section + text.slice(end + NODES_END.length);
  const at = text.indexOf('## Every run');
  return at < 0 ? `${text.trimEnd()}\n\n${section}\n` : `${text.slice(0, at)}${section}\n\n${text.slice(at)}`;
}

/** The chart rows of the comparisons that ran (medians and spreads of the rps ratios). */
export function chartRows(report: Pick<BenchReport, 'runs' | 'comparisons'>): ChartRow[] {
  return compare(report).map((c) => {
    const [min, max] = spread(c.ratios);
    return { label: c.comparison.label, median: median(c.ratios), min, max, target: c.comparison.target };
  });
}

/** Render the Markdown report; `chart` is the path of the ratio chart (SVG) relative to the report. */
export function renderReport(report: BenchReport, chart?: string): string {
  const { args, machine, runs } = report;
  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push(
    `Generated by \`${report.command}\` (\`bench/run.ts\`) on ${report.startedAt.toISOString()}, ` +
      `took ${fmt((report.finishedAt.getTime() - report.startedAt.getTime()) / 60_000, 1)} min. ` +
      'Numbers are medians over rounds with (min–max) spreads; ratios are taken per round against the ' +
      'baseline measured in the same round, then the median is reported.',
    '',
  );

  const comparisons = compare(report);
  if (comparisons.length > 0) {
    out.push('## Targets and ratios', '');
    const used = runs.filter((r) => r.used && r.measure && !r.error);
    const noisy = used.filter((r) => r.noisy).length;
    if (noisy * 2 > used.length) {
      out.push(
        `> **Busy machine:** ${noisy} of ${used.length} runs used were noisy (other processes above ` +
          `${args.noisyShare} core). Request rates then depend on what else ran at the time; read the ` +
          "server-CPU ratios, which count only the server's own work, and rerun on a quiet machine.",
        '',
      );
    }
    out.push(
      '| comparison | target | rps ratio, median (min–max) | verdict (rps) | server-CPU ratio (baseline µs/req ÷ candidate µs/req) | verdict (CPU) |',
      '|---|---:|---:|---|---:|---|',
    );
    const verdict = (pass: boolean | undefined, values: number[], target: number | undefined) => {
      if (pass === undefined || target === undefined) return 'info';
      const partly = pass && spread(values)[0] < target ? ' (not in every round)' : '';
      return `${pass ? '**met**' : '**MISSED**'}${partly}`;
    };
    for (const c of comparisons) {
      const target = c.comparison.target;
      out.push(
        `| ${c.comparison.label} | ${target === undefined ? '–' : `≥ ${fmt(target, 2)}× (${c.comparison.source ?? ''})`} | ${ratio(c.ratios)} | ${verdict(c.pass, c.ratios, target)} | ${ratio(c.cpuRatios)} | ${verdict(c.cpuPass, c.cpuRatios, target)} |`,
      );
    }
    out.push('');
    if (chart) out.push(`![The requests/s ratios above as bars: median, min–max, target](${chart})`, '');
  }

  const nodes = nodesMarkdown(report);
  if (nodes.length > 0) out.push(...nodes, '');
  else if (report.nodesSection !== undefined)
    out.push(report.nodesSection || NODES_PLACEHOLDER.join('\n'), '');

  out.push(...storeRoundTripsMarkdown(runs));

  const measured = report.candidates.filter((c) => runs.some((r) => r.candidate === c.id));
  if (measured.length > 0) {
    out.push('## HTTP candidates', '');
    out.push(
      `autocannon \`-c ${args.connections} -d ${args.duration} -p ${args.pipelining}\` on 127.0.0.1, ` +
        `${args.warmup} s unmeasured warm-up per server, ${args.rounds} round(s), ` +
        ((args.slices ?? 1) > 1
          ? `each run measured as ${args.slices} interleaved slices of ${fmt(args.duration / args.slices!, 1)} s ` +
            '(fresh servers every round)' +
            (measured.some((c) => c.alone)
              ? `, except ${measured
                  .filter((c) => c.alone)
                  .map((c) => c.id)
                  .join(', ')}: whole runs after the sliced ones, each on a fresh server alone ` +
                '(an idle server holding a million records runs major GCs of that heap on the cores the ' +
                'measured candidate uses).'
              : '.')
          : 'a fresh server process per run.'),
      '',
    );
    out.push(
      '| candidate | req/s | p50 ms | p99 ms | server CPU µs/req | extra server CPU µs/req over bare | runs used (noisy) |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const c of measured) {
      const used = runs.filter((r) => isUsable(r, c.id));
      const m = used.map((r) => r.measure!);
      const extra =
        c.id === c.bare
          ? '–'
          : fmtSpread(
              paired(
                byRound(runs, c.id, (x) => x.serverUsPerReq),
                byRound(runs, c.bare, (x) => x.serverUsPerReq),
                (x, y) => x - y,
              ),
              0,
            );
      const failed = runs.find((r) => r.candidate === c.id && r.error);
      const label = failed && m.length === 0 ? `${c.label} — **failed**: ${failed.error}` : c.label;
      out.push(
        `| ${label} | ${fmtSpread(
          m.map((x) => x.rps),
          0,
        )} | ${fmtSpread(
          m.map((x) => x.p50),
          1,
        )} | ${fmtSpread(
          m.map((x) => x.p99),
          1,
        )} | ${fmtSpread(
          m.map((x) => x.serverUsPerReq),
          0,
        )} | ${extra} | ${used.length} (${used.filter((r) => r.noisy).length}) |`,
      );
    }
    out.push('');
  }

  if (report.micro || report.microError) {
    out.push('## Micro-benchmarks', '');
    if (report.microError) out.push(`Micro-benchmarks failed: ${report.microError}`, '');
    if (report.micro) {
      out.push(
        'One operation in a loop (`bench/micro.ts`): warm-up, then batches of ~60 ms timed with ' +
          '`process.hrtime.bigint()` and `process.cpuUsage()` (all threads); medians over batches. ' +
          '"in flight 32" keeps 32 async operations outstanding.',
        '',
        microMarkdown(report.micro),
        '',
      );
    }
  }

  for (const extra of report.extras ?? [])
    out.push(`## ${extra.title}`, '', extra.intro, '', extra.markdown, '');

  if (runs.length > 0) {
    out.push('## Every run', '');
    out.push(
      `Cores = share of one core over the run. "others" = machine busy time from /proc/stat minus client, server and ` +
        `the local PostgreSQL, Redis and MariaDB servers ("store server", a store candidate's own cost); a run is flagged noisy above ${args.noisyShare} core, and retried up to ${args.retries} time(s).`,
      '',
      '| round | # | candidate | attempt | req/s | p50 ms | p99 ms | server µs/req | server cores | client cores | store server cores | others cores | notes |',
      '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const r of runs) {
      const m = r.measure;
      const notes = [
        r.used ? '' : 'not used',
        r.noisy ? 'noisy' : '',
        m && m.non2xx > 0 ? `${m.non2xx} non-2xx` : '',
        m && m.errors > 0 ? `${m.errors} errors` : '',
        r.error ? `error: ${r.error}` : '',
        r.info
          ? Object.entries(r.info)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')
          : '',
      ]
        .filter(Boolean)
        .join('; ');
      out.push(
        `| ${r.round + 1} | ${r.position} | ${r.candidate} | ${r.attempt + 1} | ${m ? fmt(m.rps) : '–'} | ${
          m ? fmt(m.p50, 1) : '–'
        } | ${m ? fmt(m.p99, 1) : '–'} | ${m ? fmt(m.serverUsPerReq) : '–'} | ${m ? fmt(m.serverCores, 2) : '–'} | ${
          m ? fmt(m.clientCores, 2) : '–'
        } | ${m ? fmt(m.storeCores ?? 0, 2) : '–'} | ${m?.otherCores !== undefined ? fmt(m.otherCores, 2) : '–'} | ${notes} |`,
      );
    }
    out.push('');
  }

  if (report.profiles && report.profiles.length > 0) {
    out.push('## CPU profiles (`--profile`; profiled runs are slower, use them for shares only)', '');
    out.push(...report.profiles, '');
  }

  out.push('## Machine', '');
  out.push(
    `- CPU: ${machine.cpuModel}, ${machine.cores} cores; memory ${fmt(machine.memoryGiB, 1)} GiB ` +
      `(${fmt(machine.freeMemoryGiB, 1)} GiB free at start); ${machine.os}; load average at start ${machine.loadAverage}`,
    `- Node ${machine.node}`,
    `- Packages: ${Object.entries(machine.packages)
      .filter(([, v]) => v !== '?')
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    '',
  );
  out.push('## Method', '');
  out.push(
    "- Each run starts the candidate's server (`bench/servers/*.ts`) in its own `node --import tsx` process, " +
      'checks it (the real request answers 200; no token and a forged token answer 401; logins: forged IdP ' +
      'token 401, missing jwt 422), loads it unmeasured for the warm-up, then measures with autocannon in the runner process.',
    '- Candidates alternate within a round and the order is reversed every other round, so drift hits all alike. ' +
      'With `--slices N` (default 5) every server of a round is started and warmed first, then each candidate is ' +
      'measured N times for duration/N seconds in turn, the order reversed every pass, and its slices are summed: ' +
      'drift slower than a slice (this VM host shows ±15% swings over minutes that no process here accounts for) ' +
      "then hits all candidates alike. p50/p99 of a sliced run are the medians of its slices' values.",
    '- Server CPU per request comes from `process.cpuUsage()` in the server (read through `GET /__cpu` before and ' +
      'after the run) divided by the requests it served. On 2 cores client and server compete, so "extra server ' +
      'CPU per request over bare" and the server-CPU ratio are the steadiest figures.',
    '- Before each run the runner waits (up to the quiet-wait limit) until other processes use less than the noisy share of a core.',
    '- Micro-benchmarks report wall time, CPU of all threads and main-thread time (event-loop utilisation) per ' +
      "operation: the last is what an operation takes from a server's one JS thread when thread-pool work overlaps.",
    '- Reproduce: `npm run bench` (full, ~7 min); `npm run bench -- --quick` (smoke); `npm run bench -- --only login ' +
      '--rounds 5 --slices 10`; `npm run bench -- --set diagnose` (what the guard costs, piece by piece); ' +
      '`npm run bench -- --set scale`; `npm run bench -- --only login --profile` (CPU profile of the measured window); ' +
      '`tsx bench/micro.ts --only auth.login --profile`.',
    '',
  );
  return out.join('\n');
}

/**
 * Issue 4's "one guarded request makes exactly one round trip to the store": the per-request counts the
 * store servers (`servers/express-guard.ts` with `BENCH_STORE=redis|postgres|mariadb`) measure at start-up and report in `info`, one row per
 * candidate with the values of every run (empty when no run reported them).
 */
export function storeRoundTripsMarkdown(runs: readonly RunRecord[]): string[] {
  const byCandidate = new Map<string, { client: number[]; server: number[] }>();
  for (const r of runs) {
    const client = r.info?.storeRoundTripsPerRequest;
    if (typeof client !== 'number') continue;
    const row = byCandidate.get(r.candidate) ?? { client: [], server: [] };
    row.client.push(client);
    const server = r.info?.evalshaPerRequest ?? r.info?.updatesPerRequest;
    if (typeof server === 'number') row.server.push(server);
    byCandidate.set(r.candidate, row);
  }
  if (byCandidate.size === 0) return [];
  const list = (xs: number[]) => (xs.length === 0 ? '–' : [...new Set(xs.map((x) => fmt(x, 3)))].join(', '));
  const out = [
    '## Store round trips per guarded request (target: one, never more; issue 4)',
    '',
    'Counted by each store server before it starts answering the harness: warm-up, then a few hundred guarded ' +
      'requests through the same app. Client side = ioredis commands sent / pg `client.query` calls / mysql2 ' +
      '`query` calls; server side = `INFO commandstats` EVALSHA calls delta, or for MariaDB the `Com_update` ' +
      'delta (each call of the example store carries one UPDATE; other clients of a shared server can only ' +
      'raise either). ' +
      'Distinct values over all runs. The probe sends 10 requests at a time on one token: the Redis store sends ' +
      'the uses that arrive in one event-loop turn as one script call, and the PostgreSQL store sends uses of ' +
      'one token that arrive while its statement runs as one next statement (the MariaDB example does the ' +
      'same), so they make fewer.',
    '',
    '| candidate | client side | server side (Redis EVALSHA, MariaDB UPDATE) | verdict |',
    '|---|---:|---:|---|',
  ];
  for (const [id, row] of byCandidate) {
    const atMostOne = row.client.every((x) => x > 0 && x <= 1) && row.server.every((x) => x <= 1);
    out.push(
      `| ${id} | ${list(row.client)} | ${list(row.server)} | ${atMostOne ? '**met**' : '**MISSED**'} |`,
    );
  }
  out.push('');
  return out;
}
