import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCluster, type ClusterState, type RunningCluster } from '../support/cluster.js';
import { sleep, userSockets } from '../support/helpers.js';

const users = userSockets();
/** Connects through nginx; every user sends the same routing hint, so nginx's hash sends all of them to one replica first. */
const connect = async (url: string, userId: string): Promise<{ replica: string }> => (await users.connect(url, userId, { uid: 'one-hash-for-all' })).session;

describe('a full replica passes new users on; only a full cluster refuses (2 replicas through nginx, MAX_SESSIONS=2)', () => {
  let cluster: RunningCluster;
  let state: ClusterState;

  before(async () => {
    cluster = await startCluster(2, { MAX_SESSIONS: '2', POOL_MIN_SIZE: '0', HEARTBEAT_INTERVAL_MS: '300' });
    state = cluster.state;
    // Each replica learns of the other from a heartbeat after both announced themselves.
    await sleep(1_000);
  });
  after(async () => {
    users.closeAll();
    await cluster?.stop();
  });

  it('four users fill both replicas although nginx hashes all of them to one; the fifth gets TOO_MANY_REQUESTS; a second tab still fits', async () => {
    const placed: string[] = [];
    for (const user of ['u1', 'u2', 'u3', 'u4']) placed.push((await connect(state.url, user)).replica);
    const first = placed[0];
    assert.deepEqual(placed.slice(0, 2), [first, first], `the hash sends new users to one replica first: ${placed.join(', ')}`);
    assert.equal(placed.filter((r) => r === first).length, 2, `one replica took more than MAX_SESSIONS: ${placed.join(', ')}`);
    assert.equal(new Set(placed).size, 2, `the full replica did not pass users on: ${placed.join(', ')}`);

    // Until the replicas' heartbeats say both are full, each may still send a user to the other.
    await sleep(1_500);
    const refused = await connect(state.url, 'u5').then(
      () => assert.fail('a fifth user was admitted to a full cluster'),
      (err: Error & { data?: { code?: string; message?: string } }) => err,
    );
    assert.equal(refused.message, 'TOO_MANY_REQUESTS', `connect_error ${refused.message} ${JSON.stringify(refused.data)}`);
    assert.equal(refused.data?.code, 'TOO_MANY_REQUESTS');
    assert.match(refused.data?.message ?? '', /maximum of 2 sessions/);

    // A user who already has a session on a full replica opens another tab there. Not at once:
    // nginx counts each 503 as a failed attempt, so the replica that passed users on is out of
    // its rotation for fail_timeout (5 s), and meanwhile its users' new sockets go to the other.
    await sleep(5_500);
    const again = await connect(state.url, 'u1');
    assert.equal(again.replica, first);
  });
});
