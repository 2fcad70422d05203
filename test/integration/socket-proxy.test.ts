import assert from 'node:assert/strict';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Server } from 'node:http';
import { createContainerPool } from '../../src/pool/container-pool.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { LABELS } from '../../src/runtime/types.js';
import { createSocketProxy } from '../../src/socket-proxy/socket-proxy.js';
import { dockerPs, execFileAsync, testConfig, testLogger, waitFor } from '../support/helpers.js';

/** One raw Docker API call through the proxy's socket. */
function call(socketPath: string, method: string, apiPath: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path: apiPath, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const hardened = {
  Image: 'sandpool-sandbox:latest',
  User: '65532:65532',
  Labels: { 'sandpool.app': 'sandpool', 'sandpool.replica': 'proxy-test' },
  HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], ReadonlyRootfs: true },
};

describe('Docker socket proxy (compose: the app never sees the raw socket)', () => {
  const socketPath = path.join(os.tmpdir(), `sandpool-proxy-${process.pid}.sock`);
  let server: Server;
  let outsider = '';

  before(async () => {
    server = createSocketProxy({ upstreamSocket: '/var/run/docker.sock', logger: testLogger() });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    outsider = (await execFileAsync('docker', ['create', '--label', 'proxy-test=outsider', 'sandpool-sandbox:latest'])).stdout.trim();
  });
  after(async () => {
    await execFileAsync('docker', ['rm', '-f', outsider]).catch(() => undefined);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('carries everything the pool does: create, attach, start, inspect, list, tool calls, remove', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const runtime = createDockerRuntime({ socketPath });
    await runtime.ping();
    const pool = createContainerPool({ runtime, pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger: testLogger() });
    pool.start();
    try {
      assert.equal(await pool.whenWarm(30_000), true);
      const lease = await pool.acquire();
      await lease.callTool('write_file', { path: '/workspace/a.txt', content: 'through the proxy' });
      const read = await lease.callTool('read_text_file', { path: '/workspace/a.txt' });
      assert.match(JSON.stringify(read.content), /through the proxy/);
      assert.equal((await runtime.list({ [LABELS.replica]: cfg.server.replicaId })).length >= 1, true);
      await lease.release();
    } finally {
      await pool.drain(20_000);
    }
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.server.replicaId }), []);
  });

  it('streams engine events (the pool learns of deaths from them, no inspect): a sandbox killed while idle is seen dying', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = createContainerPool({ runtime: createDockerRuntime({ socketPath }), pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger: testLogger() });
    pool.start();
    try {
      assert.equal(await pool.whenWarm(30_000), true);
      const [id] = [...pool.ownedIds()];
      assert.ok(id);
      const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['die'], label: ['sandpool.app=sandpool'] }));
      const died = new Promise<string>((resolve, reject) => {
        const req = request({ socketPath, method: 'GET', path: `/events?filters=${filters}` }, (res) => {
          assert.equal(res.statusCode, 200);
          let buffered = '';
          res.on('data', (c: Buffer) => {
            buffered += c.toString();
            if (buffered.includes(id)) {
              resolve(buffered);
              req.destroy();
            }
          });
        });
        req.on('error', reject);
        req.end();
        setTimeout(() => reject(new Error('no die event through the proxy within 10 s')), 10_000).unref();
      });
      // Give the stream a moment to be open before the kill.
      await new Promise((r) => setTimeout(r, 300));
      await execFileAsync('docker', ['kill', id]);
      assert.match(await died, /"exitCode":"137"/);
      await waitFor('the dead spare evicted and replaced', () => !pool.ownedIds().has(id) && pool.stats().idle === 1, 20_000);
    } finally {
      await pool.drain(20_000);
    }
  });

  it('refuses every other call: images, exec, build, volumes, the engine\'s info', async () => {
    for (const [method, apiPath] of [
      ['GET', '/images/json'],
      ['POST', `/containers/${outsider}/exec`],
      ['POST', '/build'],
      ['GET', '/volumes'],
      ['GET', '/info'],
      ['POST', '/v1.41/containers/prune'],
    ] as const) {
      const res = await call(socketPath, method, apiPath);
      assert.equal(res.status, 403, `${method} ${apiPath}: ${res.text}`);
      assert.match(res.text, /not a call sandpool makes/);
    }
  });

  it('creates only hardened sandboxes', async () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['privileged', { ...hardened, HostConfig: { ...hardened.HostConfig, Privileged: true } }, /privileged/],
      ['host mount', { ...hardened, HostConfig: { ...hardened.HostConfig, Binds: ['/:/host'] } }, /Binds/],
      ['host network', { ...hardened, HostConfig: { ...hardened.HostConfig, NetworkMode: 'host' } }, /NetworkMode none/],
      ['host pid', { ...hardened, HostConfig: { ...hardened.HostConfig, PidMode: 'host' } }, /PidMode/],
      ['capabilities', { ...hardened, HostConfig: { ...hardened.HostConfig, CapAdd: ['SYS_ADMIN'] } }, /capabilities/],
      ['root', { ...hardened, User: '0' }, /non-root/],
      ['unlabelled', { ...hardened, Labels: {} }, /only sandboxes/],
    ];
    for (const [name, body, why] of cases) {
      const res = await call(socketPath, 'POST', '/containers/create', body);
      assert.equal(res.status, 403, `${name}: ${res.text}`);
      assert.match(res.text, why, name);
    }
  });

  it('starts, attaches to and removes only sandboxes; reading any container is allowed (the sweeper checks owners)', async () => {
    assert.equal((await call(socketPath, 'DELETE', `/containers/${outsider}?force=true`)).status, 403);
    assert.equal((await call(socketPath, 'POST', `/containers/${outsider}/start`)).status, 403);
    assert.equal((await call(socketPath, 'GET', `/containers/${outsider}/json`)).status, 200);
    assert.equal((await execFileAsync('docker', ['inspect', '-f', '{{.State.Status}}', outsider])).stdout.trim(), 'created', 'untouched');
  });
});
