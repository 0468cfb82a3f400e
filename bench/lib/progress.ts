/**
 * Progress of `npm run bench` on stderr (stdout keeps the per-run lines): which candidate, which
 * round and slice, time spent and an estimate of the time left for the HTTP runs, from the
 * planned measuring seconds scaled by how long the finished ones really took (start-up, quiet
 * waits and retries included).
 */
export class Progress {
  private readonly startedAt = Date.now();
  private plannedDone = 0;

  constructor(
    /** Planned seconds of load (warm-ups and measured windows) of every HTTP step. */
    private readonly plannedTotal: number,
    private readonly write: (line: string) => void = (line) => void process.stderr.write(`${line}\n`),
  ) {}

  /** Announce a step about to take `plannedSeconds` of load. */
  step(what: string, plannedSeconds: number): void {
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const left = this.plannedTotal - this.plannedDone;
    // Real seconds per planned second so far; before the first step, the plan itself.
    const pace = this.plannedDone > 0 ? elapsed / this.plannedDone : 1;
    const estimate = this.plannedTotal > 0 ? `, ~${clock(left * pace)} left` : '';
    this.write(`[bench ${clock(elapsed)}${estimate}] ${what}`);
    this.plannedDone += plannedSeconds;
  }

  /** A phase without a plan (micro-benchmarks, extras): elapsed time only. */
  phase(what: string): void {
    this.write(`[bench ${clock((Date.now() - this.startedAt) / 1000)}] ${what}`);
  }
}

/** `1h02m`, `12m05s` or `9s`. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** Planned seconds of load of the HTTP runs: every candidate warmed up and measured once a round. */
export function plannedSeconds(
  candidates: number,
  a: { rounds: number; warmup: number; duration: number },
): number {
  return a.rounds * candidates * (a.warmup + a.duration);
}
