import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import { createSandpool } from '../../src/app/create-sandpool.js';
import { createContainerPool } from '../../src/pool/container-pool.js';
import { DEFAULT_POOL_IMAGE } from '../../src/config/schema.js';
import { createProcessRuntime } from '../../src/runtime/process-runtime.js';
import { containerOnlySettings, selectRuntime } from '../../src/runtime/select-runtime.js';
import { testConfig, testLogger, textOf, waitFor } from '../support/helpers.js';

describe('process runtime (no Docker)', () => {
  it('serves the same lease API from a child process rooted in a temp dir, removed on release', async () => {
    const cfg = testConfig({ POOL_RUNTIME: 'process', POOL_MIN_SIZE: '1' });
    const pool = createContainerPool({ runtime: createProcessRuntime(), pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger: testLogger() });
    pool.start();
    try {
      assert.equal(await pool.whenWarm(20_000), true);
      const a = await pool.acquire();
      const b = await pool.acquire();
      const dir = a.sandbox.workspaceDir;
      assert.notEqual(dir, b.sandbox.workspaceDir);
      await a.callTool('write_file', { path: `${dir}/a.txt`, content: 'process sandbox' });
      assert.equal(textOf(await a.callTool('read_text_file', { path: `${dir}/a.txt` })), 'process sandbox');
      // B's server is rooted elsewhere and refuses A's directory.
      assert.equal((await b.callTool('read_text_file', { path: `${dir}/a.txt` })).isError, true);
      assert.equal(pool.stats().runtime, 'process');
      assert.equal(pool.stats().isolated, false);
      await a.release();
      assert.equal(existsSync(dir), false, 'workspace dir survived release');
      await b.release();
    } finally {
      await pool.drain(10_000);
    }
  });

  it('warns once that POOL_IMAGE / POOL_COMMAND are ignored, and not at all when they are defaults', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    });
    const logger = createLogger({ level: 'warn', destination: sink });
    const run = async (env: Record<string, string>): Promise<string[]> => {
      lines.length = 0;
      const cfg = testConfig({ POOL_RUNTIME: 'process', POOL_MIN_SIZE: '0', ...env });
      const runtime = await selectRuntime({ mode: 'process', production: false, dockerSocket: '/nonexistent', customSpec: containerOnlySettings(cfg.pool, DEFAULT_POOL_IMAGE), logger });
      const pool = createContainerPool({ runtime, pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger });
      pool.start();
      try {
        const [a, b] = [await pool.acquire(), await pool.acquire()];
        await Promise.all([a.release(), b.release()]);
      } finally {
        await pool.drain(10_000);
      }
      return lines.filter((l) => /ignores/.test(l));
    };
    const warned = await run({ POOL_IMAGE: 'example/other-mcp:1', POOL_COMMAND: 'other-mcp --stdio' });
    assert.equal(warned.length, 1, `expected one warning for two sandboxes, got: ${warned.join('\n')}`);
    const { msg } = JSON.parse(warned[0] ?? '{}') as { msg?: string };
    assert.match(msg ?? '', /POOL_IMAGE=example\/other-mcp:1 and POOL_COMMAND=\["other-mcp","--stdio"\]/);
    // The default image, named explicitly: the tests may run with another POOL_IMAGE in the environment.
    assert.deepEqual(await run({ POOL_IMAGE: DEFAULT_POOL_IMAGE }), []);
  });

  it('POOL_RUNTIME=auto falls back to processes when Docker does not answer (development only)', async () => {
    const app = await createSandpool(testConfig({ POOL_RUNTIME: 'auto', DOCKER_SOCKET: '/nonexistent/docker.sock', POOL_MIN_SIZE: '1' }), { warmTimeoutMs: 20_000 });
    try {
      assert.equal(app.runtime.kind, 'process');
      const health = (await (await fetch(`${app.url}/health`)).json()) as { runtime: string };
      assert.equal(health.runtime, 'process');
      await waitFor('ready', async () => (await fetch(`${app.url}/ready`)).status === 200);
    } finally {
      await app.stop();
    }
  });

  it('refuses to start in production when Docker does not answer', async () => {
    await assert.rejects(
      createSandpool(testConfig({ NODE_ENV: 'production', AUTH_SECRET: 'a-production-secret-of-32-bytes-0123', POOL_RUNTIME: 'auto', DOCKER_SOCKET: '/nonexistent/docker.sock' })),
      /Docker engine at \/nonexistent\/docker.sock did not answer/,
    );
  });

  it('POOL_RUNTIME=docker with no engine fails start-up with the reason', async () => {
    await assert.rejects(
      createSandpool(testConfig({ POOL_RUNTIME: 'docker', DOCKER_SOCKET: '/nonexistent/docker.sock' })),
      /did not answer/,
    );
  });
});
