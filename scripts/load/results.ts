/** A run's stored result, <out>/<run>.json: written after the run, read back by --rechart and the step summary. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ArtilleryReport } from './artillery.js';
import type { Derived } from './derive.js';
import type { Sample } from './sampler.js';

export interface RunResult {
  name: string;
  scenario: string;
  replicas: number;
  machine: { cpus: number; memoryGiB: number; node: string };
  date: string;
  durationSeconds: number;
  overrides: Record<string, unknown>;
  env: Record<string, string>;
  passed: boolean;
  problems: string[];
  derived: Derived;
  artillery: { counters: Record<string, number>; summaries: ArtilleryReport['aggregate']['summaries']; intermediate: ArtilleryReport['intermediate'] };
  samples: Sample[];
  charts: string[];
}

/** What older results are sure to hold too: the parts read back. */
export interface StoredResult {
  passed: boolean;
  problems: string[];
  derived: Pick<Derived, 'users' | 'failedUsers' | 'errorRatePercent' | 'peakConnectedUsers' | 'secondsAtPeak' | 'rssPerConnectedUserKiB' | 'peakCpuPercent' | 'sandboxesStartedPerSecond'> &
    Partial<Pick<Derived, 'peakLoadgenCpuPercent' | 'meanReplicasCpuPercent' | 'peakParked'>>;
  artillery: Pick<RunResult['artillery'], 'summaries' | 'intermediate'> & Partial<Pick<RunResult['artillery'], 'counters'>>;
  samples: Sample[];
  charts: string[];
}

const fileOf = (outDir: string, name: string): string => path.join(outDir, `${name}.json`);

export function readResult(outDir: string, name: string): StoredResult | undefined {
  const file = fileOf(outDir, name);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as StoredResult) : undefined;
}

export function writeResult(outDir: string, name: string, result: RunResult | StoredResult): string {
  const file = fileOf(outDir, name);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
