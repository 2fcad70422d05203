import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import type { PoolStats } from '../../src/pool/pool-stats.js';
import { createOrphanSweeper } from '../../src/orphans/orphan-sweeper.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { pauseRetryingFreeze } from '../../src/runtime/freeze-retry.js';
import { LABELS } from '../../src/runtime/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { converse } from '../support/conversation.js';
import { startCluster, type RunningCluster } from '../support/cluster.js';
import { dockerInspect, dockerPs, emitAck, execFileAsync, testConfig, testLogger, textOf, uniqueReplica, userSockets, waitFor } from '../support/helpers.js';

/*
 * Parked sandboxes on the real engine (docs/architecture.md, "Parked
 * sandboxes"): a user who leaves has their sandbox frozen (docker pause) for
 * them; they get it back on their next call; count, TTL, demand, wipe,
 * shutdown, the sweeper and the reaper remove it. test/unit/pool-park.test.ts
 * and lease-parking.test.ts run the same rules on fakes.
 */

const users = userSockets();
const apps: Sandpool[] = [];
const dirs: string[] = [];
const strays: string[] = [];

after(async () => {
  users.closeAll();
  await Promise.allSettled(apps.map((a) => a.stop()));
  for (const a of apps) assert.deepEqual(await dockerPs({ [LABELS.replica]: a.config.server.replicaId }), [], 'shutdown removes parked sandboxes too');
  await execFileAsync('docker', ['rm', '-f', ...strays]).catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}): Promise<{ app: Sandpool; dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-park-it-'));
  dirs.push(dir);
  const app = await createSandpool(
    testConfig({
      POOL_MIN_SIZE: '1',
      POOL_MAX_SIZE: '6',
      PARK_MAX: '3',
      PARK_TTL_S: '3600',
      SESSION_DISCONNECT_GRACE_MS: '200',
      WORKSPACE_STORE: 'fs',
      WORKSPACE_DIR: dir,
      ...env,
    }),
    { warmTimeoutMs: 60_000 },
  );
  apps.push(app);
  return { app, dir };
}

const chat = async (socket: Parameters<typeof converse>[0], text: string): Promise<string[]> => (await converse(socket, text, 60_000)).contents;

/** Writes a file as the user, leaves, and waits until their sandbox is parked; resolves with the frozen container's id. */
async function parkWithFile(app: Sandpool, userId: string, content: string): Promise<string> {
  const before = new Set(await pausedOf(app));
  const { socket } = await users.connect(app.url, userId);
  assert.match((await chat(socket, `write "${content}" to /workspace/f.txt`))[0] ?? '', /Successfully wrote/);
  socket.close();
  // Generous: on a loaded machine the last snapshot and the pause can take many seconds (a run in a busy lane took over 15 s).
  const id = await waitFor(`${userId}'s sandbox parked`, async () => (await pausedOf(app)).find((c) => !before.has(c)), 60_000, 200);
  return id;
}

/** The replica's containers that are frozen, from `docker inspect` (State.Paused). */
async function pausedOf(app: Sandpool): Promise<string[]> {
  const ids = await dockerPs({ [LABELS.replica]: app.config.server.replicaId });
  const states = await Promise.all(ids.map(async (id) => ({ id, info: await dockerInspect(id).catch(() => undefined) })));
  return states.filter((s) => (s.info?.State as { Paused?: boolean } | undefined)?.Paused === true).map((s) => s.id);
}

const exists = async (id: string): Promise<boolean> => (await execFileAsync('docker', ['inspect', id]).then(() => true, () => false));
const stats = async (app: Sandpool): Promise<PoolStats> => (await (await fetch(`${app.url}/stats/pool`)).json()) as PoolStats;
const snapshotFile = (dir: string, userId: string): string => path.join(dir, `${createHash('sha256').update(userId).digest('hex')}.snapshot`);

