import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Config } from '../../src/config/config.js';
import { startedPools } from '../../scripts/lib/started-pools.js';
import type { ContainerPool, ContainerPoolOptions } from '../../src/pool/container-pool.js';
import type { Lease } from '../../src/pool/types.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { LABELS, type ContainerRuntime, type SandboxProcess, type SandboxSpec } from '../../src/runtime/types.js';
import { sleep } from '../../src/util/async.js';
import { dockerInspect, dockerPs, execFileAsync, testConfig, testLogger, textOf, waitFor } from '../support/helpers.js';
import { assertAllStartsFailed, assertLeasesIsolated, assertOnlyOldestFailed, expectCode, lowestDuring, told } from '../support/pool-checks.js';

const runtime = createDockerRuntime();
const pools = startedPools();

/** A replica's pool on the real engine; `extra.runtime` may wrap the real Docker runtime (never a fake of it). */
const makePool = (cfg: Config, extra: Pick<Partial<ContainerPoolOptions>, 'backoffBaseMs' | 'backoffMaxMs' | 'evictionIntervalMs' | 'runtime'> = {}): ContainerPool =>
  pools.fromConfig(cfg, runtime, testLogger(), extra);

/** The real Docker runtime with `start` wrapped: the engine still does every start. */
function wrapStart(wrap: (spec: SandboxSpec, realStart: (spec: SandboxSpec) => Promise<SandboxProcess>) => Promise<SandboxProcess>): ContainerRuntime {
  const inner = createDockerRuntime();
  return { ...inner, start: (spec) => wrap(spec, (s) => inner.start(s)) };
}

/** Share of one core this process used while `work` ran. */
async function cpuShareDuring(work: () => Promise<unknown>): Promise<number> {
  const cpuBefore = process.cpuUsage();
  const wallBefore = Date.now();
  await work();
  const cpu = process.cpuUsage(cpuBefore);
  return (cpu.user + cpu.system) / 1000 / Math.max(1, Date.now() - wallBefore);
}

after(async () => {
  await pools.drainAll(20_000);
});

/*
 * The twin of test/unit/pool.test.ts, on purpose: the unit file runs the
 * pool's rules on a fake runtime in seconds; this one keeps them honest on a
 * real engine (real start times and failures, kills, image errors, labels
 * and hardening), for the behaviours a fake could get wrong.
 */
