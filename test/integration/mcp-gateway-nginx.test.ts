/**
 * /mcp through nginx on a 2-replica cluster (Redis, nginx/sandpool.conf.template):
 * every client kind of test/support/mcp-clients.ts, 2026-07-28 beside the
 * chat, routing between replicas, the 2026 headers passed on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CallToolResult } from '../../src/protocol/mcp-types.js';
import { converse } from '../support/conversation.js';
import { startCluster, type RunningCluster } from '../support/cluster.js';
import { connectUser, nextEvent, textOf, type ClientSocket } from '../support/helpers.js';
import { MCP_CLIENTS, connectMcpClient, listWriteRead, mcpClientSlug } from '../support/mcp-clients.js';
import { connectV1, mcpClient } from '../support/mcp-v1-client.js';
import { operatorHeaders } from '../support/tokens.js';

/** Sandboxes leased on a replica (/stats/pool). */
async function activeSandboxes(url: string): Promise<number> {
  const res = await fetch(`${url}/stats/pool`, { headers: await operatorHeaders() });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { active: number }).active;
}

const text = (r: unknown): string => textOf(r as CallToolResult);
const chat = async (socket: ClientSocket, text: string): Promise<string[]> => (await converse(socket, text, 60_000)).contents;

describe('MCP gateway through nginx on a 2-replica cluster', () => {
  let cluster: RunningCluster;
  const sockets: ClientSocket[] = [];
  const clients: Array<{ close(): Promise<void> }> = [];
  const replicaUrls = (): string[] => cluster.state.replicas.map((r) => r.url);

  before(async () => {
    cluster = await startCluster(2, { POOL_MIN_SIZE: '1', HEARTBEAT_INTERVAL_MS: '1000' });
  });
  after(async () => {
    for (const s of sockets) s.close();
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
  });

  for (const kind of MCP_CLIENTS) {
    it(`${kind} through nginx: list -> write -> read of the user's workspace, in the era it negotiated`, async () => {
      // The development identity (the cluster has no AUTH_SECRET): the bearer token is the user id.
      await listWriteRead(kind, cluster.state.url, `nginx-${mcpClientSlug(kind)}`, replicaUrls, connectV1);
    });
  }

  it('reaches the user\'s one workspace through nginx, and from whichever replica a session lands on', async () => {
    const { client } = await mcpClient(cluster.state.url, 'hank');
    clients.push(client);
    await client.callTool({ name: 'write_file', arguments: { path: '/workspace/h.txt', content: 'via nginx' } });
    assert.equal(text(await client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/h.txt' } })), 'via nginx');

    // The user's chat holds the sandbox on the replica its uid hashes to; an MCP session on the other one is routed there.
    const socket = await connectUser(cluster.state.url, { userId: 'iris' }, { uid: 'iris' });
    sockets.push(socket);
    const home = (await nextEvent(socket, 'session')).replica;
    await chat(socket, 'write "one workspace" to /workspace/i.txt');
    const other = cluster.state.replicas.find((r) => r.id !== home);
    assert.ok(other);
    const activeOnOther = (): Promise<number> => activeSandboxes(other.url);
    const before = await activeOnOther();
    const elsewhere = await mcpClient(other.url, 'iris');
    clients.push(elsewhere.client);
    assert.equal(text(await elsewhere.client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/i.txt' } })), 'one workspace');
    assert.equal(await activeOnOther(), before, 'no second sandbox for iris on the other replica');
    // 2026-07-28 from the other replica too: routed to the one sandbox.
    const modern = await connectMcpClient('v2 client offering 2026-07-28 first', other.url, 'iris', { v1: connectV1 });
    clients.push(modern);
    assert.equal(text(await modern.callTool('read_text_file', { path: '/workspace/i.txt' })), 'one workspace');
    assert.equal(await activeOnOther(), before, 'still no second sandbox');
  });

  it('a file written over 2026-07-28 MCP through nginx is read back in the same user\'s chat, and back', async () => {
    const socket = await connectUser(cluster.state.url, { userId: 'june' }, { uid: 'june' });
    sockets.push(socket);
    const modern = await connectMcpClient('v2 client offering 2026-07-28 first', cluster.state.url, 'june', { v1: connectV1 });
    clients.push(modern);
    assert.equal(modern.negotiated, '2026-07-28');
    await modern.callTool('write_file', { path: '/workspace/j.txt', content: 'from MCP 2026-07-28 via nginx' });
    assert.deepEqual(await chat(socket, 'read /workspace/j.txt'), ['from MCP 2026-07-28 via nginx']);
    await chat(socket, 'write "from chat via nginx" to /workspace/k.txt');
    assert.equal(text(await modern.callTool('read_text_file', { path: '/workspace/k.txt' })), 'from chat via nginx');
  });

  it('passes the 2026-07-28 headers on: a replica behind nginx refuses a mismatch (400, -32020)', async () => {
    const res = await fetch(`${cluster.state.url}/mcp`, {
      method: 'POST',
      headers: { authorization: 'Bearer kim', 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'write_file' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'read_text_file', arguments: { path: '/workspace/x' }, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} } },
      }),
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: number } }).error.code, -32020);
  });
});