describe('parked sandboxes (Docker engine)', () => {
  it('parks a user\'s sandbox frozen with their files, resumes it for them, never for another user', async () => {
    const { app, dir } = await start();
    const id = await parkWithFile(app, 'pk-alice', 'frozen but mine');
    const frozen = await dockerInspect(id);
    assert.equal((frozen.State as { Paused?: boolean }).Paused, true);
    const s = await stats(app);
    assert.equal(s.parked, 1);
    assert.equal(s.active, 0, 'parked is not active');
    assert.equal(s.total, s.idle + s.active + s.parked + s.creating);

    // Another user meanwhile: a different sandbox, without alice's file; hers stays frozen.
    const { socket: bob } = await users.connect(app.url, 'pk-bob');
    assert.match((await chat(bob, 'read /workspace/f.txt'))[0] ?? '', /ENOENT|no such file/i);
    assert.equal(((await dockerInspect(id)).State as { Paused?: boolean }).Paused, true, 'not handed to bob');
    bob.close();

    // The snapshot goes: what alice reads now can only come from the frozen sandbox itself.
    rmSync(snapshotFile(dir, 'pk-alice'), { force: true });
    const acquiredBefore = (await stats(app)).acquired;
    const { socket } = await users.connect(app.url, 'pk-alice');
    assert.deepEqual(await chat(socket, 'read /workspace/f.txt'), ['frozen but mine']);
    const thawed = await dockerInspect(id);
    assert.equal((thawed.State as { Paused?: boolean }).Paused, false);
    assert.equal(thawed.State.Running, true);
    assert.equal((await stats(app)).acquired, acquiredBefore, 'no acquire: the same sandbox');
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    assert.match(metrics, /^sandpool_park_resumes_total\{[^}]*\} 1$/m);
    assert.match(metrics, /^sandpool_park_resume_seconds_count\{[^}]*\} 1$/m);
    assert.match(metrics, /^sandpool_park_returning_users_total\{[^}]*how="resumed"[^}]*\} 1$/m);
    socket.close();
  });

  it('evicts the least recently parked beyond PARK_MAX (count); that user gets their files from the snapshot', async () => {
    const { app } = await start({ PARK_MAX: '1' });
    const first = await parkWithFile(app, 'pk-count-1', 'one');
    await parkWithFile(app, 'pk-count-2', 'two');
    await waitFor('the first parked sandbox removed', async () => !(await exists(first)), 15_000, 100);
    assert.equal((await stats(app)).parked, 1);
    const { socket } = await users.connect(app.url, 'pk-count-1');
    assert.deepEqual(await chat(socket, 'read /workspace/f.txt'), ['one'], 'restored from the snapshot');
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    assert.match(metrics, /^sandpool_park_evictions_total\{[^}]*reason="count"[^}]*\} 1$/m);
    socket.close();
  });

  it('evicts after PARK_TTL_S; the files come back from the snapshot', async () => {
    const { app } = await start({ PARK_TTL_S: '2' });
    const id = await parkWithFile(app, 'pk-ttl', 'aged');
    await waitFor('the parked sandbox removed after its TTL', async () => !(await exists(id)), 15_000, 200);
    const { socket } = await users.connect(app.url, 'pk-ttl');
    assert.deepEqual(await chat(socket, 'read /workspace/f.txt'), ['aged']);
    assert.match(await (await fetch(`${app.url}/metrics`)).text(), /^sandpool_park_evictions_total\{[^}]*reason="ttl"[^}]*\} 1$/m);
    socket.close();
  });

  it('yields to demand: a new user at POOL_MAX_SIZE takes the oldest parked sandbox\'s room', async () => {
    const { app } = await start({ POOL_MIN_SIZE: '0', POOL_MAX_SIZE: '2', ENABLE_CONTAINER_POOL: 'false' });
    const a = await parkWithFile(app, 'pk-demand-a', 'a');
    await parkWithFile(app, 'pk-demand-b', 'b');
    assert.equal((await stats(app)).total, 2);
    const { socket } = await users.connect(app.url, 'pk-demand-new');
    assert.match((await chat(socket, 'list files in /workspace'))[0] ?? '', /^$|No files|\[/);
    assert.equal(await exists(a), false, 'the oldest parked sandbox made room');
    assert.match(await (await fetch(`${app.url}/metrics`)).text(), /^sandpool_park_evictions_total\{[^}]*reason="demand"[^}]*\} 1$/m);
    socket.close();
    const { socket: back } = await users.connect(app.url, 'pk-demand-a');
    assert.deepEqual(await chat(back, 'read /workspace/f.txt'), ['a'], 'restored from the snapshot');
    back.close();
  });

  it('a resume that fails (the frozen container is gone) falls back to a fresh sandbox with the snapshot, with no notice', async () => {
    const { app } = await start();
    const id = await parkWithFile(app, 'pk-broken', 'still here');
    // A paused container is removable: the resume then finds it gone.
    await execFileAsync('docker', ['rm', '-f', id]);
    const { socket } = await users.connect(app.url, 'pk-broken');
    const contents = await chat(socket, 'read /workspace/f.txt');
    assert.deepEqual(contents, ['still here']);
    assert.match(await (await fetch(`${app.url}/metrics`)).text(), /^sandpool_park_evictions_total\{[^}]*reason="failed"[^}]*\} 1$/m);
    socket.close();
  });

  it('wipe removes a parked sandbox: over the socket and over /admin', async () => {
    const { app } = await start();
    const viaSocket = await parkWithFile(app, 'pk-wipe-s', 'forget me');
    const { socket } = await users.connect(app.url, 'pk-wipe-s');
    assert.deepEqual(await emitAck(socket, 'workspace:wipe', {}), { ok: true });
    await waitFor('the parked sandbox removed by the wipe', async () => !(await exists(viaSocket)), 10_000, 100);
    assert.match((await chat(socket, 'read /workspace/f.txt'))[0] ?? '', /ENOENT|no such file/i);
    socket.close();

    const viaAdmin = await parkWithFile(app, 'pk-wipe-a', 'forget me too');
    assert.equal((await fetch(`${app.url}/admin/workspaces/pk-wipe-a`, { method: 'DELETE' })).status < 300, true);
    await waitFor('the parked sandbox removed by the admin wipe', async () => !(await exists(viaAdmin)), 10_000, 100);
    const { socket: again } = await users.connect(app.url, 'pk-wipe-a');
    assert.match((await chat(again, 'read /workspace/f.txt'))[0] ?? '', /ENOENT|no such file/i);
    again.close();
  });

  it('shutdown removes parked sandboxes', async () => {
    const { app } = await start();
    const id = await parkWithFile(app, 'pk-shutdown', 'x');
    await app.stop();
    assert.equal(await exists(id), false);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: app.config.server.replicaId }), []);
  });
});

