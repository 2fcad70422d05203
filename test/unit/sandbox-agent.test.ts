import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { spawn } from 'node:child_process';
import { z } from 'zod';
import { StreamTransport } from '../../src/mcp/stream-transport.js';
import { WorkspaceRestoreError, workspaceChannelOf } from '../../src/mcp/workspace-channel.js';

const AGENT = path.resolve('dist/pool/agent/main.mjs');
const clients: Client[] = [];

/** The agent as the sandbox runs it (a real process on stdio), rooted at a fresh directory. */
async function agent(): Promise<{ client: Client; root: string }> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sandpool-agent-'));
  const client = new Client({ name: 'sandpool', version: '1' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [AGENT, root], stderr: 'ignore' }));
  clients.push(client);
  return { client, root };
}

const Snapshot = z.object({ files: z.number(), sizeBytes: z.number(), archiveBytes: z.number(), chunks: z.number(), token: z.string(), data: z.string() }).passthrough();
const Chunk = z.object({ data: z.string() }).passthrough();
const Restored = z.object({ files: z.number(), sizeBytes: z.number() }).passthrough();
const Any = z.object({}).passthrough();

/**
 * The client as a replica sees an agent that offers the workspace channel
 * without raw restores (an image built before them): everything else is the
 * real client's.
 */
function withoutRawRestore(client: Client): Client {
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'getServerCapabilities') {
        return () => {
          const caps = target.getServerCapabilities();
          return { ...caps, experimental: { ...caps?.experimental, 'sandpool/workspace': { version: 1 } } };
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The agent as a replica talks to it: its own StreamTransport on the process's stdio, and the workspace channel on top. */
async function agentAsReplica(offer: { raw: boolean } = { raw: true }): Promise<{ client: Client; root: string; channel: NonNullable<ReturnType<typeof workspaceChannelOf>> }> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sandpool-agent-'));
  const child = spawn(process.execPath, [AGENT, root], { stdio: ['pipe', 'pipe', 'ignore'] });
  const transport = new StreamTransport(child.stdout, child.stdin);
  const client = new Client({ name: 'sandpool', version: '1' });
  await client.connect(transport);
  clients.push(client);
  const channel = workspaceChannelOf(offer.raw ? client : withoutRawRestore(client), transport, (detail) => assert.fail(`the real agent overran the snapshot bounds: ${detail}`));
  assert.ok(channel, 'the agent offers the workspace channel');
  client.onclose = () => child.kill();
  return { client, root, channel };
}

async function snapshotOf(client: Client, maxBytes: number, chunkBytes = 4 * 1024 * 1024): Promise<{ archive: string; meta: z.infer<typeof Snapshot> }> {
  const meta = await client.request({ method: 'sandpool/workspace/snapshot', params: { maxBytes, chunkBytes } }, Snapshot);
  const parts = [meta.data];
  for (let i = 1; i < meta.chunks; i++) parts.push((await client.request({ method: 'sandpool/workspace/snapshot-chunk', params: { token: meta.token, index: i } }, Chunk)).data);
  return { archive: parts.join(''), meta };
}

async function restore(client: Client, archive: string, maxBytes: number, chunkChars = 4 * 1024 * 1024): Promise<z.infer<typeof Restored>> {
  let index = 0;
  for (let i = 0; i + chunkChars < archive.length; i += chunkChars) {
    await client.request({ method: 'sandpool/workspace/restore', params: { data: archive.slice(i, i + chunkChars), more: true, index: index++ } }, Any);
  }
  const last = archive.slice(Math.floor(Math.max(0, archive.length - 1) / chunkChars) * chunkChars);
  return client.request({ method: 'sandpool/workspace/restore', params: { data: last, more: false, maxBytes, index } }, Restored);
}

after(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
});

