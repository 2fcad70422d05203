import { ProtocolErrorCode, Server, type ServerContext } from '@modelcontextprotocol/server';
import type { DirectToolCalls } from '../chat/direct-tool-calls.js';
import { toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CallToolResult, Tool } from '../protocol/mcp-types.js';
import type { ToolNotice } from '../protocol/events.js';
import type { ToolPolicy } from './tool-policy.js';

/** JSON-RPC code for sandpool's own refusals and failures; `data.code` says which (the protocol's codes). */
export const SANDPOOL_JSONRPC_ERROR = -32000;

/** The name and version /mcp gives of itself (initialize, server/discover, every 2026-07-28 result's `_meta`). */
export const GATEWAY_INFO = { name: 'sandpool', version: '0.1.0' } as const;

/**
 * A JSON-RPC error as the SDK's server sends it (its `code`, `message` and
 * `data`, verbatim). Not the SDK's ProtocolError subclasses: sandpool's
 * refusals carry their own `data` (the protocol's error body).
 */
export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message);
  }
}

/** What answering one user's MCP requests needs. */
export interface McpToolsDeps {
  /** The sandbox image's tools, as its MCP server lists them (the pool's cached catalogue). */
  tools(): Promise<readonly Tool[]>;
  policy: ToolPolicy;
  calls: DirectToolCalls;
  logger: Logger;
  /** Hooks for metrics: `tool` is one of the image's names, or "(unknown)" (clients may send any name). */
  observe(tool: string, ms: number, outcome: 'ok' | 'tool-error' | 'refused' | 'failed'): void;
}

/** tools/list and tools/call as /mcp answers them, in either protocol era, whoever serves the request (the SDK, or the held call's fast path). */
export interface McpTools {
  /** The image's tools the policy lets MCP clients see. */
  list(): Promise<Tool[]>;
  /** Runs the call in the user's own sandbox. Throws a JsonRpcError for a refusal (unknown tool, policy, in-flight limit) or a failure. */
  call(userId: string, name: string, args: Record<string, unknown>, onNotice?: (notice: ToolNotice) => void): Promise<CallToolResult>;
}

export function createMcpTools(deps: McpToolsDeps): McpTools {
  const log = deps.logger.child({ component: 'McpGateway' });
  const list = async (): Promise<Tool[]> => (await deps.tools()).filter((t) => deps.policy.allows(t));
  return {
    list,
    async call(userId, name, args, onNotice) {
      const started = performance.now();
      const tool = (await deps.tools()).find((t) => t.name === name);
      if (!tool || !deps.policy.allows(tool)) {
        deps.observe(tool ? name : '(unknown)', performance.now() - started, 'refused');
        const listed = (await list()).map((t) => t.name).join(', ');
        const why = tool ? `tool ${JSON.stringify(name)} is not available to MCP clients on this server (MCP_TOOLS=${deps.policy.describe})` : `unknown tool ${JSON.stringify(name)}`;
        throw new JsonRpcError(ProtocolErrorCode.InvalidParams, `${why}; the tools are: ${listed}`, { code: tool ? 'UNAUTHORIZED' : 'BAD_REQUEST' });
      }
      try {
        const result = await deps.calls.call(userId, name, args, onNotice ? { onNotice } : {});
        deps.observe(name, performance.now() - started, result.isError ? 'tool-error' : 'ok');
        return result;
      } catch (err) {
        const body = toClientError(err, log.child({ user: userId }));
        deps.observe(name, performance.now() - started, body.code === 'TOO_MANY_REQUESTS' ? 'refused' : 'failed');
        throw new JsonRpcError(SANDPOOL_JSONRPC_ERROR, body.message, body);
      }
    },
  };
}

/**
 * What the sandbox says while a call runs, passed on to the MCP client that
 * made the call, on the call's own stream: progress only when the client
 * asked for it (a progress token), log messages as the SDK's level rules
 * allow (the session's logging/setLevel in 2025-11-25; in 2026-07-28 only
 * when the request names a log level in its `_meta`). `sent()` resolves once
 * every notification passed on so far is on the stream: the result must not
 * overtake them (it ends the stream).
 *
 * A stdio log message is not tied to a request: the sandbox hands it to every
 * call in flight there. `loggedAlready` is this server's record of the
 * messages it passed on: a 2025-11-25 session's server serves all the
 * session's calls, and one message must reach its client once, not once per
 * call in flight (seen: a held read and the write that released it each
 * passed on the read's log message).
 */
function relayTo(ctx: ServerContext, log: Logger, loggedAlready: WeakSet<ToolNotice>): { onNotice: (notice: ToolNotice) => void; sent(): Promise<void> } {
  const token = ctx.mcpReq._meta?.progressToken;
  const sending = new Set<Promise<void>>();
  const send = (work: Promise<void>): void => {
    const sent = work.catch((err: unknown) => log.debug({ err: String(err) }, 'could not pass a notification on (the client went away)'));
    sending.add(sent);
    void sent.finally(() => sending.delete(sent));
  };
  return {
    onNotice(notice) {
      if (notice.kind === 'log') {
        if (loggedAlready.has(notice)) return;
        loggedAlready.add(notice);
        return send(ctx.mcpReq.log(notice.level, notice.data, notice.logger));
      }
      if (token === undefined) return;
      const { kind: _kind, ...progress } = notice;
      send(ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, ...progress } }));
    },
    sent: async () => void (await Promise.all(sending)),
  };
}

/**
 * An MCP server (the SDK's) for one user whose tools are the sandbox image's,
 * unchanged, for either protocol era: a 2025-11-25 session's, or one
 * 2026-07-28 request's (the SDK's entry makes one per request). It answers
 * initialize, server/discover and tools/list itself, from the catalogue: no
 * sandbox is taken before the first tools/call, which runs in the user's own
 * sandbox. It never asks the client for anything and passes nothing of the
 * client's on: toward the sandbox, sandpool is the only MCP client, with its
 * own ids.
 */
export function createUserMcpServer(
  userId: string,
  deps: {
    tools: McpTools;
    logger: Logger;
    /**
     * Checks a `requestState` a 2026-07-28 client echoes back (throws to refuse
     * it). sandpool mints none, so every one is refused: see createRequestStateCheck.
     */
    verifyRequestState(state: string, ctx: ServerContext): Promise<unknown>;
  },
): Server {
  const server = new Server(GATEWAY_INFO, {
    // logging: the sandbox's log messages during a call are passed on.
    capabilities: { tools: {}, logging: {} },
    requestState: { verify: deps.verifyRequestState },
  });
  server.setRequestHandler('tools/list', async () => ({ tools: await deps.tools.list() }));
  /** The sandbox's log messages this server passed on (see relayTo). */
  const loggedAlready = new WeakSet<ToolNotice>();
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const relay = relayTo(ctx, deps.logger, loggedAlready);
    try {
      return await deps.tools.call(userId, request.params.name, request.params.arguments ?? {}, relay.onNotice);
    } finally {
      await relay.sent();
    }
  });
  return server;
}
