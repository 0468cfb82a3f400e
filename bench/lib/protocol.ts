/** One HTTP request a benchmark sends (the measured request, or a smoke check). */
export interface BenchRequest {
  method: 'GET' | 'POST';
  /** Path and query, e.g. `/hello`. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * Under load, each request takes the `authorization` header of one of these, picked at random
   * (requests spread over many tokens); `headers` is used for the smoke check and the warm-up.
   */
  authorizations?: string[];
  /**
   * DPoP (RFC 9449): under load each request carries a `DPoP` header with a proof of its own (fresh
   * `jti`, made by the client before the run with this key, `ath` of this token); `headers` (one
   * proof) is used for the smoke check.
   */
  dpop?: { privateJwk: import('node:crypto').JsonWebKey; token: string };
}

/** A request sent once before measuring, with the status it must get. */
export interface SmokeCase {
  name: string;
  request: BenchRequest;
  status: number;
  /** A substring the answer body must contain. */
  bodyIncludes?: string;
}

/** What a bench server prints as its single stdout JSON line once it listens. */
export interface ServerSpec {
  port: number;
  /** The request autocannon repeats. It must answer 2xx. */
  request: BenchRequest;
  /** Checked before every run: typically the real request (200), no token (401), a forged token (401). */
  smoke: SmokeCase[];
  /** Parameters worth reporting (identities, live tokens, store). */
  info?: Record<string, string | number>;
}

/** Path of the control request answered outside the app: cumulative CPU and request count. */
export const CONTROL_PATH = '/__cpu';

/**
 * Control paths that start and stop a V8 CPU profile of the server's main thread (measured window
 * only); stop writes it to the file named by the server's `BENCH_PROFILE_FILE` and answers once written.
 */
export const PROFILE_START_PATH = '/__profile/start';
export const PROFILE_STOP_PATH = '/__profile/stop';

/** Answer of {@link CONTROL_PATH}. */
export interface ControlAnswer {
  /** `process.cpuUsage()` of the server process, µs since it started. */
  cpu: { user: number; system: number };
  /** Requests handed to the app so far (control requests excluded). */
  requests: number;
  memory: { rss: number; heapUsed: number };
}
