/**
 * The Docker engine goes away mid-run and comes back.
 *
 * This runs against a private dockerd that the test starts, stops and starts
 * again itself (own socket, data root, exec root and pid file), never against
 * the shared engine: stopping that one would kill every other container on the
 * machine, and a test may only end processes it started. The daemon gets the
 * flags scripts/setup.sh gives the shared one. Needs root and `dockerd`;
 * skipped otherwise.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { SandpoolError } from '../../src/errors.js';
import { createContainerPool, type ContainerPool } from '../../src/pool/container-pool.js';
import type { Lease } from '../../src/pool/types.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { spawnProcess, type StartedProcess } from '../../scripts/lib/start-process.js';
import { execFileAsync, testConfig, testLogger, waitFor } from '../support/helpers.js';
import { sleep } from '../../src/util/async.js';

const RUN_DIR = '/run/sandpool-test-dockerd';
const DATA_ROOT = '/var/lib/sandpool-test-dockerd';
const SOCKET = `${RUN_DIR}/docker.sock`;
const PID_FILE = `${RUN_DIR}/docker.pid`;
const LOG_FILE = `${RUN_DIR}/dockerd.log`;
const IMAGE = 'sandpool-sandbox:latest';

/** Why this machine cannot run the test, or undefined when it can. */
async function cannotRun(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to run a private dockerd';
  try {
    await execFileAsync('dockerd', ['--version']);
  } catch {
    return 'no dockerd binary';
  }
  try {
    await execFileAsync('docker', ['image', 'inspect', IMAGE]);
  } catch {
    return `the shared engine has no ${IMAGE} to copy (run scripts/setup.sh)`;
  }
  return undefined;
}

let daemon: StartedProcess | undefined;

/** Starts the private dockerd and waits until it answers. */
async function startDockerd(): Promise<void> {
  daemon = spawnProcess({
    name: 'private dockerd',
    command: 'dockerd',
    args: [
      // scripts/setup.sh's flags: no iptables, no bridge (sandboxes run with NetworkMode none).
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--storage-driver=overlay2',
      // Everything else of its own, so the shared engine never notices it.
      `--host=unix://${SOCKET}`,
      `--data-root=${DATA_ROOT}`,
      `--exec-root=${RUN_DIR}/exec`,
      `--pidfile=${PID_FILE}`,
      `--config-file=${RUN_DIR}/daemon.json`,
      // Sandboxes ignore SIGTERM (node as pid 1): do not wait 15 s for each at stop.
      '--shutdown-timeout=1',
      '--log-level=warn',
    ],
    stdout: { file: LOG_FILE },
    stderr: { file: LOG_FILE },
  });
  await daemon.waitReady(() => docker(['info']).then(() => true), 60_000, 200);
}

/** SIGTERM to the private dockerd (started by this test), then waits for it to be gone. */
async function stopDockerd(): Promise<void> {
  const proc = daemon;
  daemon = undefined;
  await proc?.stop('SIGTERM', 30_000);
}

function docker(args: string[]): Promise<{ stdout: string }> {
  return execFileAsync('docker', ['-H', `unix://${SOCKET}`, ...args], { timeout: 30_000 });
}

/** A private dockerd left behind by a run of this test that was killed: ours to stop. */
async function stopLeftover(): Promise<void> {
  if (!existsSync(PID_FILE)) return;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes(SOCKET)) return;
  process.kill(pid, 'SIGTERM');
  await waitFor('the leftover private dockerd to stop', () => !existsSync(`/proc/${pid}`), 30_000, 200);
}

const skip = await cannotRun();

describe('a Docker engine that stops and comes back', () => {
  const pools: ContainerPool[] = [];

  before(async () => {
    if (skip) return;
    await stopLeftover();
    await rm(DATA_ROOT, { recursive: true, force: true });
    await mkdir(RUN_DIR, { recursive: true });
    await writeFile(`${RUN_DIR}/daemon.json`, '{}\n');
    await startDockerd();
    // The sandbox image, copied from the shared engine.
    await execFileAsync('bash', ['-o', 'pipefail', '-c', `docker save ${IMAGE} | docker -H unix://${SOCKET} load -q`], { timeout: 120_000 });
  });

  after(async () => {
    if (skip) return;
    await Promise.allSettled(pools.map((p) => p.drain(10_000)));
    await stopDockerd();
    await rm(DATA_ROOT, { recursive: true, force: true });
    await rm(RUN_DIR, { recursive: true, force: true });
  });

  it('fails acquires with SANDBOX_FAILED while it is down, stays CPU-idle, and refills to min once it is back', { skip }, async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '4', POOL_ACQUIRE_TIMEOUT_MS: '20000', DOCKER_SOCKET: SOCKET });
    const pool = createContainerPool({
      runtime: createDockerRuntime({ socketPath: SOCKET }),
      pool: cfg.pool,
      sandbox: cfg.sandbox,
      replicaId: cfg.server.replicaId,
      logger: testLogger(),
      // Short backoff so the refill after the restart is quick to observe.
      backoffBaseMs: 100,
      backoffMaxMs: 1000,
    });
    pools.push(pool);
    pool.start();
    assert.equal(await pool.whenWarm(30_000), true);
    const held: Lease = await pool.acquire();
    assert.notEqual((await held.callTool('list_directory', { path: '/workspace' })).isError, true);

    await stopDockerd();

    // A new acquire fails clearly and soon, not after the acquire timeout.
    const started = Date.now();
    const err = await pool.acquire().then(
      () => assert.fail('acquire succeeded with the engine stopped'),
      (e: unknown) => e,
    );
    const waited = Date.now() - started;
    assert.ok(err instanceof SandpoolError && err.code === 'SANDBOX_FAILED', String(err));
    // The client reads what to do; the engine's reason is in the detail, for the log.
    assert.match(`${err.message}\n${err.detail ?? ''}`, /docker\.sock|ENOENT|ECONNREFUSED|connect/i);
    assert.ok(waited < 10_000, `acquire failed only after ${waited} ms (acquire timeout 20000 ms)`);
    // The holder of a sandbox that went down with the engine learns it too.
    await assert.rejects(held.callTool('list_directory', { path: '/workspace' }), (e: unknown) => e instanceof SandpoolError && e.code === 'SANDBOX_FAILED');

    // Retries are paced by the backoff: the process idles while the engine is away.
    const failedBefore = pool.stats().failed;
    const cpuBefore = process.cpuUsage();
    const wallBefore = Date.now();
    await sleep(3000);
    const cpu = process.cpuUsage(cpuBefore);
    const cpuShare = (cpu.user + cpu.system) / 1000 / (Date.now() - wallBefore);
    assert.ok(cpuShare <= 0.1, `process used ${(cpuShare * 100).toFixed(1)}% of a core while the engine was down`);
    assert.ok(pool.stats().failed - failedBefore <= 20, `${pool.stats().failed - failedBefore} failed starts in 3 s: not backing off`);
    assert.equal(pool.stats().ready, false);

    await startDockerd();
    await waitFor('the pool refilled to min by itself', () => pool.stats().idle === 2 && pool.stats().ready, 60_000);
    const lease = await pool.acquire();
    assert.notEqual((await lease.callTool('list_directory', { path: '/workspace' })).isError, true);
    await Promise.all([lease.release(), held.release()]);
  });
});
