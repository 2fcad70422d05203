import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { DirectToolCalls } from '../chat/direct-tool-calls.js';
import { toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ToolPolicy } from './tool-policy.js';

/** JSON-RPC code for sandpool's own refusals and failures; `data.code` says which (the protocol's codes). */
export const SANDPOOL_JSONRPC_ERROR = -32000;

/**
 * A JSON-RPC error as the SDK's server sends it (its `code`, `message` and
 * `data`). Not the SDK's McpError: that one prefixes its message with
 * "MCP error <code>:", which the client's McpError then prefixes again.
 */
class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message);
  }
}

/** What answering one user's MCP requests needs. */
export interface UserMcpServerDeps {
  /** The sandbox image's tools, as its MCP server lists them (the pool's cached catalogue). */
  tools(): Promise<readonly Tool[]>;
  policy: ToolPolicy;
  calls: DirectToolCalls;
  logger: Logger;
  /** Hooks for metrics: `tool` is one of the image's names, or "(unknown)" (clients may send any name). */
  observe(tool: string, ms: number, outcome: 'ok' | 'tool-error' | 'refused' | 'failed'): void;
}

/**
 * An MCP server for one user whose tools are the sandbox image's, unchanged.
 * It answers initialize and tools/list itself, from the catalogue: no sandbox
 * is taken before the first tools/call, which runs in the user's own sandbox.
 * It never asks the client for roots and passes nothing of the client's on:
 * toward the sandbox, sandpool is the only MCP client, with its own ids.
 */
export function createUserMcpServer(userId: string, deps: UserMcpServerDeps): Server {
  const log = deps.logger.child({ component: 'McpGateway', user: userId });
  const server = new Server({ name: 'sandpool', version: '0.1.0' }, { capabilities: { tools: {} } });
  const allowed = async (): Promise<Tool[]> => (await deps.tools()).filter((t) => deps.policy.allows(t));

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await allowed() }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { name } = request.params;
    const started = performance.now();
    const all = await deps.tools();
    const tool = all.find((t) => t.name === name);
    if (!tool || !deps.policy.allows(tool)) {
      deps.observe(tool ? name : '(unknown)', performance.now() - started, 'refused');
      const listed = (await allowed()).map((t) => t.name).join(', ');
      const why = tool ? `tool ${JSON.stringify(name)} is not available to MCP clients on this server (MCP_TOOLS=${deps.policy.describe})` : `unknown tool ${JSON.stringify(name)}`;
      throw new JsonRpcError(ErrorCode.InvalidParams, `${why}; the tools are: ${listed}`, { code: tool ? 'UNAUTHORIZED' : 'BAD_REQUEST' });
    }
    try {
      const plan = extra.authInfo?.extra?.plan;
      const result = await deps.calls.call(userId, name, request.params.arguments ?? {}, typeof plan === 'string' ? plan : undefined);
      deps.observe(name, performance.now() - started, result.isError ? 'tool-error' : 'ok');
      return result;
    } catch (err) {
      const body = toClientError(err, log);
      deps.observe(name, performance.now() - started, body.code === 'TOO_MANY_REQUESTS' || body.code === 'QUOTA_EXCEEDED' ? 'refused' : 'failed');
      throw new JsonRpcError(SANDPOOL_JSONRPC_ERROR, body.message, body);
    }
  });
  return server;
}
