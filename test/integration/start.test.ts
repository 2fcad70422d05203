/**
 * `npm start` provisions like `npm test` (scripts/lib/docker-engine.sh): a
 * Docker engine where none answers, the sandbox image, then the server; and
 * where it cannot (no root, no sudo), the unisolated process fallback, loudly.
 *
 * "No engine answers" is a socket path nothing listens on (DOCKER_SOCKET):
 * the engine npm start brings up there is a private one, with its state
 * beside the socket, and the shared engine never notices. The test ends that
 * engine itself (npm start leaves it running, on purpose) and removes its state.
 */
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/types.js';
import { spawnProcess, type StartedProcess } from '../../scripts/lib/start-process.js';
import { execFileAsync, uniqueReplica, waitFor } from '../support/helpers.js';
import { copyCheckout } from '../support/checkout-copy.js';

/** The server's URL, from its "sandpool listening" log line. */
function listeningUrl(output: string): string | undefined {
  return /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*sandpool listening/.exec(output)?.[1];
}

async function poolStats(url: string): Promise<{ runtime: string; isolated: boolean }> {
  return (await (await fetch(`${url}/stats/pool`)).json()) as { runtime: string; isolated: boolean };
}

/** Ctrl-C to npm start's process group; resolves with everything it printed. */
async function interrupt(npm: StartedProcess): Promise<string> {
  npm.signal('SIGINT');
  await npm.exited;
  return npm.output();
}

describe('npm start provisions the Docker engine', () => {
  const dir = `/var/lib/sandpool-test-start-${process.pid}`;
  const socket = `${dir}/docker.sock`;
  const docker = (args: string[]): Promise<{ stdout: string }> => execFileAsync('docker', ['-H', `unix://${socket}`, ...args], { timeout: 30_000 });
  const work = mkdtempSync(path.join(os.tmpdir(), 'sandpool-start-root-'));

  after(async () => {
    rmSync(work, { recursive: true, force: true });
    // The engine npm start left running (its own session): this test's to end.
    const pidFile = `${dir}/docker.pid`;
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(socket)) {
        process.kill(pid, 'SIGTERM');
        await waitFor('the private dockerd to stop', () => !existsSync(`/proc/${pid}`), 60_000, 200);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts an engine where none answers, builds the sandbox image in it, serves isolated sandboxes; Ctrl-C stops the server, not the engine', { timeout: 600_000 }, async () => {
    assert.equal(process.getuid?.(), 0, 'starting an engine needs root (or password-less sudo); run the tests as root');
    const replica = uniqueReplica('start');
    copyCheckout(work);
    const npm = spawnProcess({
      command: 'npm',
      args: ['start'],
      cwd: work,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', REPLICA_ID: replica, POOL_MIN_SIZE: '1', DOCKER_SOCKET: socket },
      signalGroup: true,
    });
    try {
      await npm.waitReady(/Initialized with 1 idle containers/, 540_000);
      const out = npm.output();
      assert.match(out, new RegExp(`starting dockerd on ${socket}`));
      assert.match(out, /\[pool\/build\] built sandpool-sandbox:latest/);
      const url = listeningUrl(out);
      assert.ok(url, out.slice(-2000));
      const stats = await poolStats(url);
      assert.equal(stats.runtime, 'docker');
      assert.equal(stats.isolated, true);
      const { stdout } = await docker(['ps', '-q', '--filter', `label=${LABELS.replica}=${replica}`]);
      assert.equal(stdout.trim().split('\n').filter(Boolean).length, 1, 'the warm sandbox runs in the engine npm start brought up');

      const stopped = await interrupt(npm);
      assert.match(stopped, /shutdown complete/, stopped.slice(-2000));
      assert.equal((await docker(['ps', '-aq', '--filter', `label=${LABELS.replica}=${replica}`])).stdout.trim(), '');
      // Its own session: the terminal's Ctrl-C did not reach it.
      await docker(['info']);
    } finally {
      await npm.stop('SIGKILL', 5_000);
    }
  });
});

describe('npm start without an engine, root or sudo', () => {
  // A copy the unprivileged user may compile in (dist/), its dependencies linked.
  const work = mkdtempSync(path.join(os.tmpdir(), 'sandpool-start-nobody-'));
  const NOBODY = 65534;

  after(() => rmSync(work, { recursive: true, force: true }));

  it('says loudly that sandboxes are not isolated, serves them as child processes, and stops on Ctrl-C', { timeout: 180_000 }, async () => {
    copyCheckout(work);
    await execFileAsync('chown', ['-R', `${NOBODY}:${NOBODY}`, work]);
    chownSync(work, NOBODY, NOBODY);
    const npm = spawnProcess({
      command: 'setpriv',
      args: [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'npm', 'start'],
      cwd: work,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: work,
        npm_config_cache: path.join(work, '.npm'),
        PORT: '0',
        LOG_LEVEL: 'info',
        POOL_MIN_SIZE: '1',
        // Nothing listens there, and this user can start nothing.
        DOCKER_SOCKET: path.join(work, 'no-engine', 'docker.sock'),
      },
      signalGroup: true,
    });
    try {
      await npm.waitReady(/sandpool listening/, 150_000);
      const out = npm.output();
      assert.match(out, /cannot install or start one \(not root, no password-less sudo\)/);
      assert.match(out, /NOT isolated/);
      const url = listeningUrl(out);
      assert.ok(url, out.slice(-2000));
      await waitFor('a warm child-process sandbox', async () => (await poolStats(url)).runtime === 'process', 30_000);
      assert.equal((await poolStats(url)).isolated, false);
      const stopped = await interrupt(npm);
      assert.match(stopped, /shutdown complete/, stopped.slice(-2000));
    } finally {
      await npm.stop('SIGKILL', 5_000);
    }
  });
});
