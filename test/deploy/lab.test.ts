/**
 * The lab (`npm run lab:up -- --nodes 3` / `npm run lab:down`): stack
 * `sandpool` on a real three-node Docker Swarm on this machine, each node a
 * network namespace (netns sandpool-lab-<i>, 10.213.0.1x) with its own
 * containerd and dockerd, images through the lab registry.
 *
 * The users are on this host and reach nginx on the manager's netns address
 * (published in mode host: no routing mesh without iptables); nothing else is
 * addressed. Each node is one replica at first (MAX_SESSIONS=2 each, so that
 * a full replica shows), then: a partition of node 2 for 20 s, the loss of
 * node 3 (every process of it SIGKILLed), its return and a rolling update,
 * and lab:down. Times are printed (`# lab:`), not asserted.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BRIDGE, DATA_DIR, LAB_ENV_DIR, LAB_PREFIX, RUN_DIR, labNodes, type LabNode } from '../../scripts/lib/lab-layout.js';
import { cutLink, healLink, killNode, labProcesses, netnsList, nodeDocker, nodeStatuses, startEngine } from '../../scripts/lib/lab-node.js';
import { converse, converseRetrying } from '../support/conversation.js';
import { waitFor } from '../support/helpers.js';
import { appContainer, clusterView, homeOf, labUser, lastReplica, manager, proxyLogs, readLabEnv, sandboxIds, sandboxWith, type LabUser, type ReplicaView } from '../support/lab.js';
import { buildImages, run } from '../support/stack.js';

const NODES = labNodes(3);
const [NODE1, NODE2, NODE3] = NODES as [LabNode, LabNode, LabNode];
const APP = 'sandpool_app';
const note = (what: string, data: Record<string, unknown>): void => void process.stderr.write(`# lab: ${what} ${JSON.stringify(data)}\n`);

const labDown = (): Promise<string> => run('npm', ['run', 'lab:down'], { timeoutMs: 300_000 });

/** Writes a file through the agent and reads it back. */
async function writeAndRead(user: LabUser, file: string, text: string): Promise<string> {
  const wrote = await converse(user.socket, `write "${text}" to /workspace/${file}`, 60_000);
  assert.match(wrote.contents[0] ?? '', /Successfully wrote/);
  return readBack(user, file);
}

/**
 * The file's text as the tool read it; after a move to a fresh sandbox the
 * answer starts with a notice that the files were restored from the last snapshot.
 */
function assertFile(read: string, uid: string, why = `${uid}'s file`): void {
  assert.ok(read.endsWith(`file of ${uid}`), `${why}: ${JSON.stringify(read)}`);
}

async function readBack(user: LabUser, file: string): Promise<string> {
  return (await converse(user.socket, `read /workspace/${file}`, 60_000)).contents[0] ?? '';
}

