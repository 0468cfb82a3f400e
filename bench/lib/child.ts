import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ServerSpec } from './protocol.js';

const SERVERS = fileURLToPath(new URL('../servers/', import.meta.url));

/** A bench server running in its own process. */
export interface ServerProcess {
  spec: ServerSpec;
  child: ChildProcess;
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  /** SIGTERM, then wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** How to start a bench server. */
export interface StartOptions {
  /** File name under `bench/servers/`. */
  server: string;
  env?: Record<string, string>;
  /** The node binary. Default: the bench's own (`process.execPath`). */
  execPath?: string | undefined;
  /** Extra `node` flags (e.g. `--cpu-prof`). */
  nodeFlags?: string[];
  /** Longest wait for the spec line, in ms. Default 240 000: a million identity configs take ~40 s to validate alone, longer while other servers start. */
  timeoutMs?: number;
}

/** Start `node --import tsx bench/servers/<server>` and wait for its spec line on stdout. */
export function startServer(options: StartOptions): Promise<ServerProcess> {
  const child = spawn(
    options.execPath ?? process.execPath,
    [...(options.nodeFlags ?? []), '--expose-gc', '--import', 'tsx', `${SERVERS}${options.server}`],
    { env: { ...process.env, ...options.env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      void stop(1000);
      reject(new Error(`${options.server}: ${why}${stderr ? `\n${stderr.trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail('no spec line in time'), options.timeoutMs ?? 240_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      clearTimeout(timer);
      let spec: ServerSpec;
      try {
        spec = JSON.parse(line) as ServerSpec;
      } catch {
        return fail('unreadable spec line');
      }
      resolve({ spec, child, url: `http://127.0.0.1:${spec.port}`, stop });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(`exited early (${signal ?? code})`);
    });
  });
}
