/** Markdown: one page per run (<run>.md), and the ceiling searches' summary (<suite>.md and .json). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { readResult, type RunResult, type StoredResult } from './results.js';
import type { Run } from './suites.js';

export function runMarkdown(result: RunResult): string {
  const { derived, artillery } = result;
  const s = (metric: string): string => {
    const m = artillery.summaries[metric];
    return m ? `${m.p50} / ${m.p95} / ${m.p99}` : '–';
  };
  return [
    `# ${result.name}`,
    '',
    `${result.scenario}, ${result.replicas} replicas, ${result.machine.cpus} cores, ${result.date}, ${result.durationSeconds} s. ${result.passed ? 'PASSED' : `FAILED: ${result.problems.join('; ')}`}`,
    '',
    '| metric | value |',
    '|---|---|',
    `| virtual users (failed) | ${derived.users} (${derived.failedUsers}, ${derived.errorRatePercent}%) |`,
    `| socketio.response_time p50 / p95 / p99 ms | ${s('socketio.response_time')} |`,
    `| first tool:result p50 / p95 / p99 ms | ${s('sandpool.first_tool_result')} |`,
    `| message:done p50 / p95 / p99 ms | ${s('sandpool.message_done')} |`,
    `| peak connected users (seconds at ≥95% of peak) | ${derived.peakConnectedUsers} (${derived.secondsAtPeak}) |`,
    `| peak sessions / peak connections per replica | ${derived.peakSessions} / ${Object.entries(derived.peakConnectionsPerReplica).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| RSS all replicas start → peak MiB | ${derived.rssStartMiB} → ${derived.rssPeakMiB} |`,
    `| RSS per connected user KiB | ${derived.rssPerConnectedUserKiB ?? '–'} |`,
    `| RSS slope MiB/h per replica | ${Object.entries(derived.rssSlopeMiBPerHourPerReplica).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| peak replica CPU % / peak Artillery CPU % (100 = one core) | ${derived.peakCpuPercent} / ${derived.peakLoadgenCpuPercent} |`,
    `| Redis used (peak) MiB | ${derived.peakRedisUsedMiB} |`,
    `| sandbox containers peak / left after stop | ${derived.peakContainers} / ${derived.containersLeftAfterStop} |`,
    `| sandboxes started per second (whole run) | ${derived.sandboxesStartedPerSecond} |`,
    ...derived.replicaPools.map((p) =>
      p ? `| ${String(p.replica)} acquire ms p50 / p95 / p99 (n=${String(p.acquired)}) | ${JSON.stringify(p.acquireLatencyMs)} |` : '| replica stats | unavailable |',
    ),
    ...Object.entries(artillery.counters)
      .filter(([k]) => k.startsWith('sandpool.') || k.startsWith('errors.'))
      .map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...result.charts.map((f) => `![${f}](${f})`),
    '',
  ].join('\n');
}

/** A step holds when its run passed and fewer than 1% of its users failed. */
const held = (r: StoredResult): boolean => r.passed && r.derived.errorRatePercent < 1;

/**
 * The suite's ceiling searches as one table, from the results on disk (so a
 * step can be re-run alone). Returns the markdown file, or undefined for a
 * suite without steps.
 */
export function writeStepSummary(outDir: string, suiteName: string, suite: Run[], replicaCount: number): string | undefined {
  const steps = suite.flatMap((run) => (run.step ? [{ run, step: run.step, result: readResult(outDir, run.name) }] : []));
  if (steps.length === 0) return undefined;
  const q = (r: StoredResult, metric: string, k: string): string => String(r.artillery.summaries[metric]?.[k] ?? '–');
  const searches = [...new Set(steps.map((s) => s.step.search))];
  const summary = searches.map((search) => {
    const done = steps.flatMap((s) => (s.step.search === search && s.result ? [{ level: s.step.level, result: s.result }] : []));
    const passing = done.filter((s) => held(s.result));
    return { search, highestPassing: passing.length > 0 ? Math.max(...passing.map((s) => s.level)) : null, stepsRun: done.map((s) => s.level) };
  });
  writeFileSync(path.join(outDir, `${suiteName}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  const lines = [`# ${suiteName}: stepped searches`, '', `Each step is its own run on a fresh ${replicaCount}-replica cluster (see <step>.md). A step holds when it has < 1% failed users and passes its Artillery \`ensure\` thresholds and leaves no container.`, ''];
  for (const { search, highestPassing } of summary) {
    lines.push(`## ${search}: highest held ${highestPassing ?? 'none of the steps'}`, '');
    // RSS per connected user only means something where users stay connected (the seed flow's leave at once).
    const returning = search.startsWith('returning');
    lines.push('| step | held | users (failed %) | peak connected | ack p95 ms | first tool:result p50 / p95 ms | message:done p95 ms | peak replica / Artillery CPU % | RSS/user KiB | sandboxes/s |' + (returning ? ' returning / new users | returning: first tool:result p50 / p95 ms | replicas\' mean CPU % | peak parked |' : ''));
    lines.push('|---|---|---|---|---|---|---|---|---|---|' + (returning ? '---|---|---|---|' : ''));
    for (const { run, step, result: r } of steps.filter((s) => s.step.search === search)) {
      if (!r) {
        lines.push(`| ${step.level} | not run | | | | | | | | |`);
        continue;
      }
      lines.push(
        `| [${step.level}](${run.name}.md) | ${held(r) ? 'yes' : `no: ${r.problems.join('; ') || 'errors'}`} | ${r.derived.users} (${r.derived.errorRatePercent}%) | ${r.derived.peakConnectedUsers} | ${q(r, 'socketio.response_time', 'p95')} | ${q(r, 'sandpool.first_tool_result', 'p50')} / ${q(r, 'sandpool.first_tool_result', 'p95')} | ${q(r, 'sandpool.message_done', 'p95')} | ${r.derived.peakCpuPercent} / ${r.derived.peakLoadgenCpuPercent ?? '–'} | ${step.search === 'concurrent users held 5 min' ? (r.derived.rssPerConnectedUserKiB ?? '–') : '–'} | ${r.derived.sandboxesStartedPerSecond} |` +
          (returning
            ? ` ${r.artillery.counters?.['sandpool.users.returning'] ?? 0} / ${r.artillery.counters?.['sandpool.users.new'] ?? 0} | ${q(r, 'sandpool.returning.first_tool_result', 'p50')} / ${q(r, 'sandpool.returning.first_tool_result', 'p95')} | ${r.derived.meanReplicasCpuPercent ?? '–'} | ${r.derived.peakParked ?? '–'} |`
            : ''),
      );
    }
    lines.push('');
  }
  const file = path.join(outDir, `${suiteName}.md`);
  writeFileSync(file, lines.join('\n'));
  return file;
}
