import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** One function (or area)'s share of a profile's busy (non-idle) samples. */
export interface ProfileRow {
  /** `name (file:line:column)`, or an area name. */
  fn: string;
  /** Share of busy samples spent in it itself. */
  self: number;
  /** Share of busy samples with it anywhere on the stack. */
  total: number;
}

/** The hottest functions of one `.cpuprofile`. */
export interface ProfileSummary {
  file: string;
  /** Busy samples' total time, ms. */
  busyMs: number;
  bySelf: ProfileRow[];
  byTotal: ProfileRow[];
  /** Self time per package / node module / own source file. */
  byArea: ProfileRow[];
  /** Functions of our own `src/` and `adapters/`, by total time. */
  ours: ProfileRow[];
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const IDLE = new Set(['(idle)', '(root)']);

function fileOf(url: string): string {
  let file = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (file.startsWith(ROOT)) file = file.slice(ROOT.length);
  return file.replace(/^.*node_modules\//, '');
}

// tsx emits whitespace-minified code (all on one line), so the column tells functions apart.
function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber, columnNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (!url) return name;
  return `${name} (${fileOf(url)}:${lineNumber + 1}:${columnNumber + 1})`;
}

function areaOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native code)';
  if (url.startsWith('node:')) {
    const rest = url.slice(5).replace(/^internal\//, '');
    return `node:${rest.split('/')[0]}`;
  }
  const abs = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = abs.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = abs.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return fileOf(url);
}

const isOurs = (node: ProfileNode) => /^(src|adapters)\//.test(fileOf(node.callFrame.url));

/** Summarise a profile: top `limit` functions by self and total time, areas, and our own functions. */
export function summariseProfile(file: string, limit = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const sampleCount = profile.samples?.length ?? profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const usPerSample = sampleCount > 0 ? (profile.endTime - profile.startTime) / sampleCount : 0;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areaSelf = new Map<string, number>();
  const areaTotal = new Map<string, number>();
  const ours = new Set<string>();
  let busy = 0;
  const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
  // Iterative DFS carrying the names already on the path, so recursion counts once in "total".
  const root = profile.nodes[0];
  const stack: Array<{ node: ProfileNode; path: ReadonlySet<string>; areas: ReadonlySet<string> }> = root
    ? [{ node: root, path: new Set(), areas: new Set() }]
    : [];
  while (stack.length > 0) {
    const { node, path, areas } = stack.pop()!;
    const idle = IDLE.has(node.callFrame.functionName);
    const name = frameName(node);
    const area = areaOf(node);
    if (!idle && isOurs(node)) ours.add(name);
    const herePath = idle ? path : new Set(path).add(name);
    const hereAreas = idle ? areas : new Set(areas).add(area);
    const hits = node.hitCount ?? 0;
    if (hits > 0 && !idle) {
      busy += hits;
      add(self, name, hits);
      add(areaSelf, area, hits);
      for (const fn of herePath) add(total, fn, hits);
      for (const a of hereAreas) add(areaTotal, a, hits);
    }
    for (const child of node.children ?? []) {
      const next = byId.get(child);
      if (next) stack.push({ node: next, path: herePath, areas: hereAreas });
    }
  }
  const share = (map: Map<string, number>, key: string) => (busy > 0 ? (map.get(key) ?? 0) / busy : 0);
  const rows = (
    keys: Iterable<string>,
    by: Map<string, number>,
    selfMap: Map<string, number>,
    tot: Map<string, number>,
  ) =>
    [...keys]
      .sort((a, b) => (by.get(b) ?? 0) - (by.get(a) ?? 0))
      .slice(0, limit)
      .map((fn) => ({ fn, self: share(selfMap, fn), total: share(tot, fn) }));
  return {
    file,
    busyMs: (busy * usPerSample) / 1000,
    bySelf: rows(self.keys(), self, self, total),
    byTotal: rows(total.keys(), total, self, total),
    byArea: rows(areaSelf.keys(), areaSelf, areaSelf, areaTotal),
    ours: rows(ours, total, self, total),
  };
}

/**
 * A profile summary as Markdown tables. With `requests` (served during the profiled window), shares
 * are also given as µs of main-thread time per request.
 */
export function profileMarkdown(title: string, summary: ProfileSummary, requests?: number): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const perReq = requests && requests > 0 ? (summary.busyMs * 1000) / requests : undefined;
  const us = (x: number) => (perReq === undefined ? '' : ` | ${(x * perReq).toFixed(1)}`);
  const table = (head: string, rows: ProfileRow[]) =>
    [
      `| ${head} | self | total${perReq === undefined ? '' : ' | self µs/req | total µs/req'} |`,
      `|---|---:|---:${perReq === undefined ? '' : '|---:|---:'}|`,
      ...rows.map(
        (r) =>
          `| \`${r.fn.replaceAll('|', '\\|')}\` | ${pct(r.self)} | ${pct(r.total)}${us(r.self)}${us(r.total)} |`,
      ),
    ].join('\n');
  return [
    `#### ${title}`,
    '',
    `Busy main-thread time sampled in the measured window: ${(summary.busyMs / 1000).toFixed(1)} s` +
      `${perReq === undefined ? '' : ` for ${requests} requests (${perReq.toFixed(1)} µs/req under the profiler)`} ` +
      `(\`${summary.file.replace(ROOT, '')}\`). Shares are of busy samples; "total" includes callees.`,
    '',
    table('area (package, node module, own file)', summary.byArea),
    '',
    table('function, by self time', summary.bySelf),
    '',
    table('our function (src/, adapters/), by total time', summary.ours),
    '',
  ].join('\n');
}

/** A running in-process CPU profile; `stop(name)` writes `bench/out/profiles/<name>.cpuprofile`. */
export interface RunningProfile {
  stop(name: string): Promise<string>;
}

/** Start profiling this process's main thread (100 µs sampling). */
export async function startProfile(): Promise<RunningProfile> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop(name) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      const dir = `${ROOT}bench/out/profiles`;
      mkdirSync(dir, { recursive: true });
      const file = `${dir}/${name.replace(/[^A-Za-z0-9.-]+/g, '_')}.cpuprofile`;
      writeFileSync(file, JSON.stringify(profile));
      return file;
    },
  };
}
