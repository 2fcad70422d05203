import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { spawnProcess } from '../../scripts/lib/start-process.js';

const LOAD_RUNNER = 'dist/scripts/load/index.js';

interface LoadResult {
  passed: boolean;
  problems: string[];
  derived: {
    users: number;
    failedUsers: number;
    containersLeftAfterStop: number;
    peakContainers: number;
    peakSessions: number;
    peakConnectionsPerReplica: Record<string, number>;
  };
  artillery: { counters: Record<string, number>; summaries: Record<string, { p95: number }> };
  samples: unknown[];
  charts: string[];
}

describe('npm run load:smoke (Artillery against a 2-replica cluster behind nginx)', () => {
  it('runs all three scenarios with no failed user, exact backpressure, charts, and nothing left behind', async () => {
    const out = 'test-output/load-smoke';
    rmSync(out, { recursive: true, force: true });
    const load = spawnProcess({ command: process.execPath, args: [LOAD_RUNNER, '--suite', 'smoke', '--out', out], stdout: 'ignore' });
    const { code } = await load.exited;
    assert.equal(code, 0, load.output('stderr').slice(-3000));

    const read = (name: string): LoadResult => JSON.parse(readFileSync(`${out}/${name}.json`, 'utf8')) as LoadResult;
    const phase2 = read('smoke-phase2');
    assert.equal(phase2.passed, true, phase2.problems.join('; '));
    assert.ok(phase2.derived.users > 0);
    assert.equal(phase2.derived.failedUsers, 0);
    // Real timings from the processor, not only the ack.
    assert.ok(phase2.artillery.summaries['sandpool.message_done']?.p95 !== undefined);
    assert.ok(phase2.artillery.summaries['socketio.response_time']?.p95 !== undefined);
    assert.ok(phase2.derived.peakContainers > 0, 'the sampler saw no sandbox');

    const bp = read('smoke-backpressure');
    assert.equal(bp.passed, true, bp.problems.join('; '));
    const users = bp.artillery.counters['vusers.completed'] ?? 0;
    assert.ok(users > 0);
    assert.equal(bp.artillery.counters['sandpool.refused.TOO_MANY_REQUESTS'], users * 5);

    const conn = read('smoke-connections');
    assert.equal(conn.passed, true, conn.problems.join('; '));
    // Every virtual user is its own sandpool user, and nginx spreads them over both replicas.
    assert.ok(conn.derived.peakSessions >= 20, `only ${conn.derived.peakSessions} sessions: virtual users are not distinct users`);
    const perReplica = Object.values(conn.derived.peakConnectionsPerReplica);
    assert.equal(perReplica.length, 2);
    assert.ok(perReplica.every((n) => n >= 5), `lopsided spread: ${JSON.stringify(conn.derived.peakConnectionsPerReplica)}`);
    for (const r of [phase2, bp, conn]) {
      assert.equal(r.derived.containersLeftAfterStop, 0);
      assert.ok(r.samples.length > 0);
      assert.equal(r.charts.length, 4);
    }
    const files = readdirSync(out);
    for (const chart of phase2.charts) {
      assert.ok(files.includes(chart));
      assert.match(readFileSync(`${out}/${chart}`, 'utf8'), /^<svg/);
    }
    // Users vs RSS plots RSS against users, and a run's charts can be redrawn from its stored JSON alone.
    const rssChart = `${out}/smoke-connections-users-rss.svg`;
    assert.match(readFileSync(rssChart, 'utf8'), /connected users on the replica/);
    rmSync(rssChart);
    const redraw = spawnProcess({ command: process.execPath, args: [LOAD_RUNNER, '--suite', 'smoke', '--out', out, '--only', 'smoke-connections', '--rechart'], stdout: 'ignore', stderr: 'ignore' });
    assert.equal((await redraw.exited).code, 0);
    assert.match(readFileSync(rssChart, 'utf8'), /^<svg[\s\S]*connected users on the replica/);
  });
});
