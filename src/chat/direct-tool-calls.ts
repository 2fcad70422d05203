import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '../protocol/mcp-types.js';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { SlotLimiter } from '../state/slot-limiter.js';
import type { ToolNotice } from '../protocol/events.js';
import type { SandboxTools } from './sandbox-tools.js';
import type { Presences } from './presence.js';

/**
 * Tool calls a client makes itself (an MCP client), without the agent and its
 * approvals: in the user's one sandbox (here, or routed to the replica that
 * holds it), counted against MAX_REQUESTS_PER_USER together with chat.
 */
export interface DirectToolCalls {
  call(userId: string, name: string, args: Record<string, unknown>, options?: { onNotice?: (notice: ToolNotice) => void }): Promise<CallToolResult>;
}

const LOST_NOTICE = '(Your previous sandbox stopped — its replica or container went away — so this ran in a fresh one; earlier files are gone.)';

export function createDirectToolCalls(options: {
  presences: Pick<Presences, 'open'>;
  sandboxTools: SandboxTools;
  limiter: SlotLimiter;
  maxRequestsPerUser: number;
  toolCallTimeoutMs: number;
  logger: Logger;
}): DirectToolCalls {
  const { presences, limiter } = options;
  const log = options.logger.child({ component: 'DirectToolCalls' });
  return {
    async call(userId, name, args, callOptions) {
      const slot = `tool-${randomUUID()}`;
      let admitted: boolean;
      try {
        admitted = await limiter.tryAcquire(userId, slot);
      } catch (err) {
        throw new SandpoolError('INTERNAL', 'shared state (Redis) is unavailable; try again shortly', { cause: err, detail: errorMessage(err) });
      }
      if (!admitted) {
        throw new SandpoolError('TOO_MANY_REQUESTS', `you already have ${options.maxRequestsPerUser} requests in flight (chat and MCP together); wait for one to finish`);
      }
      const presence = presences.open(userId);
      // Running calls keep the presence (and its sandbox) from the idle release.
      const done = presence.begin();
      try {
        const run = await options.sandboxTools.runnerFor(presence).run(name, args, { timeoutMs: options.toolCallTimeoutMs, ...(callOptions?.onNotice ? { onNotice: callOptions.onNotice } : {}) });
        const notes = [run.startedFresh === 'after-loss' && !run.restored ? LOST_NOTICE : undefined, run.notice].filter((n): n is string => n !== undefined);
        if (notes.length === 0) return run.result;
        // After the tool's own content, so a client that reads the first item gets the tool's answer.
        return { ...run.result, content: [...run.result.content, ...notes.map((text) => ({ type: 'text' as const, text }))] };
      } finally {
        done();
        // Shared state may be down right now: the slot then expires on its own.
        limiter.release(userId, slot).catch((err: unknown) => log.warn({ user: userId, err: errorMessage(err) }, 'could not free a request slot; it expires by itself'));
      }
    },
  };
}
