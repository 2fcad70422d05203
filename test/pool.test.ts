import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Config } from '../src/config/config.js';
import { SandpoolError } from '../src/errors.js';
import { createContainerPool, type ContainerPool } from '../src/pool/container-pool.js';
import { createDockerRuntime } from '../src/runtime/docker-runtime.js';
import { LABELS } from '../src/runtime/types.js';
import { dockerInspect, dockerPs, execFileAsync, testConfig, testLogger, textOf, waitFor } from './helpers.js';

const runtime = createDockerRuntime();
const pools: ContainerPool[] = [];

function makePool(cfg: Config, extra: { backoffBaseMs?: number; evictionIntervalMs?: number } = {}): ContainerPool {
  const pool = createContainerPool({ runtime, pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.replicaId, logger: testLogger(), ...extra });
  pools.push(pool);
  pool.start();
  return pool;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<SandpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SandpoolError, `expected a SandpoolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

after(async () => {
  await Promise.all(pools.map((p) => p.drain(20_000)));
});

describe('ContainerPool on a real Docker engine', () => {
  it('pre-warms min sandboxes; a lease lists /workspace and writes then reads a file', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    assert.equal(await pool.whenWarm(30_000), true);
    assert.equal(pool.stats().idle, 2);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.replicaId }).then((ids) => ids.length), 2);

    const lease = await pool.acquire();
    const toolNames = lease.sandbox.tools.map((t) => t.name);
    for (const name of ['list_directory', 'write_file', 'read_text_file', 'search_files', 'directory_tree']) {
      assert.ok(toolNames.includes(name), `tools/list lacks ${name}: ${toolNames.join(', ')}`);
    }
    const empty = await lease.callTool('list_directory', { path: '/workspace' });
    assert.notEqual(empty.isError, true, textOf(empty));
    await lease.callTool('write_file', { path: '/workspace/notes.txt', content: 'hello from the pool' });
    const read = await lease.callTool('read_text_file', { path: '/workspace/notes.txt' });
    assert.equal(textOf(read), 'hello from the pool');
    const listed = await lease.callTool('list_directory', { path: '/workspace' });
    assert.match(textOf(listed), /\[FILE\] notes\.txt/);
    await lease.release();
  });

  it('destroys a released sandbox and returns to min idle in the background', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const lease = await pool.acquire();
    const id = lease.sandbox.id;
    assert.equal(pool.stats().active, 1);
    await lease.release();
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.replicaId })).includes(id), false, 'released container still exists');
    await assert.rejects(dockerInspect(id), /No such/i);
    await waitFor('pool back to 2 idle', () => pool.stats().idle === 2 && pool.stats().active === 0);
    const ids = await dockerPs({ [LABELS.replica]: cfg.replicaId });
    assert.equal(ids.length, 2);
    assert.equal(ids.includes(id), false);
  });

  it('never lets two leases share a container or a file', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
    assert.ok(a && b);
    assert.notEqual(a.sandbox.id, b.sandbox.id);
    await a.callTool('write_file', { path: '/workspace/secret-a.txt', content: 'only for A' });
    const bList = await b.callTool('list_directory', { path: '/workspace' });
    assert.doesNotMatch(textOf(bList), /secret-a/);
    const bRead = await b.callTool('read_text_file', { path: '/workspace/secret-a.txt' });
    assert.equal(bRead.isError, true, 'B could read A\'s file');
    // A used workspace never comes back: the next lease gets a fresh container.
    const aId = a.sandbox.id;
    await a.release();
    const c = await pool.acquire();
    assert.notEqual(c.sandbox.id, aId);
    assert.doesNotMatch(textOf(await c.callTool('list_directory', { path: '/workspace' })), /secret-a/);
    await Promise.all([b.release(), c.release()]);
  });

  it('fails an acquire beyond max with POOL_EXHAUSTED after the acquire timeout', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '0', POOL_MAX_SIZE: '2', POOL_ACQUIRE_TIMEOUT_MS: '1500' });
    const pool = makePool(cfg);
    const held = [await pool.acquire(), await pool.acquire()];
    const started = Date.now();
    const err = await expectCode(pool.acquire(), 'POOL_EXHAUSTED');
    const waited = Date.now() - started;
    assert.ok(waited >= 1400, `gave up after ${waited} ms, before the acquire timeout`);
    assert.match(err.message, /2 in use, 0 starting, max 2/);
    assert.equal(pool.stats().total, 2);
    // Capacity comes back as soon as a lease is released.
    await held[0]!.release();
    const next = await pool.acquire();
    await Promise.all([next.release(), held[1]!.release()]);
  });

  it('refuses waiters beyond POOL_MAX_WAITING_CLIENTS at once', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '0', POOL_MAX_SIZE: '1', POOL_ACQUIRE_TIMEOUT_MS: '3000', POOL_MAX_WAITING_CLIENTS: '1' });
    const pool = makePool(cfg);
    const held = await pool.acquire();
    const waiter = pool.acquire();
    const err = await expectCode(pool.acquire(), 'POOL_EXHAUSTED');
    assert.match(err.message, /waiting/);
    await held.release();
    const got = await waiter;
    await got.release();
  });

  it('fails fast with SANDBOX_FAILED on a broken image, backs off, and stays CPU-idle', async () => {
    const cfg = testConfig({ POOL_IMAGE: 'sandpool-does-not-exist:never', POOL_MIN_SIZE: '2', POOL_ACQUIRE_TIMEOUT_MS: '20000' });
    const pool = makePool(cfg, { backoffBaseMs: 200 });
    const started = Date.now();
    const err = await expectCode(pool.acquire(), 'SANDBOX_FAILED');
    assert.ok(Date.now() - started < 10_000, 'a broken image must not wait for the acquire timeout');
    assert.match(err.message, /sandpool-does-not-exist/);
    // Watch it for 3 s: attempts are paced by the backoff, not a busy loop.
    const failedBefore = pool.stats().failed;
    const cpuBefore = process.cpuUsage();
    const wallBefore = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const cpu = process.cpuUsage(cpuBefore);
    const cpuShare = (cpu.user + cpu.system) / 1000 / (Date.now() - wallBefore);
    const attempts = pool.stats().failed - failedBefore;
    assert.ok(attempts <= 8, `${attempts} failed creates in 3 s: create is not backing off`);
    assert.ok(cpuShare < 0.5, `process used ${(cpuShare * 100).toFixed(0)}% of a core while failing`);
    const stats = pool.stats();
    assert.equal(stats.ready, false);
    assert.ok(stats.consecutiveFailures >= 1);
    assert.match(stats.lastError ?? '', /sandpool-does-not-exist/);
    await expectCode(pool.acquire(), 'SANDBOX_FAILED');
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.replicaId })).length, 0, 'failed creates left containers behind');
  });

  it('recovers by itself once the image appears, refilling to min', async () => {
    const image = `sandpool-test-late-${Date.now()}:latest`;
    const cfg = testConfig({ POOL_IMAGE: image, POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg, { backoffBaseMs: 100 });
    await waitFor('a failed create', () => pool.stats().failed > 0);
    await execFileAsync('docker', ['tag', 'sandpool-sandbox:latest', image]);
    try {
      await waitFor('pool refilled to min after the image appeared', () => pool.stats().idle === 2, 60_000);
      assert.equal(pool.stats().ready, true);
      const lease = await pool.acquire();
      await lease.release();
    } finally {
      await pool.drain(20_000);
      await execFileAsync('docker', ['rmi', image]).catch(() => undefined);
    }
  });

  it('never hands out a sandbox killed while idle, and replaces it', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const ids = await dockerPs({ [LABELS.replica]: cfg.replicaId });
    assert.equal(ids.length, 2);
    await execFileAsync('docker', ['kill', ...ids]);
    // Acquire right away, before the pool can notice by itself.
    const lease = await pool.acquire();
    assert.equal(ids.includes(lease.sandbox.id), false, 'handed out a killed container');
    const res = await lease.callTool('list_directory', { path: '/workspace' });
    assert.notEqual(res.isError, true);
    await lease.release();
    await waitFor('killed containers removed and pool refilled', async () => {
      const now = await dockerPs({ [LABELS.replica]: cfg.replicaId });
      return now.every((id) => !ids.includes(id)) && pool.stats().idle === 2;
    });
  });

  it('evicts a sandbox that dies while idle without waiting for a borrow', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const [id] = await dockerPs({ [LABELS.replica]: cfg.replicaId });
    assert.ok(id);
    await execFileAsync('docker', ['kill', id]);
    await waitFor('dead idle sandbox evicted and replaced', async () => {
      const now = await dockerPs({ [LABELS.replica]: cfg.replicaId });
      return !now.includes(id) && now.length === 1 && pool.stats().idle === 1;
    });
  });

  it('gives the holder a clear SANDBOX_FAILED when its sandbox is killed while leased', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const lease = await pool.acquire();
    await execFileAsync('docker', ['kill', lease.sandbox.id]);
    const err = await expectCode(lease.callTool('list_directory', { path: '/workspace' }), 'SANDBOX_FAILED');
    assert.match(err.message, /exited with code 137|closed|gone/);
    assert.equal(lease.sandbox.isUsable(), false);
    await lease.release();
    await waitFor('dead leased container removed', async () => !(await dockerPs({ [LABELS.replica]: cfg.replicaId })).includes(lease.sandbox.id));
  });

  it('runs every container hardened and labelled', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1', SANDBOX_MEMORY_MB: '200', SANDBOX_CPUS: '0.75', SANDBOX_PIDS_LIMIT: '50' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const [id] = await dockerPs({ [LABELS.replica]: cfg.replicaId });
    assert.ok(id);
    const info = await dockerInspect(id);
    assert.equal(info.HostConfig.NetworkMode, 'none');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.ok(info.HostConfig.SecurityOpt?.includes('no-new-privileges'));
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.match(info.HostConfig.Tmpfs?.['/workspace'] ?? '', /size=\d+/);
    assert.match(info.HostConfig.Tmpfs?.['/tmp'] ?? '', /size=\d+/);
    assert.equal(info.HostConfig.Memory, 200 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 750_000_000);
    assert.equal(info.HostConfig.PidsLimit, 50);
    assert.equal(info.Config.User, '1000:1000');
    const labels = info.Config.Labels;
    assert.equal(labels[LABELS.app], 'sandpool');
    assert.equal(labels[LABELS.replica], cfg.replicaId);
    assert.equal(labels[LABELS.pool], 'default');
    assert.ok(Math.abs(Number(labels[LABELS.created]) - Date.now()) < 120_000, `created label ${labels[LABELS.created]}`);
    // And the hardening holds from inside: no network, read-only root, not root.
    const { stdout } = await execFileAsync('docker', [
      'exec', id, 'node', '-e',
      `const fs=require('fs');let ro='no';try{fs.writeFileSync('/opt/x','x')}catch(e){ro=e.code}
       console.log(JSON.stringify({uid:process.getuid(),ro,ifaces:Object.keys(require('os').networkInterfaces())}))`,
    ]);
    const inside = JSON.parse(stdout) as { uid: number; ro: string; ifaces: string[] };
    assert.equal(inside.uid, 1000);
    assert.equal(inside.ro, 'EROFS');
    assert.deepEqual(inside.ifaces.filter((i) => i !== 'lo'), []);
  });

  it('with ENABLE_CONTAINER_POOL=false keeps no spares and creates each sandbox on demand', async () => {
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_MIN_SIZE: '3' });
    const pool = makePool(cfg);
    assert.equal(await pool.whenWarm(1000), true);
    assert.equal(pool.stats().idle, 0);
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.replicaId })).length, 0);
    const lease = await pool.acquire();
    assert.equal((await lease.callTool('list_directory', { path: '/workspace' })).isError, undefined);
    assert.equal(pool.stats().active, 1);
    await lease.release();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pool.stats().idle, 0);
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.replicaId })).length, 0);
  });

  it('bounds concurrent sandbox starts to POOL_CREATE_CONCURRENCY and still serves every waiter', async () => {
    // Regression: 40 parallel starts on 2 cores all finished late and every
    // waiter hit POOL_EXHAUSTED (bench:chat). Count starts in flight at the runtime.
    const inner = createDockerRuntime();
    let inFlight = 0;
    let peak = 0;
    const counting = {
      ...inner,
      async start(spec: Parameters<typeof inner.start>[0]) {
        inFlight++;
        peak = Math.max(peak, inFlight);
        try {
          return await inner.start(spec);
        } finally {
          inFlight--;
        }
      },
    };
    const cfg = testConfig({ POOL_MIN_SIZE: '0', POOL_MAX_SIZE: '6', POOL_CREATE_CONCURRENCY: '2' });
    const pool = createContainerPool({ runtime: counting, pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.replicaId, logger: testLogger() });
    pools.push(pool);
    pool.start();
    const leases = await Promise.all(Array.from({ length: 6 }, () => pool.acquire()));
    assert.equal(new Set(leases.map((l) => l.sandbox.id)).size, 6);
    assert.ok(peak <= 2, `${peak} sandbox starts ran at once`);
    assert.equal(peak, 2, 'starts did not run in parallel at all');
    await Promise.all(leases.map((l) => l.release()));
  });

  it('drain removes idle and leased containers alike', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const lease = await pool.acquire();
    await pool.drain(20_000);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.replicaId }), []);
    await expectCode(pool.acquire(), 'SHUTTING_DOWN');
    await expectCode(lease.callTool('list_directory', { path: '/workspace' }), 'SANDBOX_FAILED');
    const s = pool.stats();
    assert.equal(s.idle + s.active + s.creating, 0);
  });
});
