import { readdirSync, readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem, type } from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Jiffies per second of `/proc/stat` (USER_HZ; 100 on every common Linux build). */
const USER_HZ = 100;

/** Machine-wide busy and total CPU time so far, in µs (from `/proc/stat`); `undefined` off Linux. */
export interface CpuTotals {
  busyUs: number;
  totalUs: number;
}

/** Read the aggregate `cpu` line of `/proc/stat`. */
export function readCpuTotals(): CpuTotals | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const busy = user + nice + system + irq + softirq + steal;
  const toUs = 1_000_000 / USER_HZ;
  return { busyUs: busy * toUs, totalUs: (busy + idle + iowait) * toUs };
}

/** Process names of the shared stores the store candidates use: their CPU is the candidate's, not noise. */
const STORE_SERVERS = new Set(['postgres', 'redis-server', 'mariadbd']);

/** CPU time (µs) used so far by the local PostgreSQL, Redis and MariaDB server processes; 0 off Linux. */
export function storeServersCpuUs(): number {
  let jiffies = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (
      !STORE_SERVERS.has(
        stat
          .slice(open + 1, close)
          .split(':')[0]!
          .trim(),
      )
    )
      continue;
    // Fields after the comm: state is field 3, utime 14, stime 15.
    const fields = stat.slice(close + 2).split(' ');
    jiffies += Number(fields[11]) + Number(fields[12]);
  }
  return jiffies * (1_000_000 / USER_HZ);
}

/** CPU time of this process so far (all threads), in µs. */
export function ownCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * Share of one core that processes other than ours used over `ms`, sampled while our processes idle.
 * Used before a run to wait for a quiet machine. `undefined` off Linux.
 */
export async function idleNoise(ms: number): Promise<number | undefined> {
  const a = readCpuTotals();
  const own = ownCpuUs();
  const stores = storeServersCpuUs();
  await new Promise((r) => setTimeout(r, ms));
  const b = readCpuTotals();
  if (!a || !b) return undefined;
  // A store server still settling after a store candidate (autovacuum, a checkpoint) is not noise.
  const storeUs = storeServersCpuUs() - stores;
  return Math.max(0, b.busyUs - a.busyUs - (ownCpuUs() - own) - storeUs) / (ms * 1000);
}

const require = createRequire(import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Installed version of a package, read from its package.json; `?` when absent. */
export function packageVersion(name: string): string {
  try {
    const path = require.resolve(`${name}/package.json`, { paths: [ROOT] });
    return (JSON.parse(readFileSync(path, 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    try {
      const path = `${ROOT}node_modules/${name}/package.json`;
      return (JSON.parse(readFileSync(path, 'utf8')) as { version?: string }).version ?? '?';
    } catch {
      return '?';
    }
  }
}

/** The machine and runtime a report was measured on. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  os: string;
  node: string;
  loadAverage: string;
  packages: Record<string, string>;
}

/** Packages whose versions every report names. */
export const REPORTED_PACKAGES = [
  'express',
  'jose',
  'autocannon',
  'express-oauth2-jwt-bearer',
  'express-jwt',
  'jwks-rsa',
  'tsx',
  'koa',
  'hono',
  '@hono/node-server',
  'fastify',
] as const;

/** Collect {@link MachineInfo} now. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  const own = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { name: string; version: string };
  const packages: Record<string, string> = { [own.name]: own.version };
  for (const name of REPORTED_PACKAGES) packages[name] = packageVersion(name);
  return {
    cpuModel: list[0]?.model.trim() ?? '?',
    cores: list.length,
    memoryGiB: totalmem() / 2 ** 30,
    freeMemoryGiB: freemem() / 2 ** 30,
    os: `${type()} ${release()}`,
    node: process.version,
    loadAverage: loadavg()
      .map((n) => n.toFixed(2))
      .join(' '),
    packages,
  };
}
