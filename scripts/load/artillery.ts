/** Runs one Artillery scenario against a target and reads back its JSON report. */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeExit, spawnProcess, type ExitStatus } from '../lib/start-process.js';
import type { Run } from './suites.js';

export interface ArtilleryReport {
  aggregate: { counters: Record<string, number>; summaries: Record<string, Record<string, number>>; firstCounterAt?: number; lastCounterAt?: number };
  intermediate: Array<{ period: number | string; counters: Record<string, number>; summaries: Record<string, Record<string, number>> }>;
}

export interface ArtilleryOutcome {
  exit: ExitStatus;
  report: ArtilleryReport;
  /** Why there is no report (the report is then empty). */
  noReport?: string;
}

export interface ArtilleryOptions {
  root: string;
  run: Run;
  target: string;
  /** Called with the generator's pid once it runs (the sampler watches its CPU). */
  onStart(pid: number): void;
}

export async function runArtillery({ root, run, target, onStart }: ArtilleryOptions): Promise<ArtilleryOutcome> {
  const rawFile = path.join(os.tmpdir(), `sandpool-${run.name}-${process.pid}.json`);
  // Its output goes to a file, not through this process: a long run prints a lot, and the file stays for a look when it fails.
  const logFile = path.join(os.tmpdir(), `sandpool-${run.name}-${process.pid}.log`);
  rmSync(logFile, { force: true });
  const generator = spawnProcess({
    name: 'artillery',
    command: process.execPath,
    args: [path.join(root, 'node_modules/artillery/bin/run'), 'run', '--target', target, '--overrides', JSON.stringify(run.overrides), '--output', rawFile, path.join(root, 'load-tests', run.scenario)],
    cwd: path.join(root, 'load-tests'),
    env: { ...process.env, ARTILLERY_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: '1' },
    stdout: { file: logFile },
    stderr: { file: logFile },
  });
  if (generator.pid !== undefined) onStart(generator.pid);
  const exit = await generator.exited;
  // A generator that died (killed, out of memory, out of file descriptors) leaves no report: that is a failed step, not a crash of the runner.
  if (!existsSync(rawFile)) {
    const noReport = `artillery produced no report (${describeExit(exit)}): ${generator.tail(5).split('\n').join(' | ').slice(0, 600)}`;
    return { exit, report: { aggregate: { counters: {}, summaries: {} }, intermediate: [] }, noReport };
  }
  const report = JSON.parse(readFileSync(rawFile, 'utf8')) as ArtilleryReport;
  rmSync(rawFile, { force: true });
  rmSync(logFile, { force: true });
  return { exit, report };
}
