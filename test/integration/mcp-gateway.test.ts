import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { StartedProcess } from '../../scripts/lib/start-process.js';
import type { CallToolResult } from '../../src/protocol/mcp-types.js';
import { LABELS } from '../../src/runtime/types.js';
import { converse } from '../support/conversation.js';
import { connectUser, dockerPs, emitAck, nextEvent, startReplica, textOf, uniqueReplica, waitFor, type ClientSocket } from '../support/helpers.js';
import { MCP_CLIENTS, connectMcpClient, listWriteRead, mcpClientSlug } from '../support/mcp-clients.js';
import { connectV1, mcpClient } from '../support/mcp-v1-client.js';
import { TEST_OPERATOR_SECRET, TEST_SECRET, makeToken, operatorHeaders } from '../support/tokens.js';

/** Sandboxes leased on a replica (/stats/pool; an operator token where the replica has AUTH_SECRET). */
async function activeSandboxes(url: string): Promise<number> {
  const res = await fetch(`${url}/stats/pool`, { headers: await operatorHeaders() });
  assert.equal(res.status, 200, await res.clone().text());
  const { active } = (await res.json()) as { active: unknown };
  assert.equal(typeof active, 'number');
  return active as number;
}

const ISSUER = 'https://id.example';

/** The JSON-RPC error a call was refused with. */
async function refusal(work: Promise<unknown>): Promise<{ code: number; message: string; data: { code?: string } }> {
  try {
    await work;
  } catch (err) {
    const e = err as { code?: number; message: string; data?: { code?: string } };
    return { code: e.code ?? 0, message: e.message, data: e.data ?? {} };
  }
  assert.fail('the call was not refused');
}

const text = (r: unknown): string => textOf(r as CallToolResult);

/** Sends a message, approves its tool calls; resolves with the tool results' contents. */
const chat = async (socket: ClientSocket, text: string): Promise<string[]> => (await converse(socket, text, 60_000)).contents;

