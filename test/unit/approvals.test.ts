import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApprovalRegistry } from '../../src/chat/approvals.js';
import { CancelledError, SandpoolError } from '../../src/errors.js';

const call = (callId: string, userId = 'alice') => ({ userId, requestId: `r-${callId}`, callId, tool: 'write_file', arguments: { path: '/workspace/a' } });

describe('approval registry', () => {
  it('settles a call with its user\'s decision, once', async () => {
    const reg = createApprovalRegistry();
    const waiting = reg.wait({ ...call('c1'), timeoutMs: 5_000, signal: new AbortController().signal });
    assert.deepEqual(reg.decide('alice', 'c1', true), { requestId: 'r-c1' });
    assert.equal(await waiting, 'approved');
    assert.throws(() => reg.decide('alice', 'c1', false), (err: unknown) => err instanceof SandpoolError && err.code === 'UNKNOWN_CALL');
    assert.equal(reg.pendingCount(), 0);
  });

  it('answers another user\'s call and an unknown one alike (UNKNOWN_CALL), changing nothing', async () => {
    const reg = createApprovalRegistry();
    const waiting = reg.wait({ ...call('c1'), timeoutMs: 5_000, signal: new AbortController().signal });
    for (const [user, id] of [['mallory', 'c1'], ['alice', 'nope']]) {
      assert.throws(
        () => reg.decide(user ?? '', id ?? '', true),
        (err: unknown) => err instanceof SandpoolError && err.code === 'UNKNOWN_CALL' && err.message === `no pending tool call ${JSON.stringify(id)} for this user`,
      );
    }
    assert.equal(reg.pendingCount(), 1);
    reg.decide('alice', 'c1', false);
    assert.equal(await waiting, 'denied');
  });

  it('times a call out', async () => {
    const reg = createApprovalRegistry();
    assert.equal(await reg.wait({ ...call('c1'), timeoutMs: 20, signal: new AbortController().signal }), 'timeout');
    assert.equal(reg.pendingCount(), 0);
  });

  it('rejects with the cancellation when the request is cancelled, before or while waiting', async () => {
    const reg = createApprovalRegistry();
    const controller = new AbortController();
    const waiting = reg.wait({ ...call('c1'), timeoutMs: 5_000, signal: controller.signal });
    controller.abort(new CancelledError('shutdown'));
    await assert.rejects(waiting, (err) => err instanceof CancelledError && err.reason === 'shutdown');
    await assert.rejects(reg.wait({ ...call('c2'), timeoutMs: 5_000, signal: controller.signal }), CancelledError);
    assert.equal(reg.pendingCount(), 0);
  });

  it('lists a user\'s waiting calls for a late tab, and only theirs', () => {
    const reg = createApprovalRegistry();
    const signal = new AbortController().signal;
    void reg.wait({ ...call('c1'), timeoutMs: 5_000, signal });
    void reg.wait({ ...call('c2', 'bob'), timeoutMs: 5_000, signal });
    const mine = reg.pendingFor('alice');
    assert.deepEqual(mine.map((p) => [p.callId, p.requestId, p.tool]), [['c1', 'r-c1', 'write_file']]);
    assert.ok((mine[0]?.expiresAtMs ?? 0) > Date.now());
    reg.decide('alice', 'c1', true);
    reg.decide('bob', 'c2', true);
  });
});
