import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { LABELS } from '../../src/runtime/types.js';
import { spawnProcess } from '../../scripts/lib/start-process.js';
import { copyCheckout } from '../support/checkout-copy.js';
import { dockerPs, startReplica, testConfig, uniqueReplica, waitFor } from '../support/helpers.js';

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('HTTP endpoints of a real replica', () => {
  let app: Sandpool;
  before(async () => {
    app = await createSandpool(testConfig({ POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '5' }), { warmTimeoutMs: 30_000 });
  });
  after(() => app.stop('test done'));

  it('GET /health is 200 with replica and uptime', async () => {
    const { status, body } = await getJson(`${app.url}/health`);
    assert.equal(status, 200);
    assert.equal(body.status, 'ok');
    assert.equal(body.replica, app.config.server.replicaId);
    assert.equal(typeof body.uptimeSeconds, 'number');
  });

  it('GET /ready is 200 once the pool is warm', async () => {
    const { status, body } = await getJson(`${app.url}/ready`);
    assert.equal(status, 200, JSON.stringify(body));
  });

  it('GET /stats/pool has the seed\'s fields and they match the containers that exist', async () => {
    const { status, body } = await getJson(`${app.url}/stats/pool`);
    assert.equal(status, 200);
    for (const field of ['idle', 'active', 'total', 'maxPoolSize', 'minPoolSize', 'pending']) {
      assert.equal(typeof body[field], 'number', `${field} missing`);
    }
    assert.deepEqual(
      { idle: body.idle, active: body.active, total: body.total, maxPoolSize: body.maxPoolSize, minPoolSize: body.minPoolSize, pending: body.pending },
      { idle: 2, active: 0, total: 2, maxPoolSize: 5, minPoolSize: 2, pending: 0 },
    );
    assert.equal((await dockerPs({ [LABELS.replica]: app.config.server.replicaId })).length, 2);

    const lease = await app.pool.acquire();
    // The leased one is replaced: 1 active + 2 idle spares = 3 containers.
    await waitFor('spare replaced', async () => (await getJson(`${app.url}/stats/pool`)).body.idle === 2);
    const during = (await getJson(`${app.url}/stats/pool`)).body;
    assert.equal(during.active, 1);
    assert.equal(during.total, 3);
    assert.equal(during.acquired, 1);
    assert.equal(typeof (during.acquireLatencyMs as { p50: number }).p50, 'number');
    assert.equal((await dockerPs({ [LABELS.replica]: app.config.server.replicaId })).length, 3);
    await lease.release();
    const afterRelease = (await getJson(`${app.url}/stats/pool`)).body;
    assert.equal(afterRelease.active, 0);
    assert.equal(afterRelease.total, 2);
    assert.equal((await dockerPs({ [LABELS.replica]: app.config.server.replicaId })).length, 2);
  });

  it('GET /stats/pool?scope=cluster lists this replica and totals; a bad scope is a coded 400', async () => {
    const { body } = await getJson(`${app.url}/stats/pool?scope=cluster`);
    const replicas = body.replicas as Array<Record<string, unknown>>;
    assert.equal(replicas.length, 1);
    assert.equal(replicas[0]?.replica, app.config.server.replicaId);
    assert.equal((body.totals as Record<string, number>).idle, replicas[0]?.idle);
    const bad = await getJson(`${app.url}/stats/pool?scope=galaxy`);
    assert.equal(bad.status, 400);
    assert.equal((bad.body.error as { code: string }).code, 'BAD_REQUEST');
  });

  it('GET /status is coarse and public: shares in tenths, no counts, sizes, ids or runtime', async () => {
    const res = await fetch(`${app.url}/status`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { sandboxes: Record<string, number | boolean> } & Record<string, unknown>;
    // Warm at rest (2 idle of at most 5): 40% warm, 60% free.
    assert.deepEqual(body, {
      status: 'ready',
      ready: true,
      sandboxes: { inUse: 0, warm: 40, starting: 0, free: 60, warmAvailable: true },
      waiting: 'none',
    });
    assert.doesNotMatch(JSON.stringify(body), new RegExp(`${app.config.server.replicaId}|docker|process`));
  });

  it('serves the page\'s files with their content types, security headers and revalidation (ETag, 304)', async () => {
    const page = await fetch(`${app.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/js\/main\.js"><\/script>/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('strict-transport-security'), null, 'HSTS is for whatever terminates TLS');
    for (const [file, type] of [['/js/main.js', 'text/javascript; charset=utf-8'], ['/js/dom.js', 'text/javascript; charset=utf-8'], ['/style.css', 'text/css; charset=utf-8']] as const) {
      const res = await fetch(`${app.url}${file}`);
      assert.equal(res.status, 200, file);
      assert.equal(res.headers.get('content-type'), type, file);
      assert.equal(res.headers.get('cache-control'), 'no-cache', file);
      const tag = res.headers.get('etag');
      assert.ok(tag, `${file} has no ETag`);
      await res.arrayBuffer();
      const again = await fetch(`${app.url}${file}`, { headers: { 'if-none-match': tag } });
      assert.equal(again.status, 304, file);
    }
    // The Socket.IO client's ES module build, served by Socket.IO itself.
    const client = await fetch(`${app.url}/socket.io/socket.io.esm.min.js`);
    assert.equal(client.status, 200);
    assert.match(client.headers.get('content-type') ?? '', /javascript/);
    assert.match(await client.text(), /export\s*\{/);
    // Nothing outside web/, and the old single script is gone.
    for (const path of ['/app.js', '/js/', '/../package.json', '/%2e%2e/package.json']) assert.equal((await fetch(`${app.url}${path}`)).status, 404, path);
  });

  it('GET /metrics is Prometheus text with pool gauges and the acquire histogram', async () => {
    const res = await fetch(`${app.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, new RegExp(`^sandpool_pool_idle\\{replica="${app.config.server.replicaId}"\\} 2$`, 'm'));
    assert.match(text, /^sandpool_pool_acquire_seconds_count\{replica="[^"]+"\} 1$/m);
    assert.match(text, /^# TYPE sandpool_pool_create_failures_total counter$/m);
    // Spares that follow demand, removals, first-use replacements.
    assert.match(text, /^sandpool_pool_spare_target\{replica="[^"]+"\} 2$/m);
    assert.match(text, /^sandpool_pool_arrival_rate\{replica="[^"]+"\} [\d.]+$/m);
    assert.match(text, /^sandpool_pool_removing\{replica="[^"]+"\} \d+$/m);
    assert.match(text, /^# TYPE sandpool_pool_replaced_total counter$/m);
  });

  it('unknown routes get a coded JSON 404', async () => {
    const { status, body } = await getJson(`${app.url}/nope`);
    assert.equal(status, 404);
    assert.equal((body.error as { code: string }).code, 'NOT_FOUND');
  });
});

describe('a replica whose sandbox image is broken', () => {
  it('stays alive (/health 200) but not ready (/ready 503 with a coded, generic reason; the engine\'s error only in /stats/pool)', async () => {
    const app = await createSandpool(testConfig({ POOL_IMAGE: 'sandpool-missing-image:none', POOL_MIN_SIZE: '1' }));
    try {
      await waitFor('a failed start', () => app.pool.stats().failed > 0);
      const ready = await getJson(`${app.url}/ready`);
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.body.reasons, [{ code: 'POOL_FAILING', message: 'sandbox pool cannot start sandboxes right now' }]);
      assert.doesNotMatch(JSON.stringify(ready.body), /sandpool-missing-image/, 'internals in a public answer');
      assert.match(String((await getJson(`${app.url}/stats/pool`)).body.lastError), /sandpool-missing-image/, 'operators still see why');
      assert.equal((await getJson(`${app.url}/health`)).status, 200);
    } finally {
      await app.stop();
    }
  });
});

describe('shutdown', () => {
  it('stop() turns /ready to 503 first, then removes every container of the replica', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '2' }), { warmTimeoutMs: 30_000 });
    const lease = await app.pool.acquire();
    assert.ok((await dockerPs({ [LABELS.replica]: app.config.server.replicaId })).length >= 2);
    assert.deepEqual(app.notReadyReasons(), []);
    const stopping = app.stop('test');
    // Readiness flips before anything else happens, so a balancer stops sending users here.
    assert.deepEqual(app.notReadyReasons().map((r) => r.code), ['SHUTTING_DOWN']);
    await stopping;
    assert.deepEqual(await dockerPs({ [LABELS.replica]: app.config.server.replicaId }), []);
    assert.equal(app.pool.stats().ready, false);
    await assert.rejects(fetch(`${app.url}/health`), 'server still accepting after stop');
    assert.equal(lease.sandbox.isUsable(), false);
  });

  it('SIGTERM to `node dist/src/main.js` exits 0 and leaves no container behind', async () => {
    const replica = uniqueReplica('sig');
    // Ready once it has warmed 2 containers.
    const proc = await startReplica({ REPLICA_ID: replica, POOL_MIN_SIZE: '2' }, /Initialized with 2 idle containers/, 30_000);
    assert.equal((await dockerPs({ [LABELS.replica]: replica })).length, 2);
    proc.signal('SIGTERM');
    assert.equal((await proc.exited).code, 0, proc.output());
    assert.match(proc.output(), /shutdown complete/);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: replica }), []);
  });

  it('Ctrl-C (SIGINT) to `npm start` stops it cleanly: no container of it is left', async () => {
    const replica = uniqueReplica('npm-start');
    const work = mkdtempSync(path.join(os.tmpdir(), 'sandpool-npm-start-'));
    copyCheckout(work);
    // Its own process group, like a terminal's foreground job: Ctrl-C signals the whole group
    // (npm does not pass a signal it gets on to the server below its shell).
    const npm = spawnProcess({
      command: 'npm',
      args: ['start'],
      cwd: work,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', REPLICA_ID: replica, POOL_MIN_SIZE: '2' },
      signalGroup: true,
    });
    try {
      // npm start compiles and checks the sandbox image first.
      await npm.waitReady(/Initialized with 2 idle containers/, 120_000);
      assert.equal((await dockerPs({ [LABELS.app]: 'sandpool', [LABELS.replica]: replica })).length, 2);
      npm.signal('SIGINT');
      // npm itself dies of the signal (a shell would say 130); what matters is the server's clean stop.
      // `exited` waits for the output streams to close: npm and the server under it (which holds the same pipes) have both ended.
      await npm.exited;
      const out = npm.output();
      assert.match(out, /"reason":"SIGINT".*shutting down/);
      assert.match(out, /shutdown complete/, out.slice(-2000));
      // `docker ps -a --filter label=sandpool.app`, narrowed to this run (other suites' replicas are not ours to judge).
      assert.deepEqual(await dockerPs({ [LABELS.app]: 'sandpool', [LABELS.replica]: replica }), []);
    } finally {
      await npm.stop('SIGKILL', 5_000);
      rmSync(work, { recursive: true, force: true });
    }
  });
});
