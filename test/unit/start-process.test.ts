import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileExists, httpOk, spawnProcess, startProcess } from '../../scripts/lib/start-process.js';
import { startHangUpServer } from '../support/hang-up-server.js';

/** A node child running `code`. */
const node = (code: string, name = 'child'): { name: string; command: string; args: string[] } => ({ name, command: process.execPath, args: ['-e', code] });

describe('startProcess', () => {
  it('resolves once the output matches, and keeps stdout and stderr apart as well as together', async () => {
    const proc = await startProcess({
      ...node("console.log('warming'); console.error('a warning'); setTimeout(() => console.log('ready now'), 200); setInterval(() => {}, 1000);"),
      ready: /ready now/,
      readyTimeoutMs: 5_000,
    });
    try {
      assert.match(proc.output(), /warming[\s\S]*a warning[\s\S]*ready now/);
      assert.equal(proc.output('stderr'), 'a warning\n');
      assert.equal(proc.exitStatus(), undefined);
    } finally {
      assert.equal((await proc.stop()).signal, 'SIGTERM');
    }
  });

  it('fails at once, with the exit code and the last output lines, when the child dies before it is ready', async () => {
    const started = Date.now();
    await assert.rejects(
      startProcess({ ...node("console.error('line 1\\nline 2: bad config'); process.exit(3);", 'doomed'), ready: /never/, readyTimeoutMs: 10_000 }),
      (err: Error) => {
        assert.match(err.message, /^doomed exited with code 3 before it was ready/);
        assert.match(err.message, /line 1\nline 2: bad config/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5_000, 'waited for the timeout although the child had died');
  });

  it('times out with the last output lines, and stops the child it gave up on', async () => {
    let pid: number | undefined;
    await assert.rejects(
      startProcess({
        ...node("console.log('pid ' + process.pid); for (let i = 1; i <= 30; i++) console.log('line ' + i); setInterval(() => {}, 1000);", 'slow'),
        ready: (out) => {
          pid ??= Number(/^pid (\d+)/.exec(out)?.[1]) || undefined;
          return false;
        },
        // Long enough for a child on a busy machine to print its 30 lines (they are what is checked).
        readyTimeoutMs: 3_000,
      }),
      (err: Error) => {
        assert.match(err.message, /^slow not ready within 3000 ms, still running; last output:/);
        // The last 20 lines, not the first ones.
        assert.match(err.message, /line 30$/);
        assert.doesNotMatch(err.message, /line 10\n/);
        return true;
      },
    );
    assert.ok(pid !== undefined);
    assert.throws(() => process.kill(pid!, 0), { code: 'ESRCH' }, 'the child still runs');
  });

  it('waits for an async probe (a file appearing)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'start-process-'));
    const file = path.join(dir, 'state.json');
    try {
      const proc = await startProcess({
        ...node(`setTimeout(() => require('node:fs').writeFileSync(${JSON.stringify(file)}, '{}'), 300); setInterval(() => {}, 1000);`),
        ready: fileExists(file),
        readyTimeoutMs: 5_000,
      });
      await proc.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives up at the deadline on a readiness check that never settles, and stops the child', { timeout: 10_000 }, async () => {
    await assert.rejects(
      // The child ends by itself, so that a waitReady that hangs fails this file instead of holding it open.
      startProcess({ ...node('setTimeout(() => {}, 8_000);', 'stuck'), ready: () => new Promise<boolean>(() => undefined), readyTimeoutMs: 300 }),
      /stuck not ready within 300 ms \(last check: stuck's readiness check timed out/,
    );
  });

  it('retries an HTTP probe the server hung up on (Node 20\'s fetch alone would wait for ever)', { timeout: 10_000 }, async () => {
    const server = await startHangUpServer(2);
    try {
      const proc = await startProcess({ ...node('setTimeout(() => {}, 9_000);'), ready: httpOk(server.url, 300), readyTimeoutMs: 8_000, pollMs: 50 });
      await proc.stop();
      assert.equal(server.connections(), 3);
    } finally {
      await server.close();
    }
  });

  it('names a command that cannot start', async () => {
    await assert.rejects(startProcess({ command: 'sandpool-no-such-command', ready: /x/, readyTimeoutMs: 2_000 }), /sandpool-no-such-command failed to start: .*ENOENT/);
  });
});

describe('stop', () => {
  it('escalates to SIGKILL when the child ignores the signal, within the bound', async () => {
    const proc = spawnProcess(node("process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000);"));
    await proc.waitReady(/up/, 5_000);
    const started = Date.now();
    const status = await proc.stop('SIGTERM', 300);
    assert.equal(status.signal, 'SIGKILL');
    assert.ok(Date.now() - started < 3_000);
    assert.match(proc.output(), /ignored/);
  });

  it('reports a clean exit and is a no-op for a child that already ended', async () => {
    const proc = spawnProcess(node("process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000); console.log('up');"));
    await proc.waitReady(/up/, 5_000);
    assert.deepEqual(await proc.stop(), { code: 0, signal: null });
    assert.deepEqual(await proc.stop('SIGKILL', 100), { code: 0, signal: null });
  });

  it('reads the last lines of a file sink for its errors', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'start-process-'));
    const log = path.join(dir, 'child.log');
    writeFileSync(log, '');
    try {
      const proc = spawnProcess({ ...node("console.log('to the file'); process.exit(1);"), stdout: { file: log }, stderr: { file: log } });
      assert.equal((await proc.exited).code, 1);
      assert.equal(proc.output(), '');
      assert.equal(proc.tail(), 'to the file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
