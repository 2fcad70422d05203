import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { DEFAULT_POOL_IMAGE } from '../../src/config/config.js';
import { createContainerPool } from '../../src/pool/container-pool.js';
import { createSpecMaker } from '../../src/pool/sandbox-spec.js';
import { createDockerRuntime, sandboxCreateOptions } from '../../src/runtime/docker-runtime.js';
import { pauseRetryingFreeze } from '../../src/runtime/freeze-retry.js';
import { LABELS } from '../../src/runtime/types.js';
import { assertHardened, engineGet, hardenedExpectations, type HardenedExpectations } from '../support/hardened.js';
import { dockerPs, execFileAsync, testConfig, testLogger, uniqueReplica, waitFor } from '../support/helpers.js';
import { rawCall, startSocketProxy, type RunningProxy } from '../support/socket-proxy.js';
import { createEngineClient } from '../../src/socket-proxy/engine-client.js';
import { createNodeSweeper } from '../../src/socket-proxy/node-sweeper.js';
import { sleep } from '../../src/util/async.js';

const IMAGE = process.env.POOL_IMAGE ?? DEFAULT_POOL_IMAGE;
const MARK = 'sandpool.proxy-test';

/** What the app sends for one sandbox (docker-runtime.ts), as a plain object, labelled for this test's clean-up. */
function appBody(replica: string): Record<string, unknown> & { HostConfig: Record<string, unknown>; Labels: Record<string, string> } {
  const cfg = testConfig();
  const spec = createSpecMaker({ pool: cfg.pool, sandbox: cfg.sandbox, replicaId: replica, poolName: 'proxy-test' })();
  const options = sandboxCreateOptions(spec) as Record<string, unknown> & { HostConfig: Record<string, unknown>; Labels: Record<string, string> };
  delete options.name;
  options.Labels[MARK] = String(process.pid);
  return options;
}

