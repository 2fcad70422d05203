import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandpoolError } from '../../src/errors.js';
import { createMcpSessionHooks } from '../../src/mcp-gateway/mcp-session-hooks.js';
import { createMemorySlotLimiter } from '../../src/state/slot-limiter.js';
import type { McpSession } from '../../src/mcp-gateway/mcp-sessions.js';
import { sleep } from '../../src/util/async.js';

function hooks(owner: string | undefined) {
  const calls: string[] = [];
  const sockets = createMemorySlotLimiter(2);
  const h = createMcpSessionHooks({
    sockets,
    maxSocketsPerUser: 2,
    presences: {
      attach: (userId) => {
        calls.push(`attach ${userId}`);
        return { userId, signal: new AbortController().signal, ended: false, begin: () => () => undefined, touch: () => undefined };
      },
      detach: (userId, graceMs) => void calls.push(`detach ${userId} grace=${graceMs}`),
    },
    owners: { owner: async () => owner },
    bus: { release: (target, userId) => void calls.push(`release ${userId} on ${target}`) },
    replicaId: 'r1',
  });
  return { h, calls, sockets };
}

const session = (id: string, userId = 'alice'): McpSession => ({ id, userId, transport: {} as McpSession['transport'] });

describe('MCP session hooks', () => {
  it('counts sessions against the connection cap, with sockets, and frees the slot when one ends', async () => {
    const { h, sockets } = hooks(undefined);
    await sockets.tryAcquire('alice', 'socket-1');
    await h.admit('alice', 's1');
    await assert.rejects(h.admit('alice', 's2'), (err: unknown) => err instanceof SandpoolError && err.code === 'TOO_MANY_REQUESTS' && /MAX_SOCKETS_PER_USER/.test(err.message));
    h.onClose(session('s1'), 'deleted');
    await sleep(10);
    await h.admit('alice', 's2');
  });

  it('holds the sandbox session while open and lets it go at once when it ends, also on the replica that owns the sandbox', async () => {
    const { h, calls } = hooks('r2');
    h.onOpen(session('s1'));
    h.onClose(session('s1'), 'deleted');
    await sleep(10);
    assert.deepEqual(calls, ['attach alice', 'detach alice grace=0', 'release alice on r2']);
  });

  it('asks no other replica at shutdown, and none when the sandbox is here', async () => {
    const shutdown = hooks('r2');
    shutdown.h.onClose(session('s1'), 'shutdown');
    const local = hooks('r1');
    local.h.onClose(session('s1'), 'idle');
    await sleep(10);
    assert.deepEqual(shutdown.calls, ['detach alice grace=0']);
    assert.deepEqual(local.calls, ['detach alice grace=0']);
  });
});
