import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createParkBook, type EvictReason } from '../../src/pool/park-book.js';

function book(maxParked: number, ttlMs = 60_000) {
  let t = 1_000;
  const evicted: Array<[string, EvictReason]> = [];
  const parked = createParkBook<string>({ maxParked, ttlMs, now: () => t, evict: (e, reason) => evicted.push([e.sandbox, reason]) });
  return { parked, evicted, advance: (ms: number) => (t += ms) };
}

describe('park book (parked sandboxes of one replica)', () => {
  it('keeps one sandbox per user for that user alone: take hands it back once, to that user only', () => {
    const { parked, evicted } = book(5);
    parked.park('alice', 'sbx-a');
    assert.equal(parked.take('bob'), undefined);
    assert.equal(parked.take('alice')?.sandbox, 'sbx-a');
    assert.equal(parked.take('alice'), undefined, 'taken once');
    assert.deepEqual(evicted, []);
  });

  it('evicts the least recently parked beyond PARK_MAX (count), and an older sandbox of the same user', () => {
    const { parked, evicted, advance } = book(2);
    parked.park('a', 'sbx-a');
    advance(10);
    parked.park('b', 'sbx-b');
    advance(10);
    parked.park('c', 'sbx-c');
    assert.deepEqual(evicted, [['sbx-a', 'count']]);
    parked.park('b', 'sbx-b2');
    assert.deepEqual(evicted, [['sbx-a', 'count'], ['sbx-b', 'count']]);
    assert.deepEqual(parked.sandboxes(), ['sbx-c', 'sbx-b2']);
  });

  it('PARK_MAX 0 parks nothing: every sandbox is evicted at once', () => {
    const { parked, evicted } = book(0);
    parked.park('a', 'sbx-a');
    assert.equal(parked.size(), 0);
    assert.deepEqual(evicted, [['sbx-a', 'count']]);
  });

  it('expires sandboxes parked longer than PARK_TTL_S (ttl), and only those', () => {
    const { parked, evicted, advance } = book(10, 1_000);
    parked.park('old', 'sbx-old');
    advance(600);
    parked.park('young', 'sbx-young');
    advance(500);
    assert.equal(parked.expire(), 1);
    assert.deepEqual(evicted, [['sbx-old', 'ttl']]);
    assert.equal(parked.has('young'), true);
  });

  it('yields to demand (the oldest first), and evicts on wipe and shutdown with the reason', () => {
    const { parked, evicted } = book(10);
    parked.park('a', 'sbx-a');
    parked.park('b', 'sbx-b');
    parked.park('c', 'sbx-c');
    assert.equal(parked.evictOldest('demand'), true);
    assert.equal(parked.remove('c', 'wipe'), true);
    assert.equal(parked.remove('c', 'wipe'), false);
    assert.equal(parked.clear('shutdown'), 1);
    assert.equal(parked.evictOldest('demand'), false, 'nothing left to yield');
    assert.deepEqual(evicted, [['sbx-a', 'demand'], ['sbx-c', 'wipe'], ['sbx-b', 'shutdown']]);
  });
});
