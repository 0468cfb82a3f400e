import autocannon from 'autocannon';
import {
  CONTROL_PATH,
  PROFILE_START_PATH,
  PROFILE_STOP_PATH,
  type BenchRequest,
  type ControlAnswer,
  type SmokeCase,
} from './protocol.js';
import { ownCpuUs, readCpuTotals, storeServersCpuUs } from './system.js';
import { proofSource } from './dpop-proofs.js';

/** autocannon settings of a run. */
export interface LoadOptions {
  connections: number;
  pipelining: number;
  /** Seconds. */
  duration: number;
  /** CPU-profile the server during the measured window (it needs `BENCH_PROFILE_FILE`). */
  profile?: boolean;
}

/** What one measured run produced. */
export interface RunMeasure {
  rps: number;
  /** Latency in ms. */
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Server CPU (user + system) per request, µs. */
  serverUsPerReq: number;
  /** Shares of one core over the run (1 = one core busy the whole run). */
  serverCores: number;
  clientCores: number;
  /** The local PostgreSQL, Redis and MariaDB server processes (a store candidate's own cost, not noise). */
  storeCores: number;
  /** Everything else on the machine: `/proc/stat` busy time minus client, server and store servers. */
  otherCores: number | undefined;
  /** Server RSS and heap at the end, bytes. */
  rss: number;
  heapUsed: number;
  /** Raw sums, so slices of one run can be combined: wall, server, client and other CPU µs; requests the server saw. */
  raw: {
    wallUs: number;
    serverUs: number;
    clientUs: number;
    storeUs: number;
    otherUs: number | undefined;
    served: number;
  };
}

/**
 * Combine the slices of one candidate's run: sums for counts and CPU, rates recomputed from them;
 * p50 and p99 are the medians of the slices' values (histograms are not kept).
 */
export function combineMeasures(parts: readonly RunMeasure[]): RunMeasure {
  const sum = (f: (m: RunMeasure) => number) => parts.reduce((s, m) => s + f(m), 0);
  const mid = (f: (m: RunMeasure) => number) => {
    const v = parts.map(f).sort((a, b) => a - b);
    const i = v.length >> 1;
    return v.length % 2 ? v[i]! : (v[i - 1]! + v[i]!) / 2;
  };
  const wallUs = sum((m) => m.raw.wallUs);
  const serverUs = sum((m) => m.raw.serverUs);
  const clientUs = sum((m) => m.raw.clientUs);
  const storeUs = sum((m) => m.raw.storeUs ?? 0);
  const served = sum((m) => m.raw.served);
  const otherUs = parts.some((m) => m.raw.otherUs === undefined) ? undefined : sum((m) => m.raw.otherUs!);
  const requests = sum((m) => m.requests);
  const last = parts.at(-1)!;
  return {
    rps: requests / (wallUs / 1e6),
    p50: mid((m) => m.p50),
    p99: mid((m) => m.p99),
    requests,
    non2xx: sum((m) => m.non2xx),
    errors: sum((m) => m.errors),
    serverUsPerReq: served > 0 ? serverUs / served : Number.NaN,
    serverCores: serverUs / wallUs,
    clientCores: clientUs / wallUs,
    storeCores: storeUs / wallUs,
    otherCores: otherUs === undefined ? undefined : otherUs / wallUs,
    rss: last.rss,
    heapUsed: last.heapUsed,
    raw: { wallUs, serverUs, clientUs, storeUs, otherUs, served },
  };
}

/** Send every smoke case once; returns the failures in words (empty when all passed). */
export async function smokeCheck(baseUrl: string, cases: readonly SmokeCase[]): Promise<string[]> {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      const res = await send(baseUrl, c.request);
      const body = await res.text();
      if (res.status !== c.status) failures.push(`${c.name}: status ${res.status}, expected ${c.status}`);
      else if (c.bodyIncludes && !body.includes(c.bodyIncludes)) {
        failures.push(`${c.name}: answer lacks ${JSON.stringify(c.bodyIncludes)}`);
      }
    } catch (error) {
      failures.push(`${c.name}: ${(error as Error).message}`);
    }
  }
  return failures;
}

function send(baseUrl: string, request: BenchRequest): Promise<Response> {
  return fetch(baseUrl + request.path, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
}

/** The server's cumulative CPU and request count. */
export async function readControl(baseUrl: string): Promise<ControlAnswer> {
  const res = await fetch(baseUrl + CONTROL_PATH, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as ControlAnswer;
}

async function control(baseUrl: string, path: string): Promise<void> {
  const res = await fetch(baseUrl + path, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`${path}: ${await res.text()}`);
}

/** Load without measuring (JIT warm-up, caches filled). */
export async function warmUp(baseUrl: string, request: BenchRequest, options: LoadOptions): Promise<void> {
  if (options.duration <= 0) return;
  await cannon(baseUrl, request, options);
}

/** One measured run: autocannon plus server, client and machine CPU read before and after. */
export async function measure(
  baseUrl: string,
  request: BenchRequest,
  options: LoadOptions,
): Promise<RunMeasure> {
  if (options.profile) await control(baseUrl, PROFILE_START_PATH);
  const server0 = await readControl(baseUrl);
  const machine0 = readCpuTotals();
  const stores0 = storeServersCpuUs();
  const client0 = ownCpuUs();
  const t0 = process.hrtime.bigint();
  const result = await cannon(baseUrl, request, options);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const client1 = ownCpuUs();
  const machine1 = readCpuTotals();
  const storeUs = storeServersCpuUs() - stores0;
  const server1 = await readControl(baseUrl);
  if (options.profile) await control(baseUrl, PROFILE_STOP_PATH);
  const serverUs = server1.cpu.user + server1.cpu.system - (server0.cpu.user + server0.cpu.system);
  const clientUs = client1 - client0;
  const served = server1.requests - server0.requests;
  const otherUs =
    machine0 && machine1
      ? Math.max(0, machine1.busyUs - machine0.busyUs - serverUs - clientUs - storeUs)
      : undefined;
  return {
    rps: result['2xx'] / (wallUs / 1e6),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    serverUsPerReq: served > 0 ? serverUs / served : Number.NaN,
    serverCores: serverUs / wallUs,
    clientCores: clientUs / wallUs,
    storeCores: storeUs / wallUs,
    otherCores: otherUs === undefined ? undefined : otherUs / wallUs,
    rss: server1.memory.rss,
    heapUsed: server1.memory.heapUsed,
    raw: { wallUs, serverUs, clientUs, storeUs, otherUs, served },
  };
}

function cannon(baseUrl: string, request: BenchRequest, options: LoadOptions) {
  const spread = request.authorizations;
  const proof =
    request.dpop && proofSource(request.dpop, request.method, baseUrl + request.path.split('?')[0]);
  if (proof) {
    return autocannon({
      url: baseUrl + request.path,
      method: request.method,
      headers: request.headers,
      requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, dpop: proof() } }) }],
      connections: options.connections,
      pipelining: options.pipelining,
      duration: options.duration,
      timeout: 10,
    });
  }
  return autocannon({
    url: baseUrl + request.path,
    method: request.method,
    headers: request.headers,
    body: request.body,
    ...(spread?.length && {
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            headers: { ...req.headers, authorization: spread[(Math.random() * spread.length) | 0]! },
          }),
        },
      ],
    }),
    connections: options.connections,
    pipelining: options.pipelining,
    duration: options.duration,
    timeout: 10,
  });
}
