/**
 * The lab's image registry: Debian's `docker-registry` (distribution 2.8),
 * on the host's side of the lab bridge (10.213.0.1:5000, reached from the
 * nodes' netns), over plain HTTP: each node's engine lists it under
 * insecure-registries, as nodes in a private network may.
 *
 * Images are pushed from the main engine, where `npm run images` builds them.
 * That engine trusts no registry but loopback ones (Docker treats
 * 127.0.0.0/8 as insecure by default) and is shared, so its configuration is
 * left alone: for the push, a relay on a free loopback port forwards to the
 * registry; the images are tagged with that address, pushed, and untagged.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sleep } from '../../src/util/async.js';
import { docker, run } from './docker-cli.js';
import { BRIDGE_ADDRESS, DATA_DIR, REGISTRY, RUN_DIR } from './lab-layout.js';

const RUN = path.join(RUN_DIR, 'registry');
const DATA = path.join(DATA_DIR, 'registry');
const PID_FILE = path.join(RUN, 'registry.pid');
const [HOST = BRIDGE_ADDRESS, PORT_TEXT = '5000'] = REGISTRY.split(':');
const PORT = Number(PORT_TEXT);

async function answers(): Promise<boolean> {
  return fetch(`http://${REGISTRY}/v2/`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
}

/** Installs Debian's docker-registry when missing (apt), as docker-engine.sh installs docker.io. */
async function ensureInstalled(say: (line: string) => void): Promise<void> {
  if (await run('sh', ['-c', 'command -v docker-registry']).then(() => true, () => false)) return;
  say('installing docker-registry with apt');
  await run('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
  await run('apt-get', ['install', '-y', '-qq', 'docker-registry'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 300_000 });
}

/** Starts the registry (idempotent) and waits until it answers. */
export async function startRegistry(say: (line: string) => void): Promise<void> {
  if (await answers()) return;
  await ensureInstalled(say);
  mkdirSync(RUN, { recursive: true });
  mkdirSync(DATA, { recursive: true });
  const config = path.join(RUN, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${DATA}`,
      'http:',
      // Only the lab bridge: the registry is no service of this machine's other networks.
      `  addr: ${REGISTRY}`,
      '',
    ].join('\n'),
  );
  // detached: a session of its own, so the caller's terminal and exit do not reach it.
  const child = spawn('docker-registry', ['serve', config], { detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
  child.unref();
  if (child.pid) writeFileSync(PID_FILE, String(child.pid));
  for (let i = 0; i < 50; i++) {
    if (await answers()) return;
    await sleep(200);
  }
  throw new Error(`the lab registry does not answer on ${REGISTRY} (docker-registry serve ${config})`);
}

/** The registry's processes: by pid file, and by its configuration's path on the command line (a pid file can be lost). */
function registryPids(): number[] {
  const pids = new Set<number>();
  const fromFile = existsSync(PID_FILE) ? Number(readFileSync(PID_FILE, 'utf8')) : 0;
  if (fromFile > 0) pids.add(fromFile);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(path.join(RUN, 'config.yml'))) pids.add(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return [...pids];
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export async function stopRegistry(): Promise<void> {
  const pids = registryPids().filter(alive);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && pids.some(alive); i++) await sleep(100);
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
}

/** A loopback port that forwards to the registry, while `work` runs. */
async function withRelay<T>(work: (port: number) => Promise<T>): Promise<T> {
  const server = net.createServer((client) => {
    const upstream = net.connect(PORT, HOST);
    client.pipe(upstream).pipe(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await work((server.address() as net.AddressInfo).port);
  } finally {
    server.close();
  }
}

/**
 * Pushes images of the main engine to the lab registry under their last path
 * component (`sandpool-app:lab` -> `<registry>/sandpool-app:lab`). Layers the
 * registry holds already are not sent again.
 */
export async function pushImages(images: readonly string[], say: (line: string) => void): Promise<void> {
  await withRelay(async (port) => {
    for (const image of images) {
      const last = image.split('/').pop() ?? image;
      const local = `127.0.0.1:${port}/${last}`;
      const started = Date.now();
      await docker(['tag', image, local]);
      try {
        await docker(['push', local], { timeoutMs: 600_000 });
      } finally {
        await docker(['rmi', local]).catch(() => undefined);
      }
      say(`pushed ${image} to ${REGISTRY}/${last} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });
}
