/**
 * CPU time from /proc (Linux): the whole machine's from /proc/stat, one
 * process's from /proc/<pid>/stat. Both count in clock ticks;
 * clockTicksPerSecond() says how many make a second.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second (`getconf CLK_TCK`), the unit of every count here. */
export function clockTicksPerSecond(): number {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK gave "${ticks}"`);
  return ticks;
}

/**
 * Ticks of all cores since boot, from /proc/stat's aggregate `cpu` line:
 * busy = user + nice + system + irq + softirq + steal (idle and iowait are
 * waiting, not work; guest time is already inside user and nice); steal is
 * time the hypervisor gave this machine's CPUs to others; all counts idle too.
 */
export function machineTicks(stat = readFileSync('/proc/stat', 'utf8')): { busy: number; steal: number; all: number } {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate cpu line');
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, steal, all: busy + idle + iowait };
}

/** A process's user + system ticks and resident memory, or undefined once it is gone. */
export function processUsage(pid: number): { cpuTicks: number; rssMiB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(fields[11]) + Number(fields[12]);
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { cpuTicks, rssMiB: Math.round((rssKb / 1024) * 10) / 10 };
  } catch {
    return undefined;
  }
}
