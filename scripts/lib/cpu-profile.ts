/**
 * Summarizes a V8 CPU profile (`node --cpu-prof` writes one .cpuprofile per
 * process): where the process spent its CPU, by function (self time: the
 * samples taken in that function itself, not in what it called) and by where
 * the code lives (a package under node_modules, sandpool's own code, Node's
 * internals, the garbage collector). Idle samples are left out of the shares.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface CpuShare {
  name: string;
  /** Self time, in ms. */
  ms: number;
  /** Of the busy (non-idle) time. */
  share: number;
}

export interface CpuProfileSummary {
  /** Sampled time that was not idle, in ms. */
  busyMs: number;
  idleMs: number;
  topFunctions: CpuShare[];
  byOrigin: CpuShare[];
}

/** Where a function's code lives: a package, sandpool's own code (src/ or scripts/), Node's internals, or the VM itself. */
export function originOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return 'node (internals)';
  if (/\/dist\/(src|scripts)\//.test(url)) return `sandpool ${/\/dist\/((src|scripts)\/[^/]+)/.exec(url)?.[1] ?? ''}`;
  return url;
}

function shares(totals: Map<string, number>, busyMs: number, top: number): CpuShare[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => ({ name, ms: Math.round(ms * 10) / 10, share: Math.round((ms / Math.max(busyMs, 1e-9)) * 1000) / 1000 }));
}

/**
 * `windows`: only the samples taken within these spans of the profiled
 * process's monotonic clock, in µs (process.hrtime() / 1000 in that process:
 * the clock V8 stamps its samples with); all samples without.
 */
export function summarizeCpuProfile(file: string, options: { windows?: ReadonlyArray<readonly [number, number]>; top?: number } = {}): CpuProfileSummary {
  const top = options.top ?? 25;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const inWindow = (t: number): boolean => !options.windows || options.windows.some(([from, to]) => t >= from && t <= to);
  // timeDeltas[i] is the time since the previous sample: it belongs to sample i.
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    t += delta;
    if (inWindow(t)) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const functions = new Map<string, number>();
  const origins = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const name = `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + us / 1000);
    const origin = originOf(frame.url, frame.functionName);
    origins.set(origin, (origins.get(origin) ?? 0) + us / 1000);
  }
  const busyMs = busyUs / 1000;
  return { busyMs: Math.round(busyMs), idleMs: Math.round(idleUs / 1000), topFunctions: shares(functions, busyMs, top), byOrigin: shares(origins, busyMs, top) };
}
