import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { LABELS } from '../../src/runtime/types.js';
import { sleep } from '../../src/util/async.js';
import { converse } from '../support/conversation.js';
import { startCluster, type RunningCluster } from '../support/cluster.js';
import { connectUser, dockerPs, emitAck, nextEvent, startReplica, testConfig, textOf, uniqueReplica, waitFor, type ClientSocket } from '../support/helpers.js';

/** Sends a message, approves its tool calls; resolves with the tool results' contents. */
const chat = async (socket: ClientSocket, text: string): Promise<string[]> => (await converse(socket, text, 60_000)).contents;

const active = async (url: string): Promise<number> => ((await (await fetch(`${url}/stats/pool`)).json()) as { active: number }).active;

/*
 * test/unit/workspaces.test.ts runs the same rules on fake sandboxes; here the
 * snapshots go through the sandbox image's own agent (pool/agent) in real
 * containers, and through real stores across restarts and kill -9.
 */
describe('workspaces on one replica (Docker sandboxes, fs store)', () => {
  let app: Sandpool;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-ws-it-'));
  const sockets: ClientSocket[] = [];
  const user = async (id: string): Promise<ClientSocket> => {
    const s = await connectUser(app.url, { userId: id });
    sockets.push(s);
    return s;
  };

  // Every user here goes idle between tests, so "this user's sandbox was released" is "no sandbox is leased".
  const idleReleased = async (): Promise<void> => void await waitFor('idle sandboxes to be released', async () => (await active(app.url)) === 0, 10_000, 200);

  before(async () => {
    app = await createSandpool(
      testConfig({ POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '8', SESSION_IDLE_TIMEOUT_MS: '1500', WORKSPACE_STORE: 'fs', WORKSPACE_DIR: dir, WORKSPACE_MAX_BYTES: '4096' }),
      { warmTimeoutMs: 60_000 },
    );
  });
  after(async () => {
    for (const s of sockets) s.close();
    await app.stop();
    assert.deepEqual(await dockerPs({ [LABELS.replica]: app.config.server.replicaId }), []);
  });

  // Twin in the fast tier: workspaces "saves after a call that writes ... and restores". Here: the image's snapshot channel.
  it('gives a returning user their files after an idle release, in a fresh sandbox, with no "files are gone"', async () => {
    const s = await user('ws-alice');
    await chat(s, 'write "still mine" to /workspace/notes.txt');
    await idleReleased();
    const [content] = await chat(s, 'read /workspace/notes.txt');
    assert.equal(content, 'still mine');
  });

  it('keeps files written over MCP the same way', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${app.url}/mcp`), { requestInit: { headers: { Authorization: 'Bearer ws-mcp' } } });
    const client = new Client({ name: 't', version: '1' });
    await client.connect(transport);
    await client.callTool({ name: 'write_file', arguments: { path: '/workspace/m.txt', content: 'over MCP' } });
    await transport.terminateSession();
    await client.close();
    await sleep(300);
    const s = await user('ws-mcp');
    assert.deepEqual(await chat(s, 'read /workspace/m.txt'), ['over MCP'], 'released on DELETE, restored for the chat');
  });

  // Twin in the fast tier: workspaces "never restores one user's files into another user's sandbox". Here: real containers and the fs store.
  it('never restores one user\'s files into another user\'s sandbox', async () => {
    const s = await user('ws-bob');
    const [content] = await chat(s, 'read /workspace/notes.txt');
    assert.doesNotMatch(content ?? '', /still mine/);
    assert.match(content ?? '', /ENOENT|no such file/i);
  });

  // Twin in the fast tier: workspaces "over WORKSPACE_MAX_BYTES". Here: the limit measured on a real /workspace.
  it('over WORKSPACE_MAX_BYTES tells the user and keeps the last good snapshot', async () => {
    const s = await user('ws-big');
    await chat(s, 'write "small" to /workspace/a.txt');
    const [note] = await chat(s, `write "${'x'.repeat(5000)}" to /workspace/b.txt`);
    assert.match(note ?? '', /more than the 4\.0 KiB a snapshot may keep: this change was not saved, and your last saved files stay as they were/);
    await idleReleased();
    assert.deepEqual(await chat(s, 'read /workspace/a.txt'), ['small'], 'the last good snapshot');
  });

  // Twin in the fast tier: workspaces "says a damaged snapshot could not be restored". Here: a damaged file on disk, restored by the image.
  it('a damaged snapshot: a clear message, a fresh workspace, and the replica keeps serving', async () => {
    const s = await user('ws-corrupt');
    await chat(s, 'write "x" to /workspace/c.txt');
    const file = path.join(dir, `${createHash('sha256').update('ws-corrupt').digest('hex')}.snapshot`);
    assert.ok(readdirSync(dir).includes(path.basename(file)));
    await idleReleased();
    writeFileSync(file, 'SPWS0001 torn in half');
    const [content] = await chat(s, 'list files in /workspace');
    assert.match(content ?? '', /Your saved files could not be restored \(your saved files are damaged\), so this ran in a fresh, empty workspace/);
    assert.deepEqual(await chat(s, 'write "again" to /workspace/c.txt'), ['Successfully wrote to /workspace/c.txt']);
    assert.equal((await fetch(`${app.url}/health`)).status, 200);
  });

  // Twin in the fast tier: workspaces "wipes a user's files". Here: the workspace:wipe event and the container going.
  it('wipes a user\'s files on request: the snapshot and the sandbox', async () => {
    const s = await user('ws-wipe');
    await chat(s, 'write "forget me" to /workspace/w.txt');
    assert.deepEqual(await emitAck(s, 'workspace:wipe', {}), { ok: true });
    const [content] = await chat(s, 'read /workspace/w.txt');
    assert.match(content ?? '', /ENOENT|no such file/i);
    assert.equal(readdirSync(dir).includes(`${createHash('sha256').update('ws-wipe').digest('hex')}.snapshot`), false);
  });

  it('measures snapshots and restores in /metrics', async () => {
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    assert.match(metrics, /sandpool_workspace_seconds_count\{[^}]*operation="save"[^}]*outcome="saved"[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_workspace_seconds_count\{[^}]*operation="restore"[^}]*outcome="restored"[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_workspace_archive_bytes_count\{[^}]*operation="save"/);
  });
});

describe('workspaces across a replica restart (fs store)', () => {
  it('a user finds their files on the replica that replaced the one they used', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-ws-restart-'));
    const env = { POOL_MIN_SIZE: '1', WORKSPACE_STORE: 'fs', WORKSPACE_DIR: dir, REPLICA_ID: uniqueReplica('ws-restart') };
    const first = await startReplica(env, /Initialized with 1 idle containers/, 60_000);
    const urlOf = (out: string): string => `http://127.0.0.1:${/"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(out)?.[1] ?? ''}`;
    let s = await connectUser(urlOf(first.output()), { userId: 'ws-restart' });
    await chat(s, 'write "survives a restart" to /workspace/r.txt');
    s.close();
    await first.stop('SIGTERM', 30_000);
    const second = await startReplica(env, /Initialized with 1 idle containers/, 60_000);
    try {
      s = await connectUser(urlOf(second.output()), { userId: 'ws-restart' });
      assert.deepEqual(await chat(s, 'read /workspace/r.txt'), ['survives a restart']);
      s.close();
    } finally {
      await second.stop('SIGTERM', 30_000);
    }
  });
});

