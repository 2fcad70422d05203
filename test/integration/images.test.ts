import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startedPools } from '../../scripts/lib/started-pools.js';
import type { Config } from '../../src/config/config.js';
import type { ContainerPool } from '../../src/pool/container-pool.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { execFileAsync, testConfig, testLogger, textOf } from '../support/helpers.js';

// Per run: concurrent test runs (other checkouts on one engine) must not build over or remove each other's tag.
const ECHO_IMAGE = `sandpool-test-echo-mcp:run-${process.pid}`;
const pools = startedPools();
const makePool = (cfg: Config): ContainerPool => pools.fromConfig(cfg, createDockerRuntime(), testLogger());

describe('other MCP images', () => {
  before(async () => {
    // On the sandbox image under test (POOL_IMAGE), for its node.
    await execFileAsync('docker', ['build', '-q', '--build-arg', `BASE_IMAGE=${testConfig().pool.image}`, '-t', ECHO_IMAGE, 'test/fixtures/echo-mcp']);
  });
  after(async () => {
    await pools.drainAll(20_000);
    await execFileAsync('docker', ['rmi', '-f', ECHO_IMAGE]).catch(() => undefined);
  });

  it('pools any stdio MCP server image set by POOL_IMAGE', async () => {
    const cfg = testConfig({ POOL_IMAGE: ECHO_IMAGE, POOL_MIN_SIZE: '1' });
    const pool = makePool(cfg);
    assert.equal(await pool.whenWarm(30_000), true);
    const lease = await pool.acquire();
    assert.deepEqual(lease.sandbox.tools.map((t) => t.name), ['echo']);
    const res = await lease.callTool('echo', { text: 'hi' });
    // As SANDBOX_USER (65532 by default), whatever the image's USER says.
    assert.equal(textOf(res), `echo(uid=${cfg.sandbox.user.split(':')[0]}): hi`);
    await lease.release();
  });

  it('the default image is node, its libraries and the bundled server with its snapshot: no shell, no npm, no caches', async () => {
    const image = testConfig().pool.image;
    const { stdout: inspected } = await execFileAsync('docker', ['image', 'inspect', '-f', '{{json .Config.Entrypoint}}', image]);
    assert.deepEqual(JSON.parse(inspected), ['node', '--v8-pool-size=1', '--snapshot-blob', '/opt/sandbox/server.blob']);
    const probe = `const fs=require('fs');console.log(JSON.stringify(Object.fromEntries(
      ['/bin/sh','/bin/bash','/usr/bin/apt-get','/usr/local/bin/npm','/usr/local/lib/node_modules','/opt/sandbox/node_modules','/root/.npm','/opt/sandbox/server.cjs','/opt/sandbox/server.blob']
      .map(p=>[p,fs.existsSync(p)]))))`;
    const { stdout } = await execFileAsync('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'node', image, '-e', probe]);
    assert.deepEqual(JSON.parse(stdout), {
      '/bin/sh': false,
      '/bin/bash': false,
      '/usr/bin/apt-get': false,
      '/usr/local/bin/npm': false,
      '/usr/local/lib/node_modules': false,
      '/opt/sandbox/node_modules': false,
      '/root/.npm': false,
      '/opt/sandbox/server.cjs': true,
      '/opt/sandbox/server.blob': true,
    });
  });

  it('runs a command override (POOL_COMMAND) instead of the image entrypoint', async () => {
    // The image's bundled server runs without its snapshot too, as any script does.
    const command = JSON.stringify(['node', '/opt/sandbox/server.cjs', '/tmp']);
    const pool = makePool(testConfig({ POOL_COMMAND: command, POOL_MIN_SIZE: '1' }));
    const lease = await pool.acquire();
    const allowed = await lease.callTool('list_allowed_directories', {});
    assert.match(textOf(allowed), /\/tmp/);
    assert.doesNotMatch(textOf(allowed), /\/workspace/);
    await lease.release();
  });
});
