/**
 * One lab node: a network namespace (netns) on the lab bridge with its own
 * containerd and dockerd, run the way scripts/lib/docker-engine.sh runs the
 * main engine (no iptables, no default bridge, overlay2) with its own data
 * root, exec root, pid file and socket. Also what happens to a node in the
 * lab's experiments: power loss (kill), return (start again), partition (its
 * link down) and heal.
 *
 * The daemons run in the node's netns, in their own UTS namespace (hostname =
 * node name: swarm names nodes by it) and their own mount namespace (the
 * containers' mounts live and die with the node), inside the node's cgroup,
 * which also holds its containers (--cgroup-parent): a node's memory is that
 * cgroup's, and a node is killed by killing every process in it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../../src/util/async.js';
import { run } from './docker-cli.js';
import { BRIDGE, BRIDGE_ADDRESS, CGROUP_V2, LAB_PREFIX, REGISTRY, SUBNET_BITS, type LabNode } from './lab-layout.js';

const ip = (args: readonly string[]): Promise<string> => run('ip', args);
const quiet = (work: Promise<unknown>): Promise<void> => work.then(() => undefined, () => undefined);

/** The docker CLI against one node's engine. */
export function nodeDocker(node: LabNode, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return run('docker', args, { env: { ...process.env, DOCKER_HOST: node.dockerHost }, timeoutMs });
}

/** `docker node ls` on a manager: hostname -> status (Ready, Down, Unknown). */
export async function nodeStatuses(manager: LabNode): Promise<Map<string, string>> {
  const out = await nodeDocker(manager, ['node', 'ls', '--format', '{{.Hostname}} {{.Status}}']);
  return new Map(out.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
}

export async function engineAnswers(node: LabNode): Promise<boolean> {
  return nodeDocker(node, ['version', '-f', '{{.Server.Version}}'], 5_000).then(() => true, () => false);
}

async function linkExists(name: string, netns?: string): Promise<boolean> {
  return ip([...(netns ? ['-n', netns] : []), 'link', 'show', name]).then(() => true, () => false);
}

export async function netnsList(): Promise<string[]> {
  const out = await ip(['netns', 'list']).catch(() => '');
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${LAB_PREFIX}-`));
}

/** The lab bridge, the host's side of the lab (idempotent). */
export async function ensureBridge(): Promise<void> {
  if (!(await linkExists(BRIDGE))) await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
  await ip(['addr', 'replace', `${BRIDGE_ADDRESS}/${SUBNET_BITS}`, 'dev', BRIDGE]);
  await ip(['link', 'set', BRIDGE, 'up']);
}

/** The node's netns, its veth pair to the bridge and its address (idempotent). */
export async function ensureNetns(node: LabNode): Promise<void> {
  if (!(await netnsList()).includes(node.name)) await ip(['netns', 'add', node.name]);
  if (!(await linkExists(node.hostLink))) await ip(['link', 'add', node.hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.name]);
  await ip(['link', 'set', node.hostLink, 'master', BRIDGE, 'up']);
  await ip(['-n', node.name, 'addr', 'replace', `${node.address}/${SUBNET_BITS}`, 'dev', 'eth0']);
  await ip(['-n', node.name, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', node.name, 'link', 'set', 'lo', 'up']);
  await ip(['-n', node.name, 'route', 'replace', 'default', 'via', BRIDGE_ADDRESS]);
}

/** Partition: the node's link to the bridge down (its processes live on, unreachable). */
export async function cutLink(node: LabNode): Promise<void> {
  await ip(['link', 'set', node.hostLink, 'down']);
}

export async function healLink(node: LabNode): Promise<void> {
  await ip(['link', 'set', node.hostLink, 'up']);
}

/** Every pid in the node's cgroup tree (its daemons, shims and containers). */
function nodePids(node: LabNode): number[] {
  const pids: number[] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const line of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.push(Number(line));
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
  };
  walk(node.cgroup);
  return pids;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the node's containerd and dockerd (idempotent: nothing when its
 * engine answers) and waits until the engine answers. The node's engine
 * trusts the lab registry over plain HTTP, as a node in a private network may.
 */
export async function startEngine(node: LabNode, timeoutMs = 60_000): Promise<void> {
  if (await engineAnswers(node)) return;
  for (const dir of [node.runDir, node.dataDir, path.join(node.cgroup, 'engine')]) mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(node.runDir, 'daemon.json'), `${JSON.stringify({ 'insecure-registries': [REGISTRY] }, null, 2)}\n`);
  const containerdSocket = path.join(node.runDir, 'containerd', 'containerd.sock');
  writeFileSync(
    path.join(node.runDir, 'containerd.toml'),
    [
      'version = 2',
      `root = "${path.join(node.dataDir, 'containerd')}"`,
      `state = "${path.join(node.runDir, 'containerd')}"`,
      // Docker needs no CRI (Kubernetes') plugin: it would only cost memory.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${containerdSocket}"`,
      '',
    ].join('\n'),
  );
  // A pid file left by a killed daemon makes dockerd refuse to start.
  for (const file of ['docker.pid', 'containerd.pid']) {
    const pidFile = path.join(node.runDir, file);
    if (existsSync(pidFile) && !pidAlive(Number(readFileSync(pidFile, 'utf8')))) writeFileSync(pidFile, '');
  }
  const script = [
    'set -e',
    'hostname "$NODE"',
    // Into the node's cgroup before anything starts: every process of the node inherits it.
    'echo $$ > "$CGROUP/engine/cgroup.procs"',
    'containerd --config "$RUN/containerd.toml" >"$RUN/containerd.log" 2>&1 </dev/null &',
    'echo $! > "$RUN/containerd.pid"',
    'for _ in $(seq 100); do [ -S "$CONTAINERD" ] && break; sleep 0.1; done',
    'exec dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \\',
    '  --data-root="$DATA/docker" --exec-root="$RUN/exec" --pidfile="$RUN/docker.pid" -H "unix://$RUN/docker.sock" \\',
    '  --containerd="$CONTAINERD" --cgroup-parent="/$NODE/containers" --config-file="$RUN/daemon.json" >"$RUN/dockerd.log" 2>&1 </dev/null',
  ].join('\n');
  const child = spawn('nsenter', [`--net=/run/netns/${node.name}`, 'unshare', '--uts', '--mount', '--propagation', 'private', 'sh', '-c', script], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, NODE: node.name, CGROUP: node.cgroup, RUN: node.runDir, DATA: node.dataDir, CONTAINERD: containerdSocket },
  });
  child.unref();
  const started = Date.now();
  while (!(await engineAnswers(node))) {
    if (Date.now() - started > timeoutMs) {
      const log = existsSync(path.join(node.runDir, 'dockerd.log')) ? readFileSync(path.join(node.runDir, 'dockerd.log'), 'utf8').split('\n').slice(-15).join('\n') : '(no log)';
      throw new Error(`the engine of ${node.name} did not answer on ${node.socket} within ${timeoutMs / 1000} s; ${path.join(node.runDir, 'dockerd.log')}:\n${log}`);
    }
    await sleep(300);
  }
}