describe('the sweeper and the reaper on paused containers', () => {
  /** A running, then paused, sandbox-labelled container, as a dead replica's parked sandbox would be left. */
  async function pausedLeftover(labels: Record<string, string>): Promise<string> {
    const args = ['run', '-d', '-i', ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--network', 'none', 'sandpool-sandbox:latest'];
    const id = (await execFileAsync('docker', args)).stdout.trim();
    strays.push(id);
    // As the runtime does: the freezer can fail to settle on a loaded machine (seen here), and runc thaws it back.
    await pauseRetryingFreeze(async () => void (await execFileAsync('docker', ['pause', id])));
    assert.equal(((await dockerInspect(id)).State as { Paused?: boolean }).Paused, true);
    return id;
  }

  // Owned by a process on another host that this engine cannot check: any replica starting meanwhile in the
  // files running beside this one (their start-up sweeps see every sandpool container) leaves it alone as young
  // and unknown. A dead pid on this host would make it every replica's orphan, removed before the test looks.
  const base = { [LABELS.app]: 'sandpool', [LABELS.pool]: 'default', [LABELS.owner]: `elsewhere-${process.pid}/1` };
  const sweeper = (me: string): ReturnType<typeof createOrphanSweeper> =>
    createOrphanSweeper({
      runtime: createDockerRuntime(),
      replicaId: me,
      owner: `${os.hostname()}/${process.pid}-park-sweeper`,
      ownedIds: () => new Set(),
      logger: testLogger(),
      graceMs: 3_600_000,
      deadReplicaGraceMs: 60_000,
      isReplicaLive: async () => false,
      onRemoved: () => undefined,
    });

  it('the orphan sweep removes a paused container left by an earlier run of its replica', async () => {
    const me = uniqueReplica('pk-me');
    const id = await pausedLeftover({ ...base, [LABELS.replica]: me, [LABELS.created]: String(Date.now()) });
    const removed = await sweeper(me).sweep();
    assert.ok(removed.includes(id));
    assert.equal(await exists(id), false);
  });

  it('the dead-replica reaper removes a dead replica\'s paused container', async () => {
    const dead = uniqueReplica('pk-reaped');
    const id = await pausedLeftover({ ...base, [LABELS.replica]: dead, [LABELS.created]: String(Date.now()) });
    const { removed } = await sweeper(uniqueReplica('pk-me')).removeDeadReplica(dead, Date.now() - 120_000);
    assert.deepEqual(removed, [id]);
    assert.equal(await exists(id), false);
  });
});

describe('parked sandboxes across replicas (npm run cluster: Redis, 2 replicas, nginx)', () => {
  let cluster: RunningCluster;
  const killed = new Set<string>();

  after(async () => {
    users.closeAll();
    await cluster?.stop();
    for (const r of cluster?.state.replicas ?? []) assert.deepEqual(await dockerPs({ [LABELS.replica]: r.id }), [], `containers of ${r.id} left behind`);
  });

  const replicaStats = async (url: string): Promise<PoolStats> => (await (await fetch(`${url}/stats/pool`)).json()) as PoolStats;
  const resumesOn = async (url: string): Promise<number> => Number(/^sandpool_park_resumes_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

  /** One MCP tools/call as the user, against one replica directly. */
  async function mcpCall(url: string, userId: string, name: string, args: Record<string, unknown>): Promise<string> {
    const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${userId}` } } });
    const client = new Client({ name: 'park-test', version: '1' });
    await client.connect(transport);
    try {
      return textOf((await client.callTool({ name, arguments: args })) as CallToolResult);
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    }
  }

  it('resumes a user\'s parked sandbox wherever they come back: a message on the other replica, an MCP call on the other replica', async () => {
    cluster = await startCluster(2, { POOL_MIN_SIZE: '1', PARK_MAX: '4', SESSION_DISCONNECT_GRACE_MS: '200', HEARTBEAT_INTERVAL_MS: '500' });
    const [a, b] = cluster.state.replicas;
    assert.ok(a && b);

    // Parked on A; the user returns on B with a chat message: routed to A and resumed there.
    const onA = await users.connect(a.url, 'pkc-chat');
    await chat(onA.socket, 'write "parked on A" to /workspace/f.txt');
    onA.socket.close();
    await waitFor('parked on A', async () => (await replicaStats(a.url)).parked === 1, 15_000, 100);
    await waitFor('the cluster view counts it', async () => {
      const view = (await (await fetch(`${b.url}/stats/pool?scope=cluster`)).json()) as { totals: { parked: number } };
      return view.totals.parked === 1;
    }, 10_000, 200);
    const bActive = (await replicaStats(b.url)).acquired;
    const onB = await users.connect(b.url, 'pkc-chat');
    assert.deepEqual(await chat(onB.socket, 'read /workspace/f.txt'), ['parked on A']);
    assert.equal(await resumesOn(a.url), 1, 'resumed on A');
    assert.equal((await replicaStats(a.url)).parked, 0);
    assert.equal((await replicaStats(b.url)).acquired, bActive, 'B leased no sandbox of its own');
    onB.socket.close();

    // Parked on B (MCP session ended there); the user's next MCP call arrives on A: routed to B and resumed there.
    assert.match(await mcpCall(b.url, 'pkc-mcp', 'write_file', { path: '/workspace/m.txt', content: 'parked on B' }), /Successfully wrote/);
    await waitFor('parked on B', async () => (await replicaStats(b.url)).parked === 1, 15_000, 100);
    assert.equal(await mcpCall(a.url, 'pkc-mcp', 'read_text_file', { path: '/workspace/m.txt' }), 'parked on B');
    assert.equal(await resumesOn(b.url), 1, 'resumed on B');
  });

  it('replica death: a survivor serves the users of parked sandboxes from their snapshots (an MCP call at once, its owner waited out), and removes the frozen containers', async () => {
    const [a, b] = cluster.state.replicas;
    assert.ok(a && b);
    const onA = await users.connect(a.url, 'pkc-death');
    await chat(onA.socket, 'write "in the snapshot" to /workspace/d.txt');
    onA.socket.close();
    assert.match(await mcpCall(a.url, 'pkc-death-mcp', 'write_file', { path: '/workspace/m.txt', content: 'mcp snapshot' }), /Successfully wrote/);
    await waitFor('both parked on A', async () => (await replicaStats(a.url)).parked >= 2, 15_000, 100);
    process.kill(a.pid, 'SIGKILL');
    killed.add(a.id);
    // At once, while A's heartbeat is still fresh: B routes the call to A, which does not take it; B waits until A's
    // claim lapses (3 beats of 500 ms, plus one) and runs it itself, the file from the snapshot.
    const killedAt = Date.now();
    assert.match(await mcpCall(b.url, 'pkc-death-mcp', 'read_text_file', { path: '/workspace/m.txt' }), /mcp snapshot/);
    console.log(`# park: an MCP call to a killed owner served by the survivor ${Date.now() - killedAt} ms after the kill`);
    await waitFor("the dead replica's containers (the frozen one too) removed by the survivor", async () => (await dockerPs({ [LABELS.replica]: a.id })).length === 0, 30_000, 200);
    const onB = await users.connect(b.url, 'pkc-death');
    const [content] = await chat(onB.socket, 'read /workspace/d.txt');
    assert.match(content ?? '', /in the snapshot/);
    onB.socket.close();
  });
});
