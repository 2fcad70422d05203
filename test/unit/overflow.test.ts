import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maxSessionsFor, RESERVED_FILES, SESSION_COST_BYTES } from '../../src/config/session-capacity.js';
import { createOverflow } from '../../src/realtime/overflow.js';
import { parseReplicaRecord, type ReplicaRecord } from '../../src/cluster/replica-record.js';
import { replicaRecord } from '../support/replica-record.js';

const peer = (replica: string, sessions: number, maxSessions: number, extra: Partial<ReplicaRecord> = {}): ReplicaRecord => replicaRecord(replica, { sessions, maxSessions, ...extra });

describe('overflow (a full replica passes new users on)', () => {
  it('keeps a user while this replica has room, or already has their session', () => {
    const o = createOverflow({ hasRoomFor: (uid) => uid === 'alice', peers: () => [peer('b', 0, 10)] });
    assert.equal(o.passOn('alice'), false);
    assert.equal(o.passOn('bob'), true);
  });

  it('passes on only when another live replica has room: the last one refuses (TOO_MANY_REQUESTS) itself', () => {
    const full = (peers: ReplicaRecord[]): boolean => createOverflow({ hasRoomFor: () => false, peers: () => peers }).passOn('carol');
    assert.equal(full([]), false, 'a single replica');
    assert.equal(full([peer('b', 10, 10), peer('c', 3, 3)]), false, 'every peer full');
    assert.equal(full([peer('b', 10, 10), peer('c', 2, 3)]), true);
    assert.equal(full([peer('b', 0, 10, { draining: true })]), false, 'a draining peer takes nobody');
  });
});

describe('replica records (what overflow reads of its peers)', () => {
  it('are read only in the declared shape, under the replica they name; unknown fields are dropped', () => {
    const good = replicaRecord('b', { sessions: 2, node: 'node-1' });
    assert.deepEqual(parseReplicaRecord(JSON.stringify({ ...good, future: 1 }), 'b'), { record: good });
    const { sessions: _omitted, ...old } = good;
    const problemOf = (text: string, storedAs = 'b'): string => {
      const read = parseReplicaRecord(text, storedAs);
      assert.ok('problem' in read, `expected a problem for ${text.slice(0, 80)}`);
      return read.problem;
    };
    assert.match(problemOf(JSON.stringify(old)), /^sessions: /, 'a peer that publishes no session count is not read');
    assert.match(problemOf(JSON.stringify({ ...good, maxSessions: '10' })), /^maxSessions: /);
    assert.match(problemOf(JSON.stringify(good), 'c'), /names replica "b"/);
    assert.match(problemOf('{"replica":'), /^not JSON/);
  });
});

describe('MAX_SESSIONS default (session capacity)', () => {
  it('is half the memory at the measured cost per session, within the open files', () => {
    const gib = 2 ** 30;
    assert.equal(SESSION_COST_BYTES, 64 * 1024);
    assert.equal(maxSessionsFor({ memoryBytes: 4 * gib, openFiles: 1_000_000 }), 32_768);
    assert.equal(maxSessionsFor({ memoryBytes: 4 * gib, openFiles: 20_000 }), 20_000 - RESERVED_FILES);
    assert.equal(maxSessionsFor({ memoryBytes: 512 * 2 ** 20, openFiles: 65_536 }), 4_096);
    assert.equal(maxSessionsFor({ memoryBytes: 1, openFiles: 10 }), 1, 'never 0');
  });
});
