/**
 * One run end to end: a fresh cluster, Artillery against its nginx while the
 * sampler watches, the cluster stopped and checked for leftover containers,
 * then <run>.json, <run>.md and the charts.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { APP_LABEL_VALUE, LABELS } from '../../src/runtime/types.js';
import { startClusterProcess } from '../lib/cluster-process.js';
import { runArtillery } from './artillery.js';
import { drawCharts } from './charts.js';
import { deriveMetrics, type FinalPoolStats } from './derive.js';
import { runMarkdown } from './report.js';
import { writeResult, type RunResult } from './results.js';
import { startSampler } from './sampler.js';
import type { Run } from './suites.js';

export interface RunContext {
  root: string;
  outDir: string;
  replicaCount: number;
  say(line: string): void;
}

export async function executeRun(run: Run, { root, outDir, replicaCount, say }: RunContext): Promise<RunResult> {
  say(`${run.name}: starting a ${replicaCount}-replica cluster`);
  const cluster = await startClusterProcess({
    replicas: replicaCount,
    namePrefix: 'load',
    // Load users all come from this one address: lift the per-address limits that would measure nginx, not sandpool (65535 is nginx's most).
    args: ['--api-rate', '1000r/s', '--conn-per-ip', '65535'],
    // Load users come from one IP and arrive fast: lift per-IP limits that would measure nginx, not sandpool.
    env: { ...process.env, LOG_LEVEL: 'warn', MAX_SESSIONS: '20000', SOCKET_EVENTS_PER_SECOND: '100', ...run.env },
    // Should this runner die mid-run, the cluster still stops (and removes its containers) on its own.
    onParentExit: 'SIGTERM',
  });
  const { state } = cluster;
  const sampler = startSampler(state);
  const started = Date.now();
  say(`${run.name}: artillery ${run.scenario} against ${state.url}`);
  const { exit, report, noReport } = await runArtillery({ root, run, target: state.url, onStart: (pid) => sampler.watchLoadgen(pid) });
  const durationSeconds = Math.round((Date.now() - started) / 1000);
  // Each replica's own view (acquire and start latencies, sandboxes created) before it stops.
  const finalPoolStats = await Promise.all(
    state.replicas.map((r): Promise<FinalPoolStats> => fetch(`${r.url}/stats/pool`).then((x) => x.json() as Promise<Record<string, unknown>>).catch(() => null)),
  );
  await sampler.stop();
  await cluster.stop();
  const leaked = (await createDockerRuntime().list({ [LABELS.app]: APP_LABEL_VALUE })).filter((c) => state.replicas.some((r) => r.id === c.labels[LABELS.replica])).length;
  if (noReport) say(`${run.name}: ${noReport}`);

  const counters = report.aggregate.counters;
  const derived = deriveMetrics({
    counters,
    samples: sampler.samples,
    replicaIds: state.replicas.map((r) => r.id),
    finalPoolStats,
    durationSeconds,
    containersLeftAfterStop: leaked,
  });
  const chartFiles = await drawCharts(outDir, run.name, report.intermediate, sampler.samples);
  const exitCode = exit.code ?? 1;
  const problems = [
    noReport,
    !noReport && exitCode !== 0 ? `artillery exited ${exitCode} (an ensure threshold failed)` : undefined,
    run.check?.(counters),
    leaked > 0 ? `${leaked} containers left after the cluster stopped` : undefined,
  ].filter((p): p is string => p !== undefined);
  const result: RunResult = {
    name: run.name,
    scenario: run.scenario,
    replicas: replicaCount,
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    date: new Date(started).toISOString(),
    durationSeconds,
    overrides: run.overrides,
    env: run.env,
    passed: problems.length === 0,
    problems,
    derived,
    artillery: { counters, summaries: report.aggregate.summaries, intermediate: report.intermediate.map((p) => ({ period: p.period, counters: p.counters, summaries: p.summaries })) },
    samples: sampler.samples,
    charts: chartFiles,
  };
  const jsonFile = writeResult(outDir, run.name, result);
  writeFileSync(path.join(outDir, `${run.name}.md`), runMarkdown(result));
  say(`${run.name}: ${result.passed ? 'passed' : `FAILED (${problems.join('; ')})`}; results in ${jsonFile}`);
  return result;
}