/**
 * Power loss: SIGKILL to every process of the node at once (dockerd,
 * containerd, shims, containers), as when its machine dies. Its data root
 * stays: started again, the engine finds its containers exited.
 */
export async function killNode(node: LabNode): Promise<number> {
  let killed = 0;
  for (let round = 0; round < 50; round++) {
    const pids = nodePids(node);
    if (pids.length === 0) return killed;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // already gone
      }
    }
    // A paused container (a parked sandbox) is frozen: its processes take the SIGKILL only once thawed.
    // Thawed after the kill, they never run again: the power is already off.
    thawNode(node);
    await sleep(100);
  }
  throw new Error(`processes of ${node.name} survive SIGKILL: ${nodePids(node).join(' ')}`);
}

/** Thaws every frozen cgroup of the node (paused containers), so that the signals sent to them are delivered. */
function thawNode(node: LabNode): void {
  const [root, file, thawed] = CGROUP_V2 ? [node.cgroup, 'cgroup.freeze', '0'] : [path.join('/sys/fs/cgroup/freezer', node.name), 'freezer.state', 'THAWED'];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    const control = path.join(dir, file);
    // The root of a v1 freezer hierarchy has no freezer.state; a cgroup gone meanwhile is fine.
    if (existsSync(control)) {
      try {
        writeFileSync(control, thawed);
      } catch {
        // removed meanwhile
      }
    }
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
  };
  walk(root);
}

/** Stops the node for good: its daemons first (SIGTERM, bounded), then whatever is left of it; removes its cgroups. */
export async function stopNode(node: LabNode, graceMs = 15_000): Promise<void> {
  for (const file of ['docker.pid', 'containerd.pid']) {
    const pidFile = path.join(node.runDir, file);
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (!(pid > 0) || !pidAlive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    const started = Date.now();
    while (pidAlive(pid) && Date.now() - started < graceMs) await sleep(200);
  }
  await killNode(node);
  removeCgroups(node);
}

/** The node's cgroup directories in every hierarchy, deepest first (they must be empty of processes). */
function removeCgroups(node: LabNode): void {
  const roots = CGROUP_V2 ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').map((h) => path.join('/sys/fs/cgroup', h));
  const remove = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(path.join(dir, entry.name));
    rmdirSync(dir);
  };
  for (const root of roots) {
    const dir = path.join(root, node.name);
    if (existsSync(dir)) remove(dir);
  }
}

export interface NodeMemory {
  /** Anonymous memory of the node's processes (daemons and containers), MiB. */
  rssMiB: number;
  /** Page cache charged to the node (image layers written and read), MiB. */
  cacheMiB: number;
  /** Resident memory of the node's dockerd + containerd alone, MiB. */
  daemonsRssMiB: number;
}

/** What the node holds in memory now, from its cgroup (and /proc for the daemons). */
export function nodeMemory(node: LabNode): NodeMemory {
  const stat = Object.fromEntries(
    readFileSync(path.join(node.cgroup, 'memory.stat'), 'utf8').split('\n').filter(Boolean).map((l) => {
      const [k = '', v = '0'] = l.split(' ');
      return [k, Number(v)];
    }),
  );
  const rss = CGROUP_V2 ? (stat.anon ?? 0) : (stat.total_rss ?? 0);
  const cache = CGROUP_V2 ? (stat.file ?? 0) : (stat.total_cache ?? 0);
  let daemons = 0;
  for (const file of ['docker.pid', 'containerd.pid']) {
    const pidFile = path.join(node.runDir, file);
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (!(pid > 0)) continue;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    daemons += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  }
  const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
  return { rssMiB: mib(rss), cacheMiB: mib(cache), daemonsRssMiB: mib(daemons) };
}

/** Removes the node's netns (its end of the veth pair goes with it, and the host's end too). */
export async function removeNetns(name: string): Promise<void> {
  await quiet(ip(['netns', 'del', name]));
}

export async function removeBridge(): Promise<void> {
  if (await linkExists(BRIDGE)) await ip(['link', 'del', BRIDGE]);
}

/** Processes still running anything of the lab (its daemons, its registry), by their command lines. */
export function labProcesses(): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let command = '';
    try {
      command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue;
    }
    if (command.includes(`/run/${LAB_PREFIX}`) || command.includes(`/var/lib/${LAB_PREFIX}`)) found.push({ pid: Number(entry), command });
  }
  return found;
}
