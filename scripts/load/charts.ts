/** A run's SVG charts (vega-lite, rendered headless): latency over time, users vs RSS, users, pool. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { ArtilleryReport } from './artillery.js';
import type { Sample } from './sampler.js';

async function svg(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}

/** Writes <outDir>/<name>-<chart>.svg and returns the file names. */
export async function drawCharts(outDir: string, name: string, intermediate: ArtilleryReport['intermediate'], samples: Sample[]): Promise<string[]> {
  const files: string[] = [];
  const t0 = Number(intermediate[0]?.period ?? 0);
  const latency = intermediate.flatMap((p) =>
    Object.entries(p.summaries)
      .filter(([metric]) => ['socketio.response_time', 'sandpool.first_tool_result', 'sandpool.message_done'].includes(metric))
      .flatMap(([metric, s]) => (['p50', 'p95', 'p99'] as const).map((q) => ({ t: (Number(p.period) - t0) / 1000, metric: `${metric} ${q}`, ms: s[q] ?? null }))),
  );
  const write = async (suffix: string, spec: vl.TopLevelSpec): Promise<void> => {
    const file = path.join(outDir, `${name}-${suffix}.svg`);
    writeFileSync(file, await svg(spec));
    files.push(path.basename(file));
  };
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', width: 640, height: 260 } as const;
  if (latency.length > 0) {
    await write('latency', {
      ...base,
      title: `${name}: latency percentiles over time`,
      data: { values: latency },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 't', type: 'quantitative', title: 'seconds into the run' },
        y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'symlog' } },
        color: { field: 'metric', type: 'nominal' },
      },
    });
  }
  // Per replica: its own connected sockets against its own RSS, in time order.
  const mem = samples.flatMap((s) => s.replicas.map((r) => ({ users: s.perReplica[r.id] ?? 0, rss: r.rssMiB, replica: r.id, t: s.t })));
  await write('users-rss', {
    ...base,
    title: `${name}: connected users vs RSS, per replica`,
    data: { values: mem },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'users', type: 'quantitative', title: 'connected users on the replica' },
      y: { field: 'rss', type: 'quantitative', title: 'replica RSS MiB' },
      color: { field: 'replica', type: 'nominal' },
      order: { field: 't', type: 'quantitative' },
      tooltip: [{ field: 't', title: 'seconds into the run' }, { field: 'users' }, { field: 'rss' }],
    },
  });
  await write('users', {
    ...base,
    title: `${name}: connected users (all replicas)`,
    data: { values: samples.map((s) => ({ t: s.t, users: s.pool.connections })) },
    mark: 'line',
    encoding: { x: { field: 't', type: 'quantitative', title: 'seconds into the run' }, y: { field: 'users', type: 'quantitative', title: 'connected sockets' } },
  });
  await write('pool', {
    ...base,
    title: `${name}: sandbox pool over time (all replicas)`,
    // spareTarget: how many idle spares the replicas aim for (it follows the arrival rate); older results lack it.
    data: { values: samples.flatMap((s) => (['idle', 'active', 'pending', 'spareTarget', 'creating'] as const).flatMap((k) => (s.pool[k] === undefined ? [] : [{ t: s.t, state: k, n: s.pool[k] }]))) },
    mark: 'line',
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds into the run' },
      y: { field: 'n', type: 'quantitative', title: 'sandboxes / waiters' },
      color: { field: 'state', type: 'nominal' },
    },
  });
  return files;
}