describe('MCP gateway on one replica (the replica in its own process, the SDK clients and the Inspector)', () => {
  let replica: StartedProcess;
  let url: string;
  let replicaId: string;
  const sockets: ClientSocket[] = [];
  const clients: Array<{ close(): Promise<void> }> = [];
  const token = (sub: string): Promise<string> => makeToken({ sub, iss: ISSUER });

  before(async () => {
    replicaId = uniqueReplica('mcp');
    replica = await startReplica(
      { REPLICA_ID: replicaId, POOL_MIN_SIZE: '2', AUTH_SECRET: TEST_SECRET, OPERATOR_SECRET: TEST_OPERATOR_SECRET, AUTH_ISSUER: ISSUER, MCP_MAX_BODY_BYTES: '65536', MAX_REQUESTS_PER_USER: '3', HOST: '127.0.0.1' },
      /Initialized with 2 idle containers/,
      60_000,
    );
    url = `http://127.0.0.1:${/"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(replica.output())?.[1] ?? ''}`;
  });
  after(async () => {
    for (const s of sockets) s.close();
    for (const c of clients) await c.close().catch(() => undefined);
    // A drain under a loaded machine can take a while: the bound is the replica's own (SHUTDOWN_TIMEOUT_MS) plus slack.
    await replica.stop('SIGTERM', 45_000);
    assert.deepEqual(await dockerPs({ [LABELS.replica]: replicaId }), [], 'containers left behind');
  });

  // Twin in the fast tier: mcp-gateway "challenges a request without a usable token". Here: the official SDK client against a listening replica.
  it('answers without a token, or with a bad one, 401 with the resource metadata to find the authorization server', async () => {
    const bare = await fetch(`${url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bare.status, 401);
    assert.equal(bare.headers.get('www-authenticate'), `Bearer resource_metadata="${url}/.well-known/oauth-protected-resource"`);
    const forged = await fetch(`${url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${await makeToken({ sub: 'alice' }, { secret: 'another-secret-of-at-least-32-bytes' })}` }, body: '{}' });
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="invalid token: the token signature is not valid"/);
    const metadata = (await (await fetch(`${url}/.well-known/oauth-protected-resource`)).json()) as Record<string, unknown>;
    assert.equal(metadata.resource, `${url}/mcp`);
    assert.deepEqual(metadata.authorization_servers, [ISSUER]);
    assert.deepEqual(metadata.bearer_methods_supported, ['header']);
  });

  for (const kind of MCP_CLIENTS) {
    it(`${kind}: list -> write -> read of the user's workspace, in the era it negotiated`, async () => {
      await listWriteRead(kind, url, await token(`lwr-${mcpClientSlug(kind)}`), () => [url], connectV1, await operatorHeaders());
    });
  }

  it('lists the sandbox image\'s tools unchanged, without taking a sandbox', async () => {
    const before = await activeSandboxes(url);
    const { client } = await mcpClient(url, await token('lister'));
    clients.push(client);
    const listed = (await client.listTools()).tools;
    // The image itself, asked directly over stdio.
    const direct = new V1Client({ name: 'direct', version: '1' });
    await direct.connect(new StdioClientTransport({ command: 'docker', args: ['run', '-i', '--rm', '--network', 'none', 'sandpool-sandbox:latest'] }));
    const fromImage = (await direct.listTools()).tools;
    await direct.close();
    const shape = (tools: ReadonlyArray<{ name: string; inputSchema: unknown; annotations?: unknown }>): unknown => tools.map((t) => ({ name: t.name, inputSchema: t.inputSchema, annotations: t.annotations }));
    assert.deepEqual(shape(listed), shape(fromImage));
    assert.equal(await activeSandboxes(url), before, 'no sandbox taken by initialize or tools/list');
  });

  it('writes then reads in the user\'s own sandbox; another user cannot read it, nor use the session, in either era', async () => {
    const alice = await mcpClient(url, await token('alice'));
    clients.push(alice.client);
    await alice.client.callTool({ name: 'write_file', arguments: { path: '/workspace/secret.txt', content: 'alice only' } });
    assert.equal(text(await alice.client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/secret.txt' } })), 'alice only');

    const bob = await mcpClient(url, await token('bob'));
    clients.push(bob.client);
    const bobs = (await bob.client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/secret.txt' } })) as CallToolResult;
    assert.equal(bobs.isError, true, 'bob has his own, empty sandbox');
    assert.doesNotMatch(text(bobs), /alice only/);
    // 2026-07-28 has no session to steal: the token alone says whose sandbox.
    const modernBob = await connectMcpClient('v2 client offering 2026-07-28 first', url, await token('bob'), { v1: connectV1 });
    clients.push(modernBob);
    assert.equal(modernBob.negotiated, '2026-07-28');
    const again = await modernBob.callTool('read_text_file', { path: '/workspace/secret.txt' });
    assert.equal(again.isError, true);
    assert.doesNotMatch(text(again), /alice only/);

    // Alice's session id with Bob's token: as unknown as a made-up one.
    const stolen = await fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('bob')}`, 'mcp-session-id': alice.transport.sessionId ?? '', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_text_file', arguments: { path: '/workspace/secret.txt' } } }),
    });
    assert.equal(stolen.status, 404);
    assert.doesNotMatch(await stolen.text(), /alice only/);
  });

  it('refuses 2026-07-28 requests whose headers disagree with the body (400, -32020), of an unknown version (-32022), or with a forged request state', async () => {
    const meta = (version: string): Record<string, unknown> => ({ 'io.modelcontextprotocol/protocolVersion': version, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} });
    const post = async (headers: Record<string, string>, params: Record<string, unknown>, version = '2026-07-28'): Promise<{ status: number; error?: { code: number; message: string } }> => {
      const res = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token('carla')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': version, 'mcp-method': 'tools/call', 'mcp-name': 'list_directory', ...headers },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'list_directory', arguments: { path: '/workspace' }, ...params, _meta: meta(version) } }),
      });
      return { status: res.status, ...((await res.json()) as { error?: { code: number; message: string } }) };
    };
    const fine = await post({}, {});
    assert.equal(fine.status, 200, JSON.stringify(fine));
    assert.equal(fine.error, undefined);
    const mismatches: Array<Record<string, string>> = [{ 'mcp-name': 'write_file' }, { 'mcp-method': 'tools/list' }, { 'mcp-protocol-version': '2025-11-25' }];
    for (const mismatch of mismatches) {
      const refused = await post(mismatch, {});
      assert.equal(refused.status, 400, JSON.stringify(mismatch));
      assert.equal(refused.error?.code, -32020, JSON.stringify(mismatch));
    }
    const unknown = await post({}, {}, '2031-01-01');
    assert.equal(unknown.status, 400);
    assert.equal(unknown.error?.code, -32022);
    const forged = await post({}, { requestState: 'v1.eyJwIjp7InVzZXIiOiJjYXJsYSJ9fQ.AAAA' });
    assert.equal(forged.error?.code, -32602);
    assert.match(forged.error?.message ?? '', /Invalid or expired requestState/);
  });

  it('shares one workspace with the user\'s chat, both ways, in 2025-11-25 and in 2026-07-28', async () => {
    const socket = await connectUser(url, { token: await token('carol') }, { uid: 'carol' });
    sockets.push(socket);
    const carol = await mcpClient(url, await token('carol'));
    clients.push(carol.client);
    await carol.client.callTool({ name: 'write_file', arguments: { path: '/workspace/from-mcp.txt', content: 'written over MCP' } });
    assert.deepEqual(await chat(socket, 'read /workspace/from-mcp.txt'), ['written over MCP']);
    const modern = await connectMcpClient('v2 client offering 2026-07-28 first', url, await token('carol'), { v1: connectV1 });
    clients.push(modern);
    assert.equal(modern.negotiated, '2026-07-28');
    await modern.callTool('write_file', { path: '/workspace/from-2026.txt', content: 'written over MCP 2026-07-28' });
    assert.deepEqual(await chat(socket, 'read /workspace/from-2026.txt'), ['written over MCP 2026-07-28']);
    await chat(socket, 'write "written in chat" to /workspace/from-chat.txt');
    assert.equal(text(await carol.client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/from-chat.txt' } })), 'written in chat');
    assert.equal(text(await modern.callTool('read_text_file', { path: '/workspace/from-chat.txt' })), 'written in chat');
  });

  it('counts MCP calls of both eras against MAX_REQUESTS_PER_USER together with chat: a refused call is a JSON-RPC error with data.code', async () => {
    const socket = await connectUser(url, { token: await token('dave') }, { uid: 'dave' });
    sockets.push(socket);
    const pending: Array<{ callId: string }> = [];
    for (let i = 0; i < 3; i++) {
      const ack = await emitAck(socket, 'message', `write "x${i}" to /workspace/wait${i}.txt`);
      assert.equal(ack.ok, true);
      pending.push(await nextEvent(socket, 'tool:request', (p) => p.requestId === ack.requestId));
    }
    const dave = await mcpClient(url, await token('dave'));
    clients.push(dave.client);
    const refused = await refusal(dave.client.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }));
    assert.equal(refused.code, -32000);
    assert.equal(refused.data.code, 'TOO_MANY_REQUESTS');
    assert.match(refused.message, /chat and MCP together/);
    const modern = await connectMcpClient('v2 client offering 2026-07-28 first', url, await token('dave'), { v1: connectV1 });
    clients.push(modern);
    const refusedModern = await refusal(modern.callTool('list_directory', { path: '/workspace' }));
    assert.equal(refusedModern.code, -32000);
    assert.equal(refusedModern.data.code, 'TOO_MANY_REQUESTS');
    for (const p of pending) await emitAck(socket, 'tool:approval', { callId: p.callId, approved: false });
    await waitFor('a slot to free', async () => (await dave.client.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }).then(() => true, () => false)), 10_000, 200);
  });

  // Twin in the fast tier: mcp-gateway "answers malformed JSON ...". Here: through the HTTP server and body limit of a running replica.
  it('answers bad input clearly: malformed JSON (400, parse error), an oversized body (413), an unknown tool (JSON-RPC error)', async () => {
    const headers = { authorization: `Bearer ${await token('erin')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const malformed = await fetch(`${url}/mcp`, { method: 'POST', headers, body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: { code: number } }).error.code, -32700);
    const huge = await fetch(`${url}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'write_file', arguments: { path: '/workspace/big', content: 'x'.repeat(70_000) } } }) });
    assert.equal(huge.status, 413);
    assert.equal(((await huge.json()) as { error: { data: { code: string } } }).error.data.code, 'PAYLOAD_TOO_LARGE');
    const erin = await mcpClient(url, await token('erin'));
    clients.push(erin.client);
    const unknown = await refusal(erin.client.callTool({ name: 'rm_rf', arguments: {} }));
    assert.equal(unknown.code, -32602);
    assert.match(unknown.message, /unknown tool "rm_rf"; the tools are: .*read_text_file/);
  });

  it('serves a 2025-era client without a session (stateless): the token, not a session, says whose sandbox', async () => {
    const headers = { authorization: `Bearer ${await token('frank')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const call = async (id: number, name: string, args: Record<string, unknown>): Promise<{ result?: CallToolResult }> =>
      (await (await fetch(`${url}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }) })).json()) as { result?: CallToolResult };
    await call(1, 'write_file', { path: '/workspace/stateless.txt', content: 'no session needed' });
    assert.equal(text((await call(2, 'read_text_file', { path: '/workspace/stateless.txt' })).result), 'no session needed');
  });

  it('DELETE ends the session and releases the sandbox when no chat session holds it; /metrics counts sessions, eras and calls by tool', async () => {
    const gina = await mcpClient(url, await token('gina'));
    await gina.client.callTool({ name: 'write_file', arguments: { path: '/workspace/g.txt', content: 'g' } });
    const active = (): Promise<number> => activeSandboxes(url);
    const held = await active();
    const metrics = await (await fetch(`${url}/metrics`, { headers: await operatorHeaders() })).text();
    assert.match(metrics, /sandpool_mcp_sessions\{[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_mcp_requests_total\{[^}]*era="legacy"[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_mcp_requests_total\{[^}]*era="modern"[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_mcp_calls_total\{[^}]*tool="write_file"[^}]*outcome="ok"[^}]*\} [1-9]/);
    assert.match(metrics, /sandpool_mcp_call_seconds_count\{[^}]*tool="read_text_file"/);
    await gina.transport.terminateSession();
    await gina.client.close();
    await waitFor('gina\'s sandbox released', async () => (await active()) === held - 1, 10_000, 200);
  });
});