describe('ContainerPool on a real Docker engine', () => {
  it('pre-warms min sandboxes; a lease lists /workspace and writes then reads a file', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    assert.equal(await pool.whenWarm(30_000), true);
    assert.equal(pool.stats().idle, 2);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.server.replicaId }).then((ids) => ids.length), 2);

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
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).includes(id), false, 'released container still exists');
    await assert.rejects(dockerInspect(id), /No such/i);
    await waitFor('pool back to 2 idle', () => pool.stats().idle === 2 && pool.stats().active === 0);
    const ids = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
    assert.equal(ids.length, 2);
    assert.equal(ids.includes(id), false);
  });

  it('never lets two leases share a container or a file', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    await assertLeasesIsolated(pool);
  });

  it('fails an acquire beyond max with POOL_EXHAUSTED after the acquire timeout', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '2', POOL_ACQUIRE_TIMEOUT_MS: '1500' });
    const pool = makePool(cfg);
    // The two held leases first, however long their starts take on a loaded machine (seen: "1 in use, 1 starting"
    // after the 1.5 s timeout): a start outlives the acquire it was for and serves the next one.
    const acquireOnceStarted = (): Promise<Lease> =>
      waitFor('a sandbox for the held leases', () => pool.acquire().catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'POOL_EXHAUSTED') throw err;
        return undefined;
      }), 60_000, 100);
    const held = [await acquireOnceStarted(), await acquireOnceStarted()];
    const started = Date.now();
    const err = await expectCode(pool.acquire(), 'POOL_EXHAUSTED');
    const waited = Date.now() - started;
    assert.ok(waited >= 1400, `gave up after ${waited} ms, before the acquire timeout`);
    // The point is "never hangs": the timeout plus slack for a busy machine.
    assert.ok(waited <= 1500 + 5000, `gave up only after ${waited} ms (acquire timeout 1500 ms)`);
    assert.match(told(err), /2 in use, 0 starting, max 2/);
    assert.equal(pool.stats().total, 2);
    // Capacity comes back once a lease is released: its room starts a new sandbox (as long as a start takes here).
    await held[0]!.release();
    const next = await acquireOnceStarted();
    await Promise.all([next.release(), held[1]!.release()]);
  });

  it('refuses waiters beyond POOL_MAX_WAITING_CLIENTS at once', async () => {
    // The refusal is at once, whatever the acquire timeout; a long one lets the held lease and the waiter each
    // wait out a cold start on a loaded machine (6-7 s seen in load:smoke beside npm test).
    const cfg = testConfig({ POOL_MIN_SIZE: '0', POOL_MAX_SIZE: '1', POOL_ACQUIRE_TIMEOUT_MS: '20000', POOL_MAX_WAITING_CLIENTS: '1' });
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
    // The client reads what to do; the image's name is in the detail, for the log.
    assert.match(told(err), /sandpool-does-not-exist/);
    // Watch it for 3 s: attempts are paced by the backoff, not a busy loop.
    const failedBefore = pool.stats().failed;
    const cpuShare = await cpuShareDuring(() => sleep(3000));
    const attempts = pool.stats().failed - failedBefore;
    assert.ok(attempts <= 8, `${attempts} failed creates in 3 s: create is not backing off`);
    // Measured: under 1% of a core (a few engine calls per second at most); a
    // retry loop without backoff burns a whole core.
    assert.ok(cpuShare <= 0.1, `process used ${(cpuShare * 100).toFixed(1)}% of a core while failing`);
    const stats = pool.stats();
    assert.equal(stats.ready, false);
    assert.ok(stats.consecutiveFailures >= 1);
    assert.match(stats.lastError ?? '', /sandpool-does-not-exist/);
    await expectCode(pool.acquire(), 'SANDBOX_FAILED');
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length, 0, 'failed creates left containers behind');
  });

  it('fails every waiter with SANDBOX_FAILED, well within the acquire timeout, when starts keep failing', async () => {
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_IMAGE: 'sandpool-does-not-exist:never', POOL_MAX_SIZE: '4', POOL_ACQUIRE_TIMEOUT_MS: '20000' });
    const pool = makePool(cfg, { backoffBaseMs: 100 });
    const started = Date.now();
    // More waiters than starts can run at once: the last ones have no start of their own.
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => pool.acquire()));
    const waited = Date.now() - started;
    assertAllStartsFailed(results);
    assert.ok(waited < 10_000, `the last waiter failed after ${waited} ms (acquire timeout 20000 ms)`);
  });

  it('fails only the oldest waiter for one failed start; the others get sandboxes', async () => {
    let starts = 0;
    const flaky = wrapStart(async (spec, realStart) => {
      starts++;
      if (starts === 1) throw new Error('injected: one transient start failure');
      return realStart(spec);
    });
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_MAX_SIZE: '4' });
    const pool = makePool(cfg, { runtime: flaky, backoffBaseMs: 100 });
    const results = await Promise.allSettled([pool.acquire(), pool.acquire(), pool.acquire()]);
    const leases = assertOnlyOldestFailed(results, /injected: one transient start failure/);
    assert.equal(pool.stats().failed, 1);
    // The failed acquire's retry still finishes a start; with the pool off nobody
    // wants it idle, so it is removed: only the two leased containers remain.
    const leasedIds = leases.map((l) => l.sandbox.id).sort();
    await waitFor('the unwanted sandbox removed', async () => {
      const ids = (await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).sort();
      return pool.stats().idle === 0 && pool.stats().creating === 0 && JSON.stringify(ids) === JSON.stringify(leasedIds);
    });
    await Promise.all(leases.map((l) => l.release()));
  });

  it('with the pool off, is never stuck failing: after the backoff an acquire tries a start again', async () => {
    // Regression: one failed start (e.g. a start timeout under load) made every
    // later acquire fail and /ready 503 until the process restarted.
    const image = `sandpool-test-late-off-${Date.now()}:latest`;
    // Long enough for the cold start at the end on a loaded 2-core machine
    // (500 ms was not: 520-700 ms measured with other tests running), short
    // enough that generic-pool's retries for the failed acquire end soon.
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_IMAGE: image, POOL_ACQUIRE_TIMEOUT_MS: '2000' });
    const pool = makePool(cfg, { backoffBaseMs: 100, backoffMaxMs: 200 });
    try {
      const err = await expectCode(pool.acquire(), 'SANDBOX_FAILED');
      assert.match(told(err), /sandpool-test-late-off/);
      // generic-pool retries for the failed acquire until its acquire timeout;
      // after that (and one straggler start) nothing starts sandboxes by itself.
      await sleep(2000 + 1000);
      assert.ok(pool.stats().consecutiveFailures >= 1);
      await execFileAsync('docker', ['tag', 'sandpool-sandbox:latest', image]);
      await waitFor('ready again once the backoff is over', () => pool.stats().ready, 10_000);
      // So what recovers it is the acquire below, not a start in the background.
      assert.equal(pool.stats().created, 0);
      const lease = await pool.acquire();
      assert.notEqual((await lease.callTool('list_directory', { path: '/workspace' })).isError, true);
      assert.equal(pool.stats().consecutiveFailures, 0);
      await lease.release();
    } finally {
      await pool.drain(20_000);
      await execFileAsync('docker', ['rmi', image]).catch(() => undefined);
    }
  });

  it('with the pool off, removes a sandbox whose start finished after its acquire timed out', async () => {
    const slow = wrapStart(async (spec, realStart) => {
      await sleep(1000);
      return realStart(spec);
    });
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_ACQUIRE_TIMEOUT_MS: '300' });
    const pool = makePool(cfg, { runtime: slow });
    await expectCode(pool.acquire(), 'POOL_EXHAUSTED');
    await waitFor('the late start to finish', () => pool.stats().created === 1);
    // Not kept idle for POOL_IDLE_TIMEOUT_MS (15 min): nobody is waiting for it.
    await waitFor('the late sandbox removed', async () => {
      const s = pool.stats();
      return s.idle === 0 && s.destroyed === 1 && (await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length === 0;
    });
  });

  it('trims idle sandboxes above min after POOL_IDLE_TIMEOUT_MS, down to exactly min', async () => {
    // Idle above min: two acquires give up before their (slowed) starts finish,
    // which then land in the pool as spares.
    let slowStarts = false;
    const slow = wrapStart(async (spec, realStart) => {
      if (slowStarts) await sleep(1000);
      return realStart(spec);
    });
    // No demand-driven spares: three arrivals in a second with a start slower than ~1.7 s (a loaded CI
    // machine) would raise the spare target to 2 for the whole demand window, and nothing would trim to min.
    const cfg = testConfig({ POOL_MIN_SIZE: '1', POOL_MAX_SIZE: '4', POOL_ACQUIRE_TIMEOUT_MS: '500', POOL_IDLE_TIMEOUT_MS: '1000', POOL_DEMAND_HEADROOM: '0' });
    const pool = makePool(cfg, { runtime: slow, evictionIntervalMs: 100 });
    assert.equal(await pool.whenWarm(30_000), true);
    slowStarts = true;
    const held = await pool.acquire();
    await Promise.all([expectCode(pool.acquire(), 'POOL_EXHAUSTED'), expectCode(pool.acquire(), 'POOL_EXHAUSTED')]);
    // The refill for the held one plus one start for the waiters: two spares, min is 1.
    await waitFor('both late starts', () => pool.stats().created === 3, 30_000);
    // Generous: on a busy machine the removal itself can take seconds.
    await waitFor('trimmed to min', () => pool.stats().idle === 1 && pool.stats().destroyed === 1, 30_000);
    // And it stays at min: nothing trimmed below it and refilled.
    const lowest = await lowestDuring(() => pool.stats().idle, 1500);
    const s = pool.stats();
    assert.equal(lowest, 1, 'an eviction run trimmed below min');
    assert.equal(s.idle, 1);
    assert.equal(s.destroyed, 1, 'more than the one spare above min was removed');
    assert.equal(s.created, 3, 'the pool had to refill after trimming');
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length, 2);
    await held.release();
  });

  it('a sandbox flooding stdout without a newline fails its holder with SANDBOX_FAILED, not the process', async () => {
    // A tiny MCP server that answers initialize / tools/list / ping, and prints
    // 11 MiB without a newline when its tool is called (the SDK buffer caps at 10 MiB).
    const server = `
      const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
      require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
        const m = JSON.parse(line);
        if (m.id === undefined) return;
        if (m.method === 'initialize') send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'flood', version: '1' } } });
        else if (m.method === 'tools/list') send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'flood', inputSchema: { type: 'object' } }] } });
        else if (m.method === 'tools/call') process.stdout.write('x'.repeat(11 * 1024 * 1024));
        else send({ jsonrpc: '2.0', id: m.id, result: {} });
      });`;
    const cfg = testConfig({ POOL_COMMAND: JSON.stringify(['node', '-e', server]), POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    const lease = await pool.acquire();
    assert.deepEqual(lease.sandbox.tools.map((t) => t.name), ['flood']);
    const err = await expectCode(lease.callTool('flood', {}), 'SANDBOX_FAILED');
    assert.match(told(err), /exceeded the maximum of 10485760 bytes/);
    assert.equal(lease.sandbox.isUsable(), false);
    await lease.release();
    // This process is still here and the pool still serves.
    const next = await pool.acquire();
    await next.sandbox.client.ping();
    await next.release();
  });

  it('drain honours its deadline even when destroying a sandbox hangs', async () => {
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const stuck = wrapStart(async (spec, realStart) => {
      const proc = await realStart(spec);
      return { ...proc, destroy: async () => {
        await gate;
        await proc.destroy();
      } };
    });
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg, { runtime: stuck });
    try {
      assert.equal(await pool.whenWarm(30_000), true);
      const lease = await pool.acquire();
      await waitFor('the refill', () => pool.stats().idle === 1);
      const started = Date.now();
      await pool.drain(1000);
      const took = Date.now() - started;
      // Never hangs past its deadline (plus slack), whatever the engine does.
      assert.ok(took <= 1000 + 4000, `drain(1000) took ${took} ms`);
      assert.equal(lease.sandbox.isUsable(), false);
      const s = pool.stats();
      assert.equal(s.idle + s.active, 0);
    } finally {
      openGate();
      await waitFor('the containers removed once destroy returns', async () => (await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length === 0);
    }
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

  it('a sandbox killed while idle never serves a user: not handed out, or replaced on first use without an error', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '2' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const ids = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
    assert.equal(ids.length, 2);
    await execFileAsync('docker', ['kill', ...ids]);
    // Acquire right away, before the pool can notice by itself (a hand-out asks the engine nothing).
    const lease = await pool.acquire();
    const res = await lease.callTool('list_directory', { path: '/workspace' });
    assert.notEqual(res.isError, true);
    assert.equal(ids.includes(lease.sandbox.id), false, 'the call ran in a killed container');
    await lease.release();
    await waitFor('killed containers removed and pool refilled', async () => {
      const now = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
      return now.every((id) => !ids.includes(id)) && pool.stats().idle === 2;
    });
  });

  it('evicts a sandbox that dies while idle without waiting for a borrow', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const [id] = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
    assert.ok(id);
    await execFileAsync('docker', ['kill', id]);
    await waitFor('dead idle sandbox evicted and replaced', async () => {
      const now = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
      return !now.includes(id) && now.length === 1 && pool.stats().idle === 1;
    });
  });

  it('gives the holder a clear SANDBOX_FAILED when its sandbox is killed while leased', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const lease = await pool.acquire();
    // Used once: its files are the user's now, so its death is theirs to hear about (no replacement).
    await lease.callTool('write_file', { path: '/workspace/mine.txt', content: 'mine' });
    await execFileAsync('docker', ['kill', lease.sandbox.id]);
    const err = await expectCode(lease.callTool('list_directory', { path: '/workspace' }), 'SANDBOX_FAILED');
    assert.match(told(err), /exited with code 137|closed|gone/);
    assert.equal(lease.sandbox.isUsable(), false);
    await lease.release();
    await waitFor('dead leased container removed', async () => !(await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).includes(lease.sandbox.id));
  });

  it('runs every container hardened and labelled', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1', SANDBOX_MEMORY_MB: '200', SANDBOX_CPUS: '0.75', SANDBOX_PIDS_LIMIT: '50' });
    const pool = makePool(cfg);
    await pool.whenWarm(30_000);
    const [id] = await dockerPs({ [LABELS.replica]: cfg.server.replicaId });
    assert.ok(id);
    const info = await dockerInspect(id);
    assert.equal(info.HostConfig.NetworkMode, 'none');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.ok(info.HostConfig.SecurityOpt?.includes('no-new-privileges'));
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.match(info.HostConfig.Tmpfs?.['/workspace'] ?? '', /size=\d+/);
    assert.match(info.HostConfig.Tmpfs?.['/tmp'] ?? '', /size=\d+/);
    for (const dir of ['/workspace', '/tmp']) assert.match(info.HostConfig.Tmpfs?.[dir] ?? '', /(^|,)noexec(,|$)/, `${dir} is noexec`);
    assert.equal(info.HostConfig.ShmSize, 1024 * 1024, 'a small /dev/shm');
    assert.deepEqual(info.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 1024, Hard: 1024 }]);
    assert.equal(info.HostConfig.Memory, 200 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 750_000_000);
    assert.equal(info.HostConfig.PidsLimit, 50);
    assert.equal(info.Config.User, '65532:65532', 'not root, and not a typical host user (1000)');
    const labels = info.Config.Labels;
    assert.equal(labels[LABELS.app], 'sandpool');
    assert.equal(labels[LABELS.replica], cfg.server.replicaId);
    assert.equal(labels[LABELS.pool], 'default');
    assert.ok(Math.abs(Number(labels[LABELS.created]) - Date.now()) < 120_000, `created label ${labels[LABELS.created]}`);
    // And the hardening holds from inside: no network, read-only root, not root,
    // nothing executable from the workspace, and the limits as set.
    const { stdout } = await execFileAsync('docker', [
      'exec', id, 'node', '-e',
      `const fs=require('fs'),cp=require('child_process');let ro='no';try{fs.writeFileSync('/opt/x','x')}catch(e){ro=e.code}
       fs.writeFileSync('/workspace/run','#!/usr/local/bin/node\\n');fs.chmodSync('/workspace/run',0o755);
       let exec='ran';try{cp.execFileSync('/workspace/run')}catch(e){exec=e.code}
       const nofile=fs.readFileSync('/proc/self/limits','utf8').split('\\n').find(l=>l.startsWith('Max open files'));
       console.log(JSON.stringify({uid:process.getuid(),ro,exec,nofile,ifaces:Object.keys(require('os').networkInterfaces())}))`,
    ]);
    const inside = JSON.parse(stdout) as { uid: number; ro: string; exec: string; nofile: string; ifaces: string[] };
    assert.equal(inside.uid, 65532);
    assert.equal(inside.ro, 'EROFS');
    assert.equal(inside.exec, 'EACCES', 'a program written to /workspace cannot run');
    assert.match(inside.nofile, /Max open files\s+1024\s+1024/);
    assert.deepEqual(inside.ifaces.filter((i) => i !== 'lo'), []);
  });

  it('with ENABLE_CONTAINER_POOL=false keeps no spares and creates each sandbox on demand', async () => {
    const cfg = testConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_MIN_SIZE: '3' });
    const pool = makePool(cfg);
    assert.equal(await pool.whenWarm(1000), true);
    assert.equal(pool.stats().idle, 0);
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length, 0);
    const lease = await pool.acquire();
    assert.equal((await lease.callTool('list_directory', { path: '/workspace' })).isError, undefined);
    assert.equal(pool.stats().active, 1);
    await lease.release();
    await sleep(300);
    assert.equal(pool.stats().idle, 0);
    assert.equal((await dockerPs({ [LABELS.replica]: cfg.server.replicaId })).length, 0);
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
    const pool = makePool(cfg, { runtime: counting });
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
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.server.replicaId }), []);
    await expectCode(pool.acquire(), 'SHUTTING_DOWN');
    await expectCode(lease.callTool('list_directory', { path: '/workspace' }), 'SANDBOX_FAILED');
    const s = pool.stats();
    assert.equal(s.idle + s.active + s.creating, 0);
  });
});
