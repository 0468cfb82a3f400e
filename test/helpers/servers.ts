import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PoolConfig } from 'pg';
import type { RedisOptions } from 'ioredis';

/** The shared Redis of this machine and CI (never stopped by tests). */
export function sharedRedisOptions(): RedisOptions {
  return {
    host: process.env.REDIS_HOST ?? '127.0.0.1',
    port: Number(process.env.REDIS_PORT ?? 6379),
  };
}

/** The shared PostgreSQL of this machine and CI (trust auth, database `test`; never stopped by tests). */
export function sharedPgConfig(): PoolConfig {
  return {
    host: process.env.PGHOST ?? '127.0.0.1',
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? 'postgres',
    database: process.env.PGDATABASE ?? 'test',
  };
}

/** A name no other test run uses: `<base>_<12 hex>`. */
export function uniqueName(base: string): string {
  return `${base}_${randomBytes(6).toString('hex')}`;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new Error(`nothing listens on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A throwaway `redis-server` this test owns, on its own port, without persistence. */
export interface ThrowawayRedis {
  port: number;
  /** Kill the server (SIGKILL: like a crash) and wait for it to exit. */
  stop(): Promise<void>;
  /** Start it again on the same port (empty: nothing is persisted). No-op while it runs. */
  start(): Promise<void>;
}

/** Starts a `redis-server` child process on a free port. Call `stop()` when done. */
export async function startRedisServer(): Promise<ThrowawayRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    if (child && child.exitCode === null) return;
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    await waitForPort(port);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  return { port, start, stop };
}

/**
 * A TCP proxy on a free port in front of a real server, to play outages without touching the
 * server: `down()` refuses connections and cuts open ones; `blackhole()` keeps connections open but
 * holds every byte (a network that stopped answering); `up()` restores both.
 */
export interface OutageProxy {
  port: number;
  down(): Promise<void>;
  blackhole(): void;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<OutageProxy> {
  const port = await freePort();
  const pairs = new Set<[net.Socket, net.Socket]>();
  let holding = false;
  let server: net.Server | undefined;

  const held = new WeakSet<[net.Socket, net.Socket]>();
  const hold = (pair: [net.Socket, net.Socket]) => {
    if (held.has(pair)) return;
    held.add(pair);
    const [client, upstream] = pair;
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };
  const release = (pair: [net.Socket, net.Socket]) => {
    held.delete(pair);
    const [client, upstream] = pair;
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = async () => {
    server = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      pairs.add(pair);
      if (holding) held.add(pair);
      else release(pair);
      const end = () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, '127.0.0.1', resolve);
    });
  };

  const down = async () => {
    const closing = server;
    server = undefined;
    for (const pair of pairs) pair.forEach((s) => s.destroy());
    pairs.clear();
    if (closing) await new Promise((resolve) => closing.close(resolve));
  };

  await listen();
  return {
    port,
    down,
    blackhole() {
      holding = true;
      pairs.forEach(hold);
    },
    async up() {
      holding = false;
      pairs.forEach((pair) => held.has(pair) && release(pair));
      if (!server) await listen();
    },
    close: down,
  };
}

/** A throwaway three-master Redis Cluster this test owns, on free ports, without persistence. */
export interface ThrowawayRedisCluster {
  nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** Starts three `redis-server --cluster-enabled yes` and joins them with `redis-cli --cluster create`. */
export async function startRedisCluster(): Promise<ThrowawayRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'oma-cluster-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(ports.map((port) => waitForPort(port)));
    const args = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0'];
    await run('redis-cli', [...args, '--cluster-yes']);
    const until = Date.now() + 15_000;
    for (const port of ports) {
      while (
        !(await run('redis-cli', ['-p', String(port), 'cluster', 'info'])).includes('cluster_state:ok')
      ) {
        if (Date.now() > until) throw new Error('redis cluster did not become ready');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
}

async function run(command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${output}`);
  return output;
}