describe('the sandbox agent: the official server, plus workspace snapshots in band', () => {
  it('is the official server to any MCP client (its tools, unchanged), and says it can snapshot', async () => {
    const { client } = await agent();
    assert.deepEqual(client.getServerCapabilities()?.experimental?.['sandpool/workspace'], { version: 1, raw: true });
    assert.equal(client.getServerVersion()?.name, 'secure-filesystem-server');
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('read_text_file') && names.includes('write_file'));
  });

  it('answers a v2 client that probes for 2026-07-28 first (server/discover) with the 2025 handshake, the snapshot capability included', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'sandpool-agent-'));
    const child = spawn(process.execPath, [AGENT, root], { stdio: ['pipe', 'pipe', 'ignore'] });
    // The replica's own transport: the probe runs in place, on the sandbox's one stdio.
    const client = new Client({ name: 'sandpool', version: '1' }, { versionNegotiation: { mode: 'auto' } });
    await client.connect(new StreamTransport(child.stdout, child.stdin));
    clients.push(client);
    client.onclose = () => child.kill();
    assert.equal(client.getProtocolEra(), 'legacy', 'the filesystem server speaks 2025-11-25 only');
    assert.equal(client.getNegotiatedProtocolVersion(), '2025-11-25');
    assert.deepEqual(client.getServerCapabilities()?.experimental?.['sandpool/workspace'], { version: 1, raw: true });
    const listed = await client.callTool({ name: 'list_directory', arguments: { path: root } });
    assert.notEqual(listed.isError, true, JSON.stringify(listed.content));
  });

  it('snapshots a workspace written through the tools and restores it into another sandbox', async () => {
    const a = await agent();
    const wrote = await a.client.callTool({ name: 'write_file', arguments: { path: path.join(a.root, 'todo.txt'), content: 'restore me' } });
    assert.notEqual(wrote.isError, true, JSON.stringify(wrote.content));
    writeFileSync(path.join(a.root, 'blob.bin'), randomBytes(10_000));
    const { archive, meta } = await snapshotOf(a.client, 1024 * 1024);
    assert.equal(meta.files, 2);
    assert.equal(meta.sizeBytes, 10_000 + 'restore me'.length);
    const b = await agent();
    assert.deepEqual(await restore(b.client, archive, 1024 * 1024), { files: 2, sizeBytes: meta.sizeBytes });
    const read = await b.client.callTool({ name: 'read_text_file', arguments: { path: path.join(b.root, 'todo.txt') } });
    assert.match(JSON.stringify(read.content), /restore me/);
    assert.ok(readFileSync(path.join(b.root, 'blob.bin')).equals(readFileSync(path.join(a.root, 'blob.bin'))));
  });

  it('moves a workspace bigger than one message in chunks, both ways', async () => {
    const a = await agent();
    writeFileSync(path.join(a.root, 'big.bin'), randomBytes(3 * 1024 * 1024));
    const { archive, meta } = await snapshotOf(a.client, 8 * 1024 * 1024, 1024 * 1024);
    assert.ok(meta.chunks >= 4, `chunks: ${meta.chunks}`);
    const b = await agent();
    await restore(b.client, archive, 8 * 1024 * 1024, 1024 * 1024);
    assert.ok(readFileSync(path.join(b.root, 'big.bin')).equals(readFileSync(path.join(a.root, 'big.bin'))));
  });

  it('restores from chunks cut anywhere in the base64 (not at multiples of 4), and an abandoned restore does not spoil the next one', async () => {
    const a = await agent();
    writeFileSync(path.join(a.root, 'odd.bin'), randomBytes(2 * 1024 * 1024 + 3));
    const { archive } = await snapshotOf(a.client, 8 * 1024 * 1024);
    const b = await agent();
    // Abandoned after its first chunk (a timeout on sandpool's side, say).
    await b.client.request({ method: 'sandpool/workspace/restore', params: { data: archive.slice(0, 1001), more: true, index: 0 } }, Any);
    assert.deepEqual(await restore(b.client, archive, 8 * 1024 * 1024, 333_333), { files: 1, sizeBytes: 2 * 1024 * 1024 + 3 });
    assert.ok(readFileSync(path.join(b.root, 'odd.bin')).equals(readFileSync(path.join(a.root, 'odd.bin'))));
  });

  it('restores raw bytes after one request line (no base64), newlines and all, and keeps serving MCP on the same stream after them', async () => {
    const a = await agentAsReplica();
    // Random bytes hold newlines and invalid UTF-8: a line splitter in the way would break them.
    writeFileSync(path.join(a.root, 'noise.bin'), randomBytes(3 * 1024 * 1024));
    writeFileSync(path.join(a.root, 'note.txt'), 'raw');
    const snap = await a.channel.snapshot(8 * 1024 * 1024, 30_000);
    assert.ok('archive' in snap);
    const b = await agentAsReplica();
    assert.deepEqual(await b.channel.restore(snap.archive, 8 * 1024 * 1024, 30_000), { files: 2, sizeBytes: 3 * 1024 * 1024 + 3 });
    assert.ok(readFileSync(path.join(b.root, 'noise.bin')).equals(readFileSync(path.join(a.root, 'noise.bin'))));
    const read = await b.client.callTool({ name: 'read_text_file', arguments: { path: path.join(b.root, 'note.txt') } });
    assert.match(JSON.stringify(read.content), /raw/);
    await assert.rejects(b.channel.restore(Buffer.from('not an archive\n\n'), 1024, 30_000), WorkspaceRestoreError);
    assert.ok((await b.client.listTools()).tools.length > 0, 'still serving after a refused raw restore');
  });

  it('restores in base64 chunks where the agent offers no raw restore, and says a damaged archive is one', async () => {
    const a = await agentAsReplica();
    // Incompressible and over 3 MiB: more than one 4 MiB chunk of base64.
    writeFileSync(path.join(a.root, 'big.bin'), randomBytes(5 * 1024 * 1024));
    const snap = await a.channel.snapshot(8 * 1024 * 1024, 30_000);
    assert.ok('archive' in snap);
    assert.ok(snap.archive.length > 3 * 1024 * 1024, `archive: ${snap.archive.length} bytes`);
    const b = await agentAsReplica({ raw: false });
    assert.deepEqual(await b.channel.restore(snap.archive, 8 * 1024 * 1024, 30_000), { files: 1, sizeBytes: 5 * 1024 * 1024 });
    assert.ok(readFileSync(path.join(b.root, 'big.bin')).equals(readFileSync(path.join(a.root, 'big.bin'))));
    await assert.rejects(b.channel.restore(Buffer.from('not an archive'), 1024, 30_000), WorkspaceRestoreError);
    assert.ok((await b.client.listTools()).tools.length > 0, 'still serving after a refused restore');
  });

  it('refuses a snapshot over the limit with the sizes, and a damaged archive on restore, leaving the sandbox serving', async () => {
    const a = await agent();
    writeFileSync(path.join(a.root, 'f'), randomBytes(5000));
    await assert.rejects(a.client.request({ method: 'sandpool/workspace/snapshot', params: { maxBytes: 1000 } }, Snapshot), (err: { code?: number; data?: { sizeBytes?: number } }) => err.code === -32010 && err.data?.sizeBytes === 5000);
    await assert.rejects(a.client.request({ method: 'sandpool/workspace/restore', params: { data: Buffer.from('garbage').toString('base64'), more: false, maxBytes: 1000 } }, Restored), (err: { code?: number }) => err.code === -32011);
    assert.ok((await a.client.listTools()).tools.length > 0, 'still serving');
  });
});
