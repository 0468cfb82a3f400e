import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CONTROL_PATH,
  PROFILE_START_PATH,
  PROFILE_STOP_PATH,
  type ControlAnswer,
  type ServerSpec,
} from './protocol.js';

/** What a bench server's setup returns, once it knows its port. */
export interface BenchApp {
  /** The app under test (an Express app, `koa.callback()`, Hono's `getRequestListener`…). */
  listener: RequestListener;
  /** The spec printed for the runner, without the port. */
  spec: Omit<ServerSpec, 'port'>;
  /**
   * JSON documents answered on GET outside the app and not counted (a JWKS, a discovery document),
   * keyed by exact path, so peers can fetch keys from the same process.
   */
  documents?: Record<string, unknown>;
}

/**
 * Start a bench server on 127.0.0.1 (an ephemeral port), answer `GET /__cpu` and the `documents`
 * outside the app, count app requests, print the spec as one JSON line, and exit cleanly on
 * SIGTERM/SIGINT (so `--cpu-prof` writes its profile).
 *
 * @param setup Builds the app once the port is known (peers need it for their JWKS URL).
 */
export async function startBenchServer(setup: (port: number) => BenchApp | Promise<BenchApp>): Promise<void> {
  let requests = 0;
  // Filled once setup() ran; requests arriving earlier get 503.
  const state: { app?: RequestListener; documents: Record<string, string> } = { documents: {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url === CONTROL_PATH) return json(res, control(requests));
    if (url === PROFILE_START_PATH || url === PROFILE_STOP_PATH) {
      return void profileControl(url === PROFILE_START_PATH).then(
        () => json(res, '{}'),
        (error: Error) => json(res, JSON.stringify({ error: error.message }), 500),
      );
    }
    const doc = req.method === 'GET' ? state.documents[url] : undefined;
    if (doc !== undefined) return json(res, doc);
    requests++;
    if (!state.app) {
      res.statusCode = 503;
      return res.end();
    }
    state.app(req, res);
  });
  // Loopback load from one client keeps many sockets open; the default limits suit it already.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const built = await setup(port);
  // Start measured runs from a collected heap: a scale fixture (a million records) leaves hundreds of
  // MB of start-up garbage that would otherwise be marked and swept during the first measured slices.
  (globalThis as { gc?: () => void }).gc?.();
  state.app = built.listener;
  state.documents = Object.fromEntries(
    Object.entries(built.documents ?? {}).map(([path, value]) => [path, JSON.stringify(value)]),
  );
  const stop = () => {
    server.closeAllConnections();
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const spec: ServerSpec = { port, ...built.spec };
  process.stdout.write(`${JSON.stringify(spec)}\n`);
}

function control(requests: number): string {
  const { rss, heapUsed } = process.memoryUsage();
  const answer: ControlAnswer = { cpu: process.cpuUsage(), requests, memory: { rss, heapUsed } };
  return JSON.stringify(answer);
}

let profiler: Session | undefined;

async function profileControl(start: boolean): Promise<void> {
  if (start) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
    return;
  }
  const file = process.env.BENCH_PROFILE_FILE;
  if (!profiler || !file) throw new Error('no profile running or no BENCH_PROFILE_FILE');
  const { profile } = await profiler.post('Profiler.stop');
  profiler.disconnect();
  profiler = undefined;
  writeFileSync(file, JSON.stringify(profile));
}

function json(res: ServerResponse, body: string, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** An integer from the environment (`BENCH_*` knobs set by a candidate's `env`). */
export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
}