describe('Docker socket proxy (compose: the app never sees the raw socket)', () => {
  let proxy: RunningProxy;
  let expectations: HardenedExpectations;
  /** Containers this file made outside the proxy: a plain one with a secret, a replica-labelled one. */
  let outsider = '';
  let replicaContainer = '';
  const otherImage = `sandpool-proxy-test-other:${process.pid}`;
  const rebuiltImage = `sandpool-proxy-test-rebuilt:${process.pid}`;
  /** Ids of the images this file built. */
  const builtImages: string[] = [];

  before(async () => {
    proxy = await startSocketProxy({ POOL_IMAGE: `${IMAGE},sandpool-no-such-image:never` });
    expectations = await hardenedExpectations(proxy.images, proxy.settings);
    outsider = (await execFileAsync('docker', ['create', '--label', `${MARK}=outsider`, '-e', 'OUTSIDER_SECRET=hunter2', IMAGE])).stdout.trim();
    replicaContainer = (await execFileAsync('docker', ['create', '--label', `${MARK}=replica`, '--label', 'sandpool.role=replica', '-e', 'AUTH_SECRET=hunter2', IMAGE])).stdout.trim();
    // Another image (another id): the sandbox image with one more label.
    await execFileAsync('bash', ['-c', `printf 'FROM %s\\n' "$1" | docker build -q --label ${MARK}=other -t "$2" -`, 'build', IMAGE, otherImage]);
  });
  after(async () => {
    const mine = (await execFileAsync('docker', ['ps', '-aq', '--filter', `label=${MARK}`])).stdout.split('\n').filter(Boolean);
    if (mine.length > 0) await execFileAsync('docker', ['rm', '-f', ...mine]).catch(() => undefined);
    await execFileAsync('docker', ['rmi', otherImage, rebuiltImage]).catch(() => undefined);
    for (const id of builtImages) await execFileAsync('docker', ['rmi', id]).catch(() => undefined);
    await proxy.close();
  });

  it('carries everything the pool does: create, attach, start, inspect, list, tool calls, park, resume, remove', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1', PARK_MAX: '2' });
    const runtime = createDockerRuntime({ socketPath: proxy.socketPath });
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
      // What the engine made of the app's create, as forwarded by the proxy.
      const { body } = await engineGet(`/containers/${[...pool.ownedIds()][0] ?? ''}/json`);
      assertHardened(body as Record<string, unknown>, expectations);
      // Park (pause) and resume (unpause + MCP ping) through the proxy: the same sandbox, its file still there.
      const id = lease.sandbox.id;
      assert.equal(await lease.park('proxy-user'), true);
      assert.equal(((await engineGet(`/containers/${id}/json`)).body as { State: { Paused: boolean } }).State.Paused, true);
      const back = await pool.resume('proxy-user');
      assert.ok(back, 'resumed through the proxy');
      assert.equal(back.sandbox.id, id);
      assert.match(JSON.stringify((await back.callTool('read_text_file', { path: '/workspace/a.txt' })).content), /through the proxy/);
      await back.release();
    } finally {
      await pool.drain(20_000);
    }
    assert.deepEqual(await dockerPs({ [LABELS.replica]: cfg.server.replicaId }), []);
  });

  it('streams engine events (the pool learns of deaths from them, no inspect): a sandbox killed while idle is seen dying', async () => {
    const cfg = testConfig({ POOL_MIN_SIZE: '1' });
    const pool = createContainerPool({ runtime: createDockerRuntime({ socketPath: proxy.socketPath }), pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger: testLogger() });
    pool.start();
    try {
      assert.equal(await pool.whenWarm(30_000), true);
      const [id] = [...pool.ownedIds()];
      assert.ok(id);
      // Asks for no label: the proxy adds the sandbox label, the stream still carries the sandbox's death.
      const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['die'] }));
      const died = new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: proxy.socketPath, method: 'GET', path: `/events?filters=${filters}` }, (res) => {
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
      // Give the stream a moment to be open before the kills; the outsider's death must not show.
      await sleep(300);
      await execFileAsync('docker', ['start', outsider]);
      await execFileAsync('docker', ['kill', outsider]).catch(() => undefined);
      await execFileAsync('docker', ['kill', id]);
      const seen = await died;
      assert.match(seen, /"exitCode":"137"/);
      assert.doesNotMatch(seen, new RegExp(outsider), 'an event of a container that is not a sandbox');
      await waitFor('the dead spare evicted and replaced', () => !pool.ownedIds().has(id) && pool.stats().idle === 1, 20_000);
    } finally {
      await pool.drain(20_000);
    }
  });

  it("refuses every other call: images, exec, build, volumes, the engine's info", async () => {
    for (const [method, apiPath] of [
      ['GET', '/images/json'],
      ['POST', `/containers/${outsider}/exec`],
      ['POST', `/containers/${outsider}/kill`],
      ['POST', '/build'],
      ['GET', '/volumes'],
      ['GET', '/info'],
      ['POST', '/v1.41/containers/prune'],
    ] as const) {
      const res = await rawCall(proxy.socketPath, method, apiPath);
      assert.equal(res.status, 403, `${method} ${apiPath}: ${res.text}`);
      assert.match(res.text, /not a call sandpool makes/);
    }
  });

  it('creates only hardened sandboxes of the allowed images, and forwards what it serialized itself', async () => {
    const replica = uniqueReplica('px');
    const before = await dockerPs({ [MARK]: String(process.pid) });
    const base = appBody(replica);
    const text = JSON.stringify(base);
    const cases: Array<[string, string, RegExp]> = [
      // The bypass of the old proxy: exact-case hardened fields pass its checks, the engine reads the lower-case ones too.
      ['lower-case privileged and binds', text.replace('"HostConfig":{', '"HostConfig":{"privileged":true,"binds":["/:/host"],'), /HostConfig\.privileged is not a field/],
      ['exact and lower-case twins', text.replace('"HostConfig":{', '"HostConfig":{"Privileged":false,"privileged":true,'), /differ only in case/],
      ['a duplicated key', text.replace('"User":"65532:65532"', '"User":"65532:65532","User":"0"'), /"User" is written twice/],
      ['an escaped key', text.replace('"HostConfig":{', '"HostConfig":{"\\u0050rivileged":true,'), /written with an escape/],
      ['uid 00', text.replace('"User":"65532:65532"', '"User":"00"'), /User must be uid or uid:gid/],
      ['uid 0:0', text.replace('"User":"65532:65532"', '"User":"0:0"'), /User must be uid or uid:gid/],
      ['an image not in POOL_IMAGE', text.replace(`"Image":"${IMAGE}"`, `"Image":"${otherImage}"`), /not one of the proxy's sandbox images/],
      ['an entrypoint', text.replace('"User":', '"Entrypoint":["/bin/sh"],"User":'), /Entrypoint is not a field the proxy accepts/],
      ['unconfined seccomp', text.replace('"SecurityOpt":["no-new-privileges"]', '"SecurityOpt":["no-new-privileges","seccomp=unconfined"]'), /SecurityOpt must be exactly/],
      ['unmasked /proc', text.replace('"HostConfig":{', '"HostConfig":{"MaskedPaths":[],'), /MaskedPaths is not a field/],
      ['executable workspace', text.replace('nodev,noexec,size=67108864', 'nodev,size=67108864'), /Tmpfs\["\/workspace"\] must be exactly/],
      ['no pids limit', text.replace(/"PidsLimit":\d+,/, ''), /PidsLimit is required/],
      ['unlabelled', JSON.stringify({ ...base, Labels: { [MARK]: String(process.pid) } }), /must include sandpool\.app=sandpool/],
      ['host network', text.replace('"NetworkMode":"none"', '"NetworkMode":"host"'), /NetworkMode must be exactly "none"/],
    ];
    for (const [name, body, why] of cases) {
      const res = await rawCall(proxy.socketPath, 'POST', '/containers/create', body);
      assert.ok(res.status === 403 || res.status === 400, `${name}: ${res.status} ${res.text}`);
      assert.match(JSON.parse(res.text).message as string, why, name);
    }
    assert.deepEqual(await dockerPs({ [MARK]: String(process.pid) }), before, 'a refused body created a container');

    // The app's own body passes, by the image's name, its id, or another name of the same id.
    const id = proxy.images.get(IMAGE) ?? '';
    await execFileAsync('docker', ['tag', IMAGE, rebuiltImage]);
    for (const image of [IMAGE, id, id.slice('sha256:'.length, 'sha256:'.length + 12), rebuiltImage]) {
      const res = await rawCall(proxy.socketPath, 'POST', '/containers/create', JSON.stringify({ ...base, Image: image }));
      assert.equal(res.status, 201, `${image}: ${res.text}`);
      const { body } = await engineGet(`/containers/${(JSON.parse(res.text) as { Id: string }).Id}/json`);
      assertHardened(body as Record<string, unknown>, expectations);
    }
  });

  it('re-resolves its images on a miss: an image rebuilt under an allowed name is accepted, the id it replaced no longer is', async () => {
    const build = async (label: string): Promise<void> => {
      const { stdout } = await execFileAsync('bash', ['-c', `printf 'FROM %s\\n' "$1" | docker build -q --label ${MARK}=${label} -t "$2" -`, 'build', IMAGE, rebuiltImage]);
      // The rebuild leaves the first build untagged: removed by id in after().
      builtImages.push(stdout.trim());
    };
    await build('v1');
    const rebuiltProxy = await startSocketProxy({ POOL_IMAGE: rebuiltImage });
    try {
      const first = rebuiltProxy.images.get(rebuiltImage) ?? '';
      const body = { ...appBody(uniqueReplica('px')), Image: rebuiltImage };
      assert.equal((await rawCall(rebuiltProxy.socketPath, 'POST', '/containers/create', JSON.stringify(body))).status, 201);
      await build('v2');
      const res = await rawCall(rebuiltProxy.socketPath, 'POST', '/containers/create', JSON.stringify(body));
      assert.equal(res.status, 201, res.text);
      const { body: info } = await engineGet(`/containers/${(JSON.parse(res.text) as { Id: string }).Id}/json`);
      const second = (info as { Image: string }).Image;
      assert.notEqual(second, first, 'created from the image the name points to now');
      const old = await rawCall(rebuiltProxy.socketPath, 'POST', '/containers/create', JSON.stringify({ ...body, Image: first }));
      assert.equal(old.status, 403, old.text);
      // The sandbox image itself is not on this proxy's list.
      assert.equal((await rawCall(rebuiltProxy.socketPath, 'POST', '/containers/create', JSON.stringify({ ...body, Image: IMAGE }))).status, 403);
    } finally {
      await rebuiltProxy.close();
    }
  });

  it('its healthcheck (check.js) exits 0 when the engine answers through the proxy, 1 when no proxy listens', async () => {
    const check = (socket: string): Promise<number> =>
      execFileAsync(process.execPath, ['dist/src/socket-proxy/check.js', socket]).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
    assert.equal(await check(proxy.socketPath), 0);
    assert.equal(await check(`${proxy.socketPath}.none`), 1);
  });

  it('does not start when none of POOL_IMAGE is on the engine', async () => {
    const result = await execFileAsync(process.execPath, ['dist/src/socket-proxy/main.js', '--listen', `/tmp/sandpool-proxy-never-${process.pid}.sock`, '--log-level', 'silent'], {
      env: { ...process.env, POOL_IMAGE: 'sandpool-no-such-image:1,sandpool-no-such-image:2' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /none of the sandbox images in POOL_IMAGE is on the Docker engine \(sandpool-no-such-image:1, sandpool-no-such-image:2\)/);
  });

  it('starts, pauses, unpauses, attaches to and removes only sandboxes; lists and inspects only sandboxes, without their environment', async () => {
    const docker = new Docker({ socketPath: proxy.socketPath });
    const created = await rawCall(proxy.socketPath, 'POST', '/containers/create', JSON.stringify(appBody(uniqueReplica('px'))));
    assert.equal(created.status, 201, created.text);
    const sandbox = (JSON.parse(created.text) as { Id: string }).Id;
    const sandboxContainer = docker.getContainer(sandbox);
    await sandboxContainer.start();
    // dockerode's pause and unpause: POST /containers/{id}/pause and /unpause, no body. Asked again while the freezer
    // cannot settle, as the runtime does (a container that has just started, on a loaded machine: seen here).
    await pauseRetryingFreeze(() => sandboxContainer.pause() as Promise<void>);
    assert.equal((await execFileAsync('docker', ['inspect', '-f', '{{.State.Paused}}', sandbox])).stdout.trim(), 'true');
    await sandboxContainer.unpause();
    assert.equal((await execFileAsync('docker', ['inspect', '-f', '{{.State.Paused}}', sandbox])).stdout.trim(), 'false');

    // Inspect: the sandbox without Config.Env (the engine has one: the image's PATH at least).
    const inspected = await rawCall(proxy.socketPath, 'GET', `/containers/${sandbox}/json`);
    assert.equal(inspected.status, 200);
    const doc = JSON.parse(inspected.text) as { Config: Record<string, unknown>; State: { Running: boolean } };
    assert.equal(doc.Config.Env, undefined);
    assert.equal(doc.State.Running, true);
    assert.ok(((await engineGet(`/containers/${sandbox}/json`)).body as { Config: { Env?: unknown[] } }).Config.Env?.length);

    // Anything else: as if it did not exist.
    for (const [method, apiPath] of [
      ['DELETE', `/containers/${outsider}?force=true`],
      ['POST', `/containers/${outsider}/start`],
      ['POST', `/containers/${outsider}/pause`],
      ['POST', `/containers/${outsider}/unpause`],
      ['POST', `/containers/${outsider}/attach?stream=1&stdout=1`],
      ['GET', `/containers/${outsider}/json`],
      ['GET', `/containers/${outsider.slice(0, 12)}/json`],
    ] as const) {
      const res = await rawCall(proxy.socketPath, method, apiPath);
      assert.equal(res.status, 404, `${method} ${apiPath}: ${res.text}`);
      assert.doesNotMatch(res.text, /hunter2/);
    }
    assert.match((await execFileAsync('docker', ['inspect', '-f', '{{.State.Status}}', outsider])).stdout.trim(), /created|exited/, 'untouched');

    // A replica container: its state only (the orphan sweep asks whether an owner runs).
    const replicaDoc = await rawCall(proxy.socketPath, 'GET', `/containers/${replicaContainer.slice(0, 12)}/json`);
    assert.equal(replicaDoc.status, 200);
    assert.deepEqual(Object.keys(JSON.parse(replicaDoc.text) as object).sort(), ['Id', 'Name', 'State']);
    assert.doesNotMatch(replicaDoc.text, /hunter2/);
    assert.equal(await createDockerRuntime({ socketPath: proxy.socketPath }).isRunning(replicaContainer.slice(0, 12)), false);
    assert.equal((await rawCall(proxy.socketPath, 'POST', `/containers/${replicaContainer}/start`)).status, 404);

    // List: sandboxes only, whatever the client's filters ask.
    for (const query of ['all=1', `all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${MARK}=outsider`] }))}`, `all=1&filters=${encodeURIComponent(JSON.stringify({ id: [outsider] }))}`]) {
      const listed = await rawCall(proxy.socketPath, 'GET', `/containers/json?${query}`);
      assert.equal(listed.status, 200, listed.text);
      const items = JSON.parse(listed.text) as Array<{ Id: string; Labels: Record<string, string> }>;
      assert.ok(items.every((c) => c.Labels[LABELS.app] === 'sandpool'), `${query}: a container that is not a sandbox`);
      assert.ok(!items.some((c) => c.Id === outsider || c.Id === replicaContainer), query);
      if (query === 'all=1') assert.ok(items.some((c) => c.Id === sandbox));
    }

    await sandboxContainer.remove({ force: true });
    assert.equal((await execFileAsync('docker', ['ps', '-aq', '--no-trunc', '--filter', `id=${sandbox}`])).stdout.trim(), '');
  });

  it('its node sweeper removes the sandboxes of a replica container on this engine that stopped, at once, and nothing else', async () => {
    const create = async (...args: string[]): Promise<string> => (await execFileAsync('docker', ['create', '--label', `${MARK}=sweep`, ...args])).stdout.trim();
    // A replica container (running, then stopped), and a container that merely has a name an owner label could point at.
    // The image's own entrypoint is the MCP server, which ends without stdin: these just wait (node is in the image; no shell).
    const idle = ['--entrypoint', 'node', IMAGE, '-e', 'setTimeout(() => {}, 600000)'];
    const replica = await create('--label', 'sandpool.role=replica', ...idle);
    const notAReplica = await create(...idle);
    await execFileAsync('docker', ['start', replica, notAReplica]);
    const sandbox = (owner: string): Promise<string> => create('--label', `${LABELS.app}=sandpool`, '--label', `${LABELS.owner}=${owner}/1`, '--label', `${LABELS.replica}=sweep-test`, IMAGE);
    const ofReplica = await sandbox(replica.slice(0, 12));
    const ofNotAReplica = await sandbox(notAReplica.slice(0, 12));
    const ofHostProcess = await sandbox('no-such-container-host');
    const sweeper = createNodeSweeper({ engine: createEngineClient({ socketPath: '/var/run/docker.sock' }), logger: testLogger(), intervalMs: 0 });
    const exists = async (id: string): Promise<boolean> => (await execFileAsync('docker', ['ps', '-aq', '--no-trunc', '--filter', `id=${id}`])).stdout.trim() === id;

    // Owner running: kept.
    const first = await sweeper.sweep();
    for (const id of [ofReplica, ofNotAReplica, ofHostProcess]) assert.ok(!first.includes(id) && (await exists(id)), `${id.slice(0, 12)} kept while its owner runs or is unknown`);
    // Owner stopped: removed at once; the others still kept (one not a replica even when stopped).
    await execFileAsync('docker', ['stop', '-t', '0', replica, notAReplica]);
    const second = await sweeper.sweep();
    assert.ok(second.includes(ofReplica), 'the stopped replica\'s sandbox removed');
    assert.equal(await exists(ofReplica), false);
    for (const id of [ofNotAReplica, ofHostProcess]) assert.ok(await exists(id), `${id.slice(0, 12)} kept`);
    assert.ok(await exists(replica), 'the replica container itself is never touched');
  });
});
