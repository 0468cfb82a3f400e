import { parseArgs } from 'node:util';

/** Settings of one `npm run bench` invocation. */
export interface BenchArgs {
  /** Patterns narrowing the set: a candidate stays when its id contains one or its framework equals one. */
  only: string[] | undefined;
  /** Candidate set run when `--only` is absent. Default `default`. */
  set: string;
  /** Measured seconds per run. Default 10 (1 with `--quick`). */
  duration: number;
  /** Unmeasured seconds of load before each measured run (JIT warm-up). Default 3 (0.5 with `--quick`). */
  warmup: number;
  /** Rounds; each round runs every candidate once, order reversed every other round. Default 3 (1 with `--quick`). */
  rounds: number;
  /**
   * Slices per run: each round starts every server, then measures `duration / slices` seconds of each
   * candidate in turn, `slices` times, the order reversed every slice; a candidate's slices are summed.
   * 1 = one whole run per candidate and round, a fresh server each. Default 5 (1 with `--quick` or `--profile`).
   */
  slices: number;
  /** autocannon connections. Default 50. */
  connections: number;
  /** autocannon pipelining factor. Default 1. */
  pipelining: number;
  /** Share of one core other processes may use during a run before it is flagged noisy. Default 0.1. */
  noisyShare: number;
  /** Extra attempts of a noisy run (or slice). Default 1 (0 with `--quick`). */
  retries: number;
  /** Longest wait for a quiet machine before each run, in seconds. Default 20 (0 with `--quick`). */
  quietWait: number;
  /** Run servers under `node --cpu-prof` and summarise the profiles. Default false. */
  profile: boolean;
  skipMicro: boolean;
  skipHttp: boolean;
  quick: boolean;
  /** Re-render the report of a saved run (`bench/out/results-*.json`) instead of measuring. */
  render: string | undefined;
  /** Report file. Default `bench/RESULTS.md` for a full run, `bench/out/RESULTS.partial.md` otherwise. */
  out: string | undefined;
  /**
   * Node binaries to run every selected candidate's server on, side by side in the same rounds
   * (ids get `@v22.23.3`, comparisons are made per binary). Default: the bench's own Node only.
   */
  nodes: string[] | undefined;
}

const HELP = `npm run bench -- [options]
  --only a,b        keep candidates of the set whose id contains a or b, or whose framework is a or b
                    (bare baselines are added)
  --set NAME        candidate set: default, express, peers, login, scale, diagnose, verify, otel, dpop, all (default: default)
  --duration S      measured seconds per run (default 10)
  --warmup S        unmeasured warm-up seconds per run (default 3)
  --rounds N        rounds, order reversed every other round (default 3)
  --slices N        measure each run as N interleaved slices of duration/N s, order reversed
                    every slice, all servers of a round up at once (default 5; 1 = a fresh
                    server per run; --profile forces 1)
  --connections N   autocannon -c (default 50)
  --pipelining N    autocannon -p (default 1)
  --noisy-share X   other processes' CPU (share of one core) that flags a run noisy (default 0.1)
  --retries N       extra attempts of a noisy run or slice (default 1)
  --quiet-wait S    longest wait for a quiet machine before each run (default 20)
  --profile         run servers with --cpu-prof and print the hottest functions
  --skip-micro      HTTP only
  --skip-http       micro-benchmarks only
  --quick           smoke: 1 round of 1 s, short micro batches
  --out FILE        report path (default bench/RESULTS.md for a full default run)
  --render JSON     rewrite the report of a saved run (bench/out/results-*.json) without measuring
  --nodes a,b       run each selected candidate's server on each of these node binaries, in the
                    same rounds; ratios are per binary (e.g. the Express guard on Node 20, 22, 24)`;

/** Parse `process.argv`; prints help and exits on `--help`. */
export function parseBenchArgs(argv = process.argv.slice(2)): BenchArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      set: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      slices: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      'noisy-share': { type: 'string' },
      retries: { type: 'string' },
      'quiet-wait': { type: 'string' },
      profile: { type: 'boolean', default: false },
      'skip-micro': { type: 'boolean', default: false },
      'skip-http': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      render: { type: 'string' },
      nodes: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const num = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
    return n;
  };
  return {
    only: values.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    set: values.set ?? 'default',
    duration: num('duration', values.duration, quick ? 1 : 10),
    warmup: num('warmup', values.warmup, quick ? 0.5 : 3),
    rounds: Math.max(1, Math.round(num('rounds', values.rounds, quick ? 1 : 3))),
    // A profile covers one whole measured window, so profiling measures whole runs.
    slices: values.profile ? 1 : Math.max(1, Math.round(num('slices', values.slices, quick ? 1 : 5))),
    connections: Math.max(1, Math.round(num('connections', values.connections, 50))),
    pipelining: Math.max(1, Math.round(num('pipelining', values.pipelining, 1))),
    noisyShare: num('noisy-share', values['noisy-share'], 0.1),
    retries: Math.round(num('retries', values.retries, quick ? 0 : 1)),
    quietWait: num('quiet-wait', values['quiet-wait'], quick ? 0 : 20),
    profile: values.profile ?? false,
    skipMicro: values['skip-micro'] ?? false,
    skipHttp: values['skip-http'] ?? false,
    quick,
    out: values.out,
    render: values.render,
    nodes: values.nodes
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}
