/**
 * The MCP clients the gateway is tested with, behind one shape: the v1 SDK
 * client (1.32.2, 2025-11-25 only), the v2 client with its defaults
 * (2025-11-25), the v2 client offering 2026-07-28 first, and the MCP
 * Inspector's CLI (which needs Node >= 22.19: the images' pinned Node), with
 * its default era (legacy) and with --protocol-era auto. The v1 client comes
 * from the test that uses it (`v1`): nothing of sandpool's own, its test
 * support included, imports the v1 SDK.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, SUPPORTED_PROTOCOL_VERSIONS, StreamableHTTPClientTransport, type FetchLike } from '@modelcontextprotocol/client';
import { pinnedNodeBinary } from '../../scripts/lib/node-binary.js';
import type { CallToolResult, Tool } from '../../src/protocol/mcp-types.js';

const run = promisify(execFile);

export const MCP_CLIENTS = ['v1 SDK client 1.32.2', 'v2 client, default versions', 'v2 client offering 2026-07-28 first', 'MCP Inspector CLI', 'MCP Inspector CLI, --protocol-era auto'] as const;
export type McpClientKind = (typeof MCP_CLIENTS)[number];

/** The era each client should end up in against a gateway serving both. */
export const EXPECTED_ERA: Record<McpClientKind, 'legacy' | 'modern'> = {
  'v1 SDK client 1.32.2': 'legacy',
  'v2 client, default versions': 'legacy',
  'v2 client offering 2026-07-28 first': 'modern',
  'MCP Inspector CLI': 'legacy',
  'MCP Inspector CLI, --protocol-era auto': 'modern',
};

export interface McpClientUnderTest {
  readonly kind: McpClientKind;
  /** The protocol version the client says it negotiated; undefined for the Inspector's CLI, which does not say (a run is one connection). */
  readonly negotiated: string | undefined;
  listTools(): Promise<Tool[]>;
  callTool(name: string, args: Record<string, unknown>): Promise<CallToolResult>;
  close(): Promise<void>;
}

/** How a test connects the v1 SDK client (it imports the v1 SDK; this module does not). */
export type ConnectV1 = (url: URL, headers: Record<string, string>) => Promise<McpClientUnderTest>;

/** Connects a client of that kind to `${base}/mcp` with a bearer token. */
export async function connectMcpClient(kind: McpClientKind, base: string, token: string, options: { v1: ConnectV1; fetch?: FetchLike }): Promise<McpClientUnderTest> {
  const url = new URL(`${base}/mcp`);
  const headers = { Authorization: `Bearer ${token}` };
  switch (kind) {
    case 'v1 SDK client 1.32.2':
      return options.v1(url, headers);
    case 'v2 client, default versions':
    case 'v2 client offering 2026-07-28 first': {
      const modern = kind === 'v2 client offering 2026-07-28 first';
      const client = new Client(
        { name: 'sandpool-test-v2', version: '1.0.0' },
        // 'auto': server/discover first, offering 2026-07-28 before the 2025 versions; initialize if the server speaks only those.
        modern ? { versionNegotiation: { mode: 'auto' }, supportedProtocolVersions: ['2026-07-28', ...SUPPORTED_PROTOCOL_VERSIONS] } : {},
      );
      const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers }, ...(options.fetch ? { fetch: options.fetch } : {}) });
      await client.connect(transport);
      return {
        kind,
        negotiated: client.getNegotiatedProtocolVersion(),
        listTools: async () => (await client.listTools(undefined, { cacheMode: 'bypass' })).tools,
        callTool: async (name, args) => (await client.callTool({ name, arguments: args })) as CallToolResult,
        close: async () => {
          if (transport.sessionId) await transport.terminateSession().catch(() => undefined);
          await client.close();
        },
      };
    }
    case 'MCP Inspector CLI':
    case 'MCP Inspector CLI, --protocol-era auto': {
      const node = await pinnedNodeBinary();
      const inspector = path.resolve('node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js');
      const era = kind === 'MCP Inspector CLI' ? [] : ['--protocol-era', 'auto'];
      const cli = async (...args: string[]): Promise<unknown> =>
        JSON.parse((await run(node, [inspector, '--cli', url.href, '--transport', 'http', '--header', `Authorization: Bearer ${token}`, ...era, ...args], { timeout: 60_000 })).stdout) as unknown;
      return {
        kind,
        negotiated: undefined,
        listTools: async () => ((await cli('--method', 'tools/list')) as { tools: Tool[] }).tools,
        callTool: async (name, args) => (await cli('--method', 'tools/call', '--tool-name', name, '--tool-arg', ...Object.entries(args).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`))) as CallToolResult,
        close: async () => undefined,
      };
    }
  }
}

/** A file name from a client kind. */
export const mcpClientSlug = (kind: McpClientKind): string => kind.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** POST /mcp served so far by protocol era, over these replicas (sandpool_mcp_requests_total; operator headers where the replicas need them). */
export async function eraCounts(urls: readonly string[], headers: Record<string, string> = {}): Promise<{ legacy: number; modern: number }> {
  const counts = { legacy: 0, modern: 0 };
  for (const url of urls) {
    const metrics = await (await fetch(`${url}/metrics`, { headers })).text();
    for (const era of ['legacy', 'modern'] as const) counts[era] += Number(new RegExp(`^sandpool_mcp_requests_total\\{[^}]*era="${era}"[^}]*\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
  }
  return counts;
}

/**
 * One client of that kind completes list -> write -> read of its user's
 * workspace, and was served in the era it should have negotiated: what it
 * says it negotiated, and what the replicas counted (the Inspector's CLI
 * says nothing). Nothing else may use /mcp of these replicas meanwhile.
 */
export async function listWriteRead(kind: McpClientKind, base: string, token: string, replicas: () => readonly string[], v1: ConnectV1, metricsHeaders?: Record<string, string>): Promise<void> {
  const before = await eraCounts(replicas(), metricsHeaders);
  const client = await connectMcpClient(kind, base, token, { v1 });
  const textOf = (r: CallToolResult): string => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
  try {
    if (client.negotiated !== undefined) assert.equal(client.negotiated, EXPECTED_ERA[kind] === 'modern' ? '2026-07-28' : '2025-11-25');
    const names = (await client.listTools()).map((t) => t.name);
    assert.ok(names.includes('read_text_file') && names.includes('write_file'), names.join(', '));
    const file = `/workspace/${mcpClientSlug(kind)}.txt`;
    const wrote = await client.callTool('write_file', { path: file, content: `written by ${kind}` });
    assert.notEqual(wrote.isError, true, textOf(wrote));
    assert.equal(textOf(await client.callTool('read_text_file', { path: file })), `written by ${kind}`);
  } finally {
    await client.close();
  }
  const after = await eraCounts(replicas(), metricsHeaders);
  const era = EXPECTED_ERA[kind];
  const other = era === 'modern' ? 'legacy' : 'modern';
  assert.ok(after[era] >= before[era] + 3, `${kind}: ${era} requests served ${before[era]} -> ${after[era]}`);
  assert.equal(after[other], before[other], `${kind}: no ${other} request`);
}