describe('workspaces after kill -9 of the replica holding the sandbox (Redis store, 2 replicas behind nginx)', () => {
  let cluster: RunningCluster;
  before(async () => {
    cluster = await startCluster(2, { POOL_MIN_SIZE: '1', HEARTBEAT_INTERVAL_MS: '500' });
  });
  after(async () => {
    await cluster.stop();
  });

  it('the survivor restores the user\'s files from Redis into a fresh sandbox and says so', async () => {
    const socket = await connectUser(cluster.state.url, { userId: 'ws-killed' }, { reconnection: true });
    const home = (await nextEvent(socket, 'session')).replica;
    await chat(socket, 'write "outlives its replica" to /workspace/k.txt');
    const redis = new Redis(cluster.state.redisUrl);
    assert.equal(await redis.exists('sandpool:workspace:ws-killed'), 1, 'saved in Redis before message:done');
    redis.disconnect();
    const victim = cluster.state.replicas.find((r) => r.id === home);
    assert.ok(victim);
    process.kill(victim.pid, 'SIGKILL');
    const survivor = await nextEvent(socket, 'session', (p) => p.replica !== home, 30_000);
    assert.notEqual(survivor.replica, home);
    // The dead replica's heartbeat has to lapse before its ownership is taken over.
    await sleep(2_000);
    const [content] = await chat(socket, 'read /workspace/k.txt');
    assert.match(content ?? '', /with your files restored from your last snapshot/);
    assert.match(content ?? '', /outlives its replica/);
    socket.close();
  });
});

// Keeps `textOf` referenced for readers of MCP results above.
void (textOf as (r: CallToolResult) => string);
