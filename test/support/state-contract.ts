import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ChatMessage } from '../../src/model/conversation.js';
import type { SharedState } from '../../src/state/types.js';
import { replicaRecord } from './replica-record.js';
import { sleep } from '../../src/util/async.js';

/**
 * One contract, two implementations: whatever passes here for memory must
 * pass for Redis (like socket.io's redis-adapter suite).
 */
export function sharedStateContract(name: string, make: (opts: { maxRequestsPerUser: number; maxSocketsPerUser: number; slotTtlMs: number; historyTtlMs: number; eventsPerSecond: number }) => Promise<SharedState>): void {
  describe(`SharedState contract: ${name}`, () => {
    let state: SharedState;
    const user = (): string => `u-${randomBytes(4).toString('hex')}`;
    before(async () => {
      state = await make({ maxRequestsPerUser: 3, maxSocketsPerUser: 2, slotTtlMs: 600, historyTtlMs: 1500, eventsPerSecond: 5 });
    });
    after(() => state.close());

    it('gives each user a burst of twice the events per second, then refills at the rate; other users are unaffected', async () => {
      const u = user();
      const takes = await Promise.all(Array.from({ length: 14 }, () => state.events.take(u)));
      assert.equal(takes.filter(Boolean).length, 10, 'a burst of 2 x 5');
      assert.equal(await state.events.take(user()), true, 'another user has their own budget');
      await sleep(450);
      const refilled = await Promise.all(Array.from({ length: 5 }, () => state.events.take(u)));
      // 0.45 s at 5/s is two events (a slow machine may add a third, never the full burst).
      assert.ok(refilled.filter(Boolean).length >= 2 && refilled.filter(Boolean).length <= 4, `refilled ${refilled.filter(Boolean).length}`);
    });

    it('limits requests in flight per user, by request id, releasing exactly once', async () => {
      const u = user();
      const other = user();
      assert.equal(await state.limiter.tryAcquire(u, 'r1'), true);
      assert.equal(await state.limiter.tryAcquire(u, 'r2'), true);
      assert.equal(await state.limiter.tryAcquire(u, 'r3'), true);
      assert.equal(await state.limiter.tryAcquire(u, 'r4'), false);
      assert.equal(await state.limiter.tryAcquire(other, 'o1'), true, 'another user is unaffected');
      assert.equal(await state.limiter.count(u), 3);
      await state.limiter.release(u, 'r1');
      await state.limiter.release(u, 'r1');
      await state.limiter.release(u, 'never-held');
      assert.equal(await state.limiter.count(u), 2);
      assert.equal(await state.limiter.tryAcquire(u, 'r4'), true);
      assert.equal(await state.limiter.tryAcquire(u, 'r5'), false);
      for (const r of ['r2', 'r3', 'r4']) await state.limiter.release(u, r);
      assert.equal(await state.limiter.count(u), 0);
    });

    it('takes a cap given with the acquire (a plan\'s maxInFlight) instead of its own', async () => {
      const u = user();
      assert.equal(await state.limiter.tryAcquire(u, 'a', 1), true);
      assert.equal(await state.limiter.tryAcquire(u, 'b', 1), false);
      assert.equal(await state.limiter.tryAcquire(u, 'b', 5), true, 'above the limiter\'s own 3');
      assert.equal(await state.limiter.tryAcquire(u, 'c', 5), true);
      assert.equal(await state.limiter.tryAcquire(u, 'd', 5), true);
      assert.equal(await state.limiter.tryAcquire(u, 'e', 5), true);
      assert.equal(await state.limiter.tryAcquire(u, 'f', 5), false);
      for (const id of ['a', 'b', 'c', 'd', 'e']) await state.limiter.release(u, id);
      assert.equal(await state.limiter.count(u), 0);
    });

    it('admits exactly the limit when many acquires race', async () => {
      const u = user();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => state.limiter.tryAcquire(u, `p${i}`)));
      assert.equal(results.filter(Boolean).length, 3);
      assert.equal(await state.limiter.count(u), 3);
      await Promise.all(results.map((ok, i) => (ok ? state.limiter.release(u, `p${i}`) : undefined)));
      assert.equal(await state.limiter.count(u), 0);
    });

    it('caps sockets per user separately from requests, by socket id', async () => {
      const u = user();
      assert.equal(await state.sockets.tryAcquire(u, 's1'), true);
      assert.equal(await state.sockets.tryAcquire(u, 's2'), true);
      assert.equal(await state.sockets.tryAcquire(u, 's3'), false);
      assert.equal(await state.limiter.tryAcquire(u, 'r1'), true, 'requests have their own budget');
      await state.sockets.release(u, 's1');
      assert.equal(await state.sockets.tryAcquire(u, 's3'), true);
      assert.equal(await state.sockets.count(u), 2);
      for (const id of ['s2', 's3']) await state.sockets.release(u, id);
      await state.limiter.release(u, 'r1');
    });

    it('keeps a held slot alive past its TTL (the holder renews it)', async () => {
      const u = user();
      assert.equal(await state.limiter.tryAcquire(u, 'long'), true);
      await sleep(1500);
      assert.equal(await state.limiter.count(u), 1);
      await state.limiter.release(u, 'long');
    });

    it('keeps one conversation id per user and appends history, trimmed at a user turn', async () => {
      const u = user();
      const id = await state.conversations.conversationId(u);
      assert.match(id, /^[A-Za-z0-9_-]{20,}$/);
      assert.equal(await state.conversations.conversationId(u), id);
      assert.notEqual(await state.conversations.conversationId(user()), id);
      const exchange = (n: number): ChatMessage[] => [
        { role: 'user', text: `q${n}` },
        { role: 'assistant', text: '', toolCalls: [{ id: `c${n}`, name: 'list_directory', arguments: { path: '/workspace' } }] },
        { role: 'tool', callId: `c${n}`, name: 'list_directory', ok: true, content: `r${n}` },
        { role: 'assistant', text: `a${n}`, toolCalls: [] },
      ];
      assert.deepEqual(await state.conversations.history(u), []);
      await state.conversations.append(u, exchange(1), 6);
      assert.deepEqual(await state.conversations.history(u), exchange(1));
      await state.conversations.append(u, exchange(2), 6);
      const h = await state.conversations.history(u);
      assert.equal(h[0]?.role, 'user', 'history starts at a user turn');
      assert.deepEqual(h, exchange(2));
    });

    it('forgets an unused conversation id and history after the history TTL', async () => {
      const u = user();
      const id = await state.conversations.conversationId(u);
      await state.conversations.append(u, [{ role: 'user', text: 'hello' }, { role: 'assistant', text: 'hi', toolCalls: [] }], 10);
      assert.equal((await state.conversations.history(u)).length, 2);
      await sleep(1800);
      assert.deepEqual(await state.conversations.history(u), []);
      assert.notEqual(await state.conversations.conversationId(u), id, 'a forgotten user gets a new conversation id');
    });

    it('lets exactly one of two replicas win a simultaneous ownership claim', async () => {
      for (let i = 0; i < 10; i++) {
        const u = user();
        const answers = await Promise.all([state.owners.claim(u, 'A', 5000), state.owners.claim(u, 'B', 5000)]);
        assert.equal(answers[0], answers[1], `both claims agree on one owner: ${answers.join(' vs ')}`);
        assert.equal(await state.owners.owner(u), answers[0]);
      }
    });

    it('gives a user one sandbox owner at a time, releasable only by that owner', async () => {
      const u = user();
      assert.equal(await state.owners.claim(u, 'A', 5000), 'A');
      assert.equal(await state.owners.claim(u, 'B', 5000), 'A');
      assert.equal(await state.owners.owner(u), 'A');
      await state.owners.release(u, 'B');
      assert.equal(await state.owners.owner(u), 'A');
      await state.owners.release(u, 'A');
      assert.equal(await state.owners.owner(u), undefined);
      assert.equal(await state.owners.claim(u, 'B', 300), 'B');
      await state.owners.renew([u], 'B', 300);
      await sleep(450);
      assert.equal(await state.owners.owner(u), undefined, 'an owner that stops renewing expires');
    });

    it('renews ownership by claiming: a vanished record comes back, a record another replica took is reported lost', async () => {
      const [mine, vanished, taken] = [user(), user(), user()];
      await state.owners.claim(mine, 'A', 5000);
      await state.owners.claim(taken, 'B', 5000);
      const lost = await state.owners.renew([mine, vanished, taken], 'A', 5000);
      assert.deepEqual(lost, [taken]);
      assert.equal(await state.owners.owner(vanished), 'A', 'a record Redis lost is re-created');
      assert.equal(await state.owners.owner(taken), 'B', 'another replica\'s record is left alone');
      for (const u of [mine, vanished]) await state.owners.release(u, 'A');
      await state.owners.release(taken, 'B');
    });

    it('shares pending approvals per user, dropping expired and removed ones', async () => {
      const u = user();
      const call = (callId: string, ttl: number) => ({ requestId: 'r', callId, tool: 'write_file', arguments: { path: '/workspace/a' }, expiresAtMs: Date.now() + ttl, replica: 'A' });
      await state.pending.add(u, call('c1', 5000));
      await state.pending.add(u, call('c2', 200));
      assert.deepEqual((await state.pending.list(u)).map((c) => c.callId).sort(), ['c1', 'c2']);
      assert.equal((await state.pending.get(u, 'c1'))?.replica, 'A');
      assert.equal(await state.pending.get(user(), 'c1'), undefined, 'another user cannot see it');
      await sleep(300);
      assert.deepEqual((await state.pending.list(u)).map((c) => c.callId), ['c1']);
      await state.pending.remove(u, 'c1');
      assert.deepEqual(await state.pending.list(u), []);
    });

    it('tracks replicas by heartbeat; an expired one is dead until buried', async () => {
      const id = `rep-${randomBytes(3).toString('hex')}`;
      await state.replicas.heartbeat(replicaRecord(id, { startedAtMs: Date.now(), idle: 2 }), 300);
      const live = await state.replicas.live();
      assert.equal(live.find((r) => r.replica === id)?.idle, 2);
      assert.equal(await state.replicas.isLive(id), true);
      assert.equal(await state.replicas.isLive(`${id}-never`), false);
      assert.equal((await state.replicas.dead()).some((d) => d.replica === id), false);
      await sleep(450);
      assert.equal((await state.replicas.live()).some((r) => r.replica === id), false);
      assert.equal(await state.replicas.isLive(id), false);
      assert.equal((await state.replicas.dead()).some((d) => d.replica === id), true);
      const dead = (await state.replicas.dead()).find((d) => d.replica === id);
      assert.ok(dead && Math.abs(dead.lastSeenAtMs - Date.now()) < 1500, 'with the time of its last beat');
      assert.equal(dead?.node, undefined, 'no node published: none');
      await state.replicas.bury(id);
      assert.equal((await state.replicas.dead()).some((d) => d.replica === id), false);
      // With a node published, the dead replica carries it: only that node's replicas can clean up after it.
      await state.replicas.heartbeat(replicaRecord(id, { startedAtMs: Date.now(), node: 'node-b' }), 100);
      await sleep(250);
      assert.equal((await state.replicas.dead()).find((d) => d.replica === id)?.node, 'node-b');
      await state.replicas.bury(id);
    });
  });
}