describe('the lab: stack sandpool on a three-node Docker Swarm on this machine (npm run lab:up / lab:down)', () => {
  let url = '';
  let secret = '';
  let downed = false;
  const users: LabUser[] = [];
  /** Replica -> node, as the cluster view showed them at first. */
  let initial: ReplicaView[] = [];
  /** Node 3's sandboxes just before it was lost. */
  let lostWithNode3: string[] = [];
  const replicaOn = (node: LabNode): string => initial.find((r) => r.node === node.name)?.replica ?? '';
  const nodeOf = async (replica: string): Promise<string | undefined> => (await clusterView(url)).find((r) => r.replica === replica)?.node;
  const connect = async (uid: string): Promise<LabUser> => {
    const user = await labUser(url, secret, uid);
    users.push(user);
    return user;
  };
  /** Users by the replica nginx routes them to (their home), found by asking nginx. */
  const homes = new Map<string, string[]>();
  async function usersHomedOn(replica: string, count: number): Promise<string[]> {
    for (let i = 0; (homes.get(replica)?.length ?? 0) < count; i++) {
      assert.ok(i < 300, `no ${count} user ids routed to ${replica} among 300`);
      const uid = `lab-user-${i}`;
      if ([...homes.values()].some((list) => list.includes(uid))) continue;
      const home = await homeOf(url, uid);
      homes.set(home, [...(homes.get(home) ?? []), uid]);
    }
    return (homes.get(replica) ?? []).slice(0, count);
  }

  before(async () => {
    const env = await buildImages();
    secret = env.AUTH_SECRET ?? '';
    // A lab an earlier run left (killed before its after hook) goes first: lab:down is idempotent.
    await labDown();
    const started = Date.now();
    await run('npm', ['run', 'lab:up', '--', '--nodes', '3'], { env: { ...process.env, POOL_MIN_SIZE: '1', LAB_MAX_SESSIONS: '2' }, timeoutMs: 20 * 60_000 });
    note('lab:up', { seconds: Math.round((Date.now() - started) / 1000) });
    url = readLabEnv().LAB_URL ?? '';
  });

  after(async () => {
    for (const u of users) u.socket.close();
    if (!downed) await labDown().catch((err: unknown) => console.error(String(err)));
  });

  it('lab:up: `docker node ls` shows 3 Ready nodes; one replica per node, shown with its node; each node\'s sandboxes on its own engine, seen only through its own socket proxy', { timeout: 120_000 }, async () => {
    const env = readLabEnv();
    assert.equal(env.DOCKER_HOST, NODE1.dockerHost);
    for (const n of NODES) assert.equal(env[`NODE_${n.index}_DOCKER_HOST`], n.dockerHost);
    process.stderr.write(await nodeDocker(NODE1, ['node', 'ls']));
    assert.deepEqual([...(await nodeStatuses(NODE1))].sort(), NODES.map((n) => [n.name, 'Ready']));

    initial = await clusterView(url);
    assert.equal(initial.length, 3);
    assert.ok(initial.every((r) => r.ready));
    assert.deepEqual(initial.map((r) => r.node).sort(), NODES.map((n) => n.name), 'one replica per node, each with its node');

    for (const node of NODES) {
      const owners = (await nodeDocker(node, ['ps', '--filter', 'label=sandpool.app=sandpool', '--format', '{{.Label "sandpool.replica"}}'])).split('\n').filter(Boolean);
      assert.ok(owners.length >= 1, `no sandbox on ${node.name}'s engine`);
      assert.deepEqual([...new Set(owners)], [replicaOn(node)], `${node.name}'s sandboxes belong to its own replica`);
      // What the replica there sees through its node's socket proxy: exactly its own node's sandboxes.
      const seen = await nodeDocker(node, [
        'exec', appContainer(replicaOn(node)), 'node', '-e',
        'require("http").get({socketPath:"/run/sandpool/docker.sock",path:"/containers/json?all=1"},(r)=>{let b="";r.on("data",(c)=>b+=c);r.on("end",()=>process.stdout.write(JSON.parse(b).map((c)=>c.Id).sort().join("\\n")))})',
      ]);
      const through = new Set(seen.split('\n').filter(Boolean));
      // The proxy lists sandboxes only (docs/socket-proxy.md): exactly this node's.
      assert.deepEqual([...through].sort(), (await sandboxIds(node)).sort(), `the proxy on ${node.name} answers for that node's engine, sandboxes only`);
      for (const other of NODES.filter((n) => n !== node)) {
        for (const id of await sandboxIds(other)) assert.ok(!through.has(id), `${node.name}'s proxy sees ${other.name}'s sandbox ${id}`);
      }
    }
  });

  it('serves users on every node (each writes and reads a file); a user whose replica is full is served by a replica with room', { timeout: 300_000 }, async () => {
    for (const node of NODES) {
      const [uid = ''] = await usersHomedOn(replicaOn(node), node === NODE2 ? 3 : 1);
      const user = await connect(uid);
      assert.equal(lastReplica(user), replicaOn(node), `${uid} served by its home replica on ${node.name}`);
      assertFile(await writeAndRead(user, `${uid}.txt`, `file of ${uid}`), uid);
      const where = await sandboxWith(`${uid}.txt`, NODES);
      assert.equal(where?.node, node.index, `${uid}'s sandbox is on ${node.name}'s engine`);
    }
    // Node 2's replica takes a second user (MAX_SESSIONS=2: now full); a third user routed there goes elsewhere.
    const [, stayerId = '', overflowId = ''] = await usersHomedOn(replicaOn(NODE2), 3);
    const stayer = await connect(stayerId);
    assert.equal(lastReplica(stayer), replicaOn(NODE2));
    assertFile(await writeAndRead(stayer, `${stayerId}.txt`, `file of ${stayerId}`), stayerId);
    const overflow = await connect(overflowId);
    assert.notEqual(lastReplica(overflow), replicaOn(NODE2), 'routed to the full replica, served by another');
    const servedOn = await nodeOf(lastReplica(overflow));
    assert.ok(servedOn && servedOn !== NODE2.name, `served on ${servedOn}`);
    assertFile(await writeAndRead(overflow, `${overflowId}.txt`, `file of ${overflowId}`), overflowId);
    note('overflow', { home: replicaOn(NODE2), servedBy: lastReplica(overflow), node: servedOn });
    overflow.socket.close();
    users.splice(users.indexOf(overflow), 1);
  });

  it('a partition healed (node 2\'s link down for 20 s): no sandbox removed while its owner lives, on either side; the user who moved keeps their files; back, node 2 itself (its replica, or its proxy\'s sweeper once swarm stopped that replica) removes the sandbox it no longer owns', { timeout: 300_000 }, async () => {
    const [n1, n2, n3, stayer] = users as [LabUser, LabUser, LabUser, LabUser];
    const before = new Map<LabUser, { node: number; id: string } | undefined>();
    for (const u of users) before.set(u, await sandboxWith(`${u.uid}.txt`, NODES));
    const x = replicaOn(NODE2);
    await cutLink(NODE2);
    const cutAt = Date.now();
    try {
      // Its heartbeat lapses (3 beats, 6 s); then n2, like a client whose connection timed out, connects again: nginx
      // cannot reach node 2 and passes it on. The stayer waits the partition out.
      await waitFor('node 2\'s replica to count as dead', async () => {
        const view = await clusterView(url).catch(() => undefined);
        return (view !== undefined && !view.some((r) => r.replica === x)) || undefined;
      }, 60_000, 500);
      n2.socket.disconnect().connect();
      await waitFor('n2 served by a survivor', () => (lastReplica(n2) !== x && n2.socket.connected) || undefined, 30_000, 200);
      assertFile(await readBack(n2, `${n2.uid}.txt`), n2.uid, 'n2\'s file, restored on the survivor');
      note('partition: n2 served again', { seconds: (Date.now() - cutAt) / 1000, by: lastReplica(n2) });
      // Survivors removed nothing of their own users'.
      for (const u of [n1, n3]) assert.deepEqual(await sandboxWith(`${u.uid}.txt`, [NODE1, NODE3]), before.get(u));
      await waitFor('20 s of partition', () => Date.now() - cutAt >= 20_000 || undefined, 25_000, 500);
    } finally {
      await healLink(NODE2);
    }
    const healedAt = Date.now();
    const oldN2 = before.get(n2);
    assert.equal(oldN2?.node, 2);
    // Back: node 2's replica finds n2 taken over and gives the sandbox up; the stayer's stays.
    await waitFor('n2\'s old sandbox on node 2 to be removed', async () => !(await sandboxIds(NODE2)).includes(oldN2?.id ?? '') || undefined, 120_000, 1_000);
    // By node 2 itself: its replica, if swarm left it running, gives up what was taken over; if swarm shut it
    // down on the node's return (its task was rescheduled during the partition), the node's proxy sweeps it.
    const xRuns = (await nodeDocker(NODE2, ['inspect', '-f', '{{.State.Running}}', appContainer(x)]).catch(() => 'false')).trim() === 'true';
    note('partition healed: node 2 removed the sandbox it no longer owns', { seconds: (Date.now() - healedAt) / 1000, by: xRuns ? 'its replica' : 'its node sweeper (the replica was shut down by swarm)' });
    if (xRuns) assert.match(await nodeDocker(NODE2, ['logs', appContainer(x)]), /another replica took over sandboxes of this one/, 'removed by node 2\'s own replica');
    else assert.match(await proxyLogs(NODE2), /removed orphan container: its owner replica container on this node is not running/, 'removed by node 2\'s proxy');
    await waitFor('the stayer connected', () => stayer.socket.connected || undefined, 90_000, 500);
    assertFile(await readBack(stayer, `${stayer.uid}.txt`), stayer.uid);
    // The stayer's socket may have been closed by node 2's replica (Socket.IO's ping went unanswered across the
    // cut) and reconnected; while its owner (node 2's replica) holds the session, the sandbox must be the same one.
    const stayerNow = await sandboxWith(`${stayer.uid}.txt`, NODES);
    note('partition: the stayer', { servedBy: stayer.sessions.map((s) => s.replica), sandboxBefore: before.get(stayer), sandboxNow: stayerNow });
    if (lastReplica(stayer) === x) assert.deepEqual(stayerNow, before.get(stayer), 'the stayer\'s sandbox was never removed');
    else assert.ok(stayer.sessions.some((s) => s.replica !== x), 'the stayer moved: served elsewhere with its files (above)');
    for (const u of [n1, n3]) assert.deepEqual(await sandboxWith(`${u.uid}.txt`, NODES), before.get(u));
    // Its part is played. With MAX_SESSIONS=2, two survivors have 4 places: 4 users (and a session in its
    // disconnect grace) would leave the lost node's user no room until swarm's replacement is up.
    stayer.socket.close();
    users.splice(users.indexOf(stayer), 1);
  });

  it('a node lost (node 3: dockerd, containerd and every container SIGKILLed): its user reconnects through nginx to a survivor and finds their file; swarm reschedules its replica', { timeout: 300_000 }, async () => {
    const n3 = users[2] as LabUser;
    const z = replicaOn(NODE3);
    assert.equal(lastReplica(n3), z);
    // Still one replica per node (the partition was shorter than swarm's node timeout: nothing was rescheduled),
    // so the survivors have room for node 3's users.
    assert.deepEqual((await clusterView(url)).map((r) => r.node).sort(), NODES.map((n) => n.name), 'one replica per node before node 3 is lost');
    // MAX_SESSIONS=2: the survivors need room for node 3's sessions. A session counts until its disconnect grace
    // ends (30 s; longer for a socket the server only finds dead by its ping timeout), so the users who moved in
    // the partition may still hold places there: wait for them to go, or a refused user stops reconnecting.
    await waitFor('room on the survivors for node 3\'s sessions', async () => {
      const view = await clusterView(url).catch(() => []);
      const moving = view.find((r) => r.replica === z)?.sessions ?? Infinity;
      const room = view.filter((r) => r.replica !== z).reduce((n, r) => n + Math.max(0, (r.maxSessions ?? 0) - (r.sessions ?? 0)), 0);
      return room >= moving || undefined;
    }, 120_000, 1_000);
    lostWithNode3 = await sandboxIds(NODE3);
    const killedAt = Date.now();
    await killNode(NODE3);
    // An idle client notices by Socket.IO's ping timeout (25 + 20 s), then reconnects through nginx.
    await waitFor('n3 served by a survivor', () => (lastReplica(n3) !== z && n3.socket.connected) || undefined, 150_000, 200);
    const connectedS = (Date.now() - killedAt) / 1000;
    // Its first message waits on the survivor until node 3's replica no longer counts as alive; sent again only
    // if that wait ran out ("try again").
    const read = await converseRetrying(n3.socket, `read /workspace/${n3.uid}.txt`, 60_000);
    assertFile(read.contents[0] ?? '', n3.uid, 'the file survived the loss of its node');
    const servedS = (Date.now() - killedAt) / 1000;
    const servedOn = await nodeOf(lastReplica(n3));
    assert.ok(servedOn === NODE1.name || servedOn === NODE2.name, `served on ${servedOn}`);
    await waitFor('node 3 Down', async () => (await nodeStatuses(NODE1)).get(NODE3.name) === 'Down' || undefined, 150_000, 1_000);
    const downS = (Date.now() - killedAt) / 1000;
    await waitFor('3 ready replicas again, on the survivors', async () => {
      const view = await clusterView(url).catch(() => []);
      return (view.length === 3 && view.every((r) => r.ready && (r.node === NODE1.name || r.node === NODE2.name))) || undefined;
    }, 180_000, 1_000);
    note('node lost', { reconnectedS: connectedS, servedAgainS: servedS, refusedFirst: read.retries, nodeDownS: downS, rescheduledReadyS: (Date.now() - killedAt) / 1000 });
  });

  it('the lost node returns and a rolling update runs with users connected: each keeps working; the replicas spread over all three nodes again, and node 3\'s leftovers are removed by node 3 itself (its proxy\'s sweeper or its new replica)', { timeout: 600_000 }, async () => {
    const leftovers = lostWithNode3;
    await startEngine(NODE3);
    await waitFor('node 3 Ready', async () => (await nodeStatuses(NODE1)).get(NODE3.name) === 'Ready' || undefined, 120_000, 1_000);
    const exited = await sandboxIds(NODE3);
    assert.ok(exited.length >= 1 && exited.every((id) => leftovers.includes(id)), `node 3 came back with the sandboxes its replica left (${exited.length})`);
    const sessionBefore = new Map(users.map((u) => [u, { index: u.sessions.length - 1, id: u.sessions.at(-1)?.sessionId }]));
    await nodeDocker(NODE1, ['service', 'update', '--detach', '--force', APP]);
    await waitFor('the rolling update to complete', async () => (await nodeDocker(NODE1, ['service', 'inspect', '-f', '{{.UpdateStatus.State}}', APP])).trim() === 'completed' || undefined, 540_000, 2_000);
    const view = await waitFor('3 ready replicas', async () => {
      const v = await clusterView(url).catch(() => []);
      return (v.length === 3 && v.every((r) => r.ready) && v) || undefined;
    }, 120_000, 1_000);
    assert.ok(view.some((r) => r.node === NODE3.name), `a replica on node 3 again: ${JSON.stringify(view.map((r) => r.node))}`);
    for (const u of users) {
      await waitFor(`${u.uid} connected`, () => u.socket.connected || undefined, 60_000, 200);
      assertFile(await readBack(u, `${u.uid}.txt`), u.uid, `${u.uid} keeps their file across the update`);
      const since = sessionBefore.get(u);
      assert.ok(u.sessions.length - 1 > (since?.index ?? 0), `${u.uid} was moved by the update`);
      assert.ok(u.sessions.slice(since?.index ?? 0).every((s) => s.sessionId === since?.id), `${u.uid} kept their session across the update`);
      assert.ok(view.some((r) => r.replica === lastReplica(u)), `${u.uid} is served by a new replica`);
    }
    await waitFor('node 3\'s leftovers removed', async () => (await sandboxIds(NODE3)).every((id) => !leftovers.includes(id)) || undefined, 120_000, 1_000);
    const onNode3 = view.find((r) => r.node === NODE3.name)?.replica ?? '';
    const log = `${await nodeDocker(NODE3, ['logs', appContainer(onNode3)])}\n${await proxyLogs(NODE3)}`;
    assert.match(log, /removed (orphan container|its containers)|replica is gone/, 'by node 3 itself: its new replica or its proxy');
    assert.deepEqual([...(await nodeStatuses(NODE1))].sort(), NODES.map((n) => [n.name, 'Ready']));
  });

  it('npm run lab:down leaves nothing: no netns sandpool-lab-*, no lab daemon, no bridge, no data', { timeout: 300_000 }, async () => {
    for (const u of users) u.socket.close();
    const started = Date.now();
    await labDown();
    downed = true;
    note('lab:down', { seconds: Math.round((Date.now() - started) / 1000) });
    assert.deepEqual(await netnsList(), [], `netns ${LAB_PREFIX}-*`);
    assert.equal(await run('ip', ['link', 'show', BRIDGE]).then(() => true, () => false), false, `bridge ${BRIDGE}`);
    assert.deepEqual(labProcesses(), []);
    for (const dir of [RUN_DIR, DATA_DIR, LAB_ENV_DIR]) assert.equal(existsSync(dir), false, dir);
    // Idempotent.
    await labDown();
  });
});
