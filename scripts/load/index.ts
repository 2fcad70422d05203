/**
 * npm run load:smoke | load:capacity | load:soak | load:ceiling | load:stepped | load:quotas | load:returning
 *   (-- --replicas N [--save | --out DIR] --only RUN[,RUN] --rechart)
 *
 * For each run of the suite: starts a fresh cluster (npm run cluster: Redis,
 * N replicas, nginx), runs one Artillery scenario from load-tests/ against
 * nginx, samples every 2 s (each replica's RSS and CPU, /stats/pool?scope=cluster,
 * Redis INFO memory, sandbox container count), stops the cluster, checks that
 * no container was left, and writes <out>/<run>.json, <run>.md and SVG charts
 * (vega-lite): <out> is results/load/ (git-ignored) by default, the tracked
 * load-tests/results/ that SCALABILITY.md links to with --save, or --out DIR.
 * Exits non-zero when an Artillery `ensure` fails, a check fails,
 * or a container leaked (a ceiling search expects failing steps: it only
 * writes its summary, <out>/ceiling.md). --rechart redraws the charts of
 * stored results without running anything.
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT, ResultsPathError, resultsDir } from '../lib/results-path.js';
import { drawCharts } from './charts.js';
import { writeStepSummary } from './report.js';
import { readResult, writeResult } from './results.js';
import { executeRun } from './run.js';
import { SUITES } from './suites.js';

const { values } = parseArgs({
  options: {
    suite: { type: 'string', default: 'smoke' },
    replicas: { type: 'string', default: '2' },
    out: { type: 'string' },
    save: { type: 'boolean', default: false },
    only: { type: 'string' }, // comma-separated run names
    rechart: { type: 'boolean', default: false },
  },
});
const suiteName = values.suite;
const suite = SUITES[suiteName];
if (!suite) {
  process.stderr.write(`load: --suite must be one of ${Object.keys(SUITES).join(', ')}\n`);
  process.exit(2);
}
const root = PROJECT_ROOT;
let outDir: string;
try {
  outDir = resultsDir('load', values);
} catch (err) {
  if (!(err instanceof ResultsPathError)) throw err;
  process.stderr.write(`load: ${err.message}\n`);
  process.exit(2);
}
const replicaCount = Number(values.replicas);
const say = (line: string): void => void process.stderr.write(`[load] ${line}\n`);

mkdirSync(outDir, { recursive: true });
const only = values.only?.split(',').map((n) => n.trim());
const runs = only ? suite.filter((r) => only.includes(r.name)) : suite;
if (runs.length === 0) {
  process.stderr.write(`load: --only names none of ${suite.map((r) => r.name).join(', ')}\n`);
  process.exit(2);
}

const summarize = (): void => {
  const file = writeStepSummary(outDir, suiteName, suite, replicaCount);
  if (file) say(`summary in ${file}`);
};

if (values.rechart) {
  // Redraw charts from stored results (samples and Artillery periods), without running anything.
  for (const run of runs) {
    const result = readResult(outDir, run.name);
    if (!result) continue;
    result.charts = await drawCharts(outDir, run.name, result.artillery.intermediate, result.samples);
    writeResult(outDir, run.name, result);
    say(`${run.name}: charts redrawn`);
  }
  summarize();
  process.exit(0);
}

let failures = 0;
for (const run of runs) {
  const result = await executeRun(run, { root, outDir, replicaCount, say });
  if (!result.passed) failures++;
}
summarize();
// A ceiling search is meant to find failing steps; only its own breakage is a failure.
process.exit(failures > 0 && !runs.every((r) => r.step) ? 1 : 0);
