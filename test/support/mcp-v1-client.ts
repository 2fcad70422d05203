/**
 * The v1 MCP SDK client (`@modelcontextprotocol/sdk` 1.32.2, 2025-11-25 only)
 * over Streamable HTTP: one of the clients under test at /mcp, on one replica
 * (mcp-gateway.test.ts) and through nginx (mcp-gateway-nginx.test.ts).
 */
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Tool } from '../../src/protocol/mcp-types.js';
import type { ConnectV1 } from './mcp-clients.js';

/** The v1 client as test/support/mcp-clients.ts drives every client kind. */
export const connectV1: ConnectV1 = async (url, headers) => {
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  const client = new V1Client({ name: 'sandpool-test-v1', version: '1.0.0' });
  await client.connect(transport);
  return {
    kind: 'v1 SDK client 1.32.2',
    negotiated: transport.protocolVersion,
    listTools: async () => (await client.listTools()).tools as Tool[],
    callTool: async (name, args) => (await client.callTool({ name, arguments: args })) as CallToolResult,
    close: async () => {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    },
  };
};

/** A v1 client of `${base}/mcp` with a bearer token, and its transport (for session tests). */
export async function mcpClient(base: string, token: string): Promise<{ client: V1Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new V1Client({ name: 'sandpool-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}
