/**
 * Where the CPU of sandbox starts goes, attributed by process rather than
 * read off the whole machine: on a shared, busy machine the whole-machine
 * figure (startCpuSeconds) carries everyone else's work too, while these
 * parts carry only the starts' (the engine daemons serve other users'
 * containers as well, so they are an upper bound). Linux with cgroup v1
 * (cgroupfs driver) or v2; parts that cannot be read count as 0.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { clockTicksPerSecond } from './proc-stat.js';

export interface StartCpu {
  /** Inside the sandboxes' own cgroups: runc's init, node booting, the MCP server answering. */
  sandboxes: number;
  /** dockerd and containerd. */
  engine: number;
  /** The containers' shims, with the runc processes they ran. */
  shims: number;
  /** This process: the pool, the MCP clients, the engine client. */
  self: number;
  /** The sum. */
  total: number;
}

/** user + system ticks of a process, with its waited-for children's when asked; 0 when it is gone. */
function processTicks(pid: number, withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return (f[11] ?? 0) + (f[12] ?? 0) + (withChildren ? (f[13] ?? 0) + (f[14] ?? 0) : 0);
  } catch {
    return 0;
  }
}

function pidsWhere(test: (cmdline: string) => boolean): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (test(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '))) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

/** CPU seconds a container's cgroup used so far (cgroup v1 cpuacct, or v2 cpu.stat). */
export function containerCpuSeconds(id: string): number {
  for (const file of [`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, `/sys/fs/cgroup/cpu,cpuacct/docker/${id}/cpuacct.usage`]) {
    try {
      return Number(readFileSync(file, 'utf8')) / 1e9;
    } catch {
      /* next layout */
    }
  }
  for (const file of [`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, `/sys/fs/cgroup/docker/${id}/cpu.stat`]) {
    try {
      return Number(/usage_usec (\d+)/.exec(readFileSync(file, 'utf8'))?.[1] ?? 0) / 1e6;
    } catch {
      /* next layout */
    }
  }
  return 0;
}

/**
 * Starts attributing: call before the starts, then finish() with the ids of
 * the containers they made, before those are removed (their shims go with them).
 */
export function beginStartCpu(): { finish(containerIds: readonly string[]): StartCpu } {
  const tick = clockTicksPerSecond();
  const engine = pidsWhere((c) => /(^|\/)(dockerd|containerd)( |$)/.test(c));
  const engineBefore = engine.reduce((sum, pid) => sum + processTicks(pid, false), 0);
  const selfBefore = process.cpuUsage();
  return {
    finish(ids) {
      const sandboxes = ids.reduce((sum, id) => sum + containerCpuSeconds(id), 0);
      const engineSeconds = (engine.reduce((sum, pid) => sum + processTicks(pid, false), 0) - engineBefore) / tick;
      const wanted = new Set(ids);
      const shims = pidsWhere((c) => /containerd-shim/.test(c) && wanted.has(/ -id (\S+)/.exec(c)?.[1] ?? ''));
      const shimSeconds = shims.reduce((sum, pid) => sum + processTicks(pid, true), 0) / tick;
      const used = process.cpuUsage(selfBefore);
      const self = (used.user + used.system) / 1e6;
      const round = (x: number): number => Math.round(x * 1000) / 1000;
      return {
        sandboxes: round(sandboxes),
        engine: round(engineSeconds),
        shims: round(shimSeconds),
        self: round(self),
        total: round(sandboxes + engineSeconds + shimSeconds + self),
      };
    },
  };
}
