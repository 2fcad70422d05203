import assert from 'node:assert/strict';
import { request } from 'node:http';
import { parseUser } from '../../src/socket-proxy/create-schema.js';
import type { ProxySettings } from '../../src/socket-proxy/proxy-config.js';

const MIB = 1024 * 1024;

/** What an engine inspect answer is to these checks: read field by field. */
export type Inspect = Record<string, unknown>;

/** What a sandbox must look like: the allowed images (ids and their own command) and the proxy's bounds. */
export interface HardenedExpectations {
  /** Allowed image ids, each with its Entrypoint and Cmd. */
  images: ReadonlyMap<string, { Entrypoint: unknown; Cmd: unknown }>;
  settings: ProxySettings;
}

function rec(v: unknown, what: string): Record<string, unknown> {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${what} is not an object: ${JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

/** null, undefined, [] and {} alike: nothing set. */
function isEmpty(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

/**
 * Every hardened setting a sandbox created through the socket proxy must
 * show in `docker inspect`, whatever its create body said. One assertion
 * message per setting, so a failure names what escaped.
 */
export function assertHardened(info: Inspect, expect: HardenedExpectations): void {
  const id = String(info.Id ?? '?').slice(0, 12);
  const at = (what: string): string => `container ${id}: ${what}`;
  const host = rec(info.HostConfig, at('HostConfig'));
  const config = rec(info.Config, at('Config'));
  const { settings } = expect;

  // Nothing of the host: no privileges, no mounts, no devices, no shared namespaces.
  assert.equal(host.Privileged, false, at('Privileged'));
  for (const field of ['Binds', 'Mounts', 'Devices', 'DeviceRequests', 'DeviceCgroupRules', 'VolumesFrom', 'Links', 'ExtraHosts', 'Dns', 'DnsOptions', 'DnsSearch', 'PortBindings', 'Sysctls', 'GroupAdd']) {
    assert.ok(isEmpty(host[field]), at(`HostConfig.${field} is ${JSON.stringify(host[field])}`));
  }
  assert.ok(isEmpty(info.Mounts), at(`Mounts is ${JSON.stringify(info.Mounts)}`));
  assert.ok(isEmpty(config.Volumes), at(`Config.Volumes is ${JSON.stringify(config.Volumes)}`));
  assert.ok(isEmpty(config.ExposedPorts), at('Config.ExposedPorts'));
  assert.equal(host.PublishAllPorts, false, at('PublishAllPorts'));
  for (const field of ['PidMode', 'UTSMode', 'UsernsMode', 'Cgroup', 'CgroupParent', 'VolumeDriver', 'Isolation']) {
    assert.equal(host[field], '', at(`HostConfig.${field} is ${JSON.stringify(host[field])}`));
  }
  assert.ok(host.IpcMode === 'private' || host.IpcMode === 'shareable', at(`IpcMode is ${JSON.stringify(host.IpcMode)}`));
  assert.equal(host.Runtime, 'runc', at('Runtime'));
  assert.ok(host.OomKillDisable === false || host.OomKillDisable === null, at('OomKillDisable'));
  assert.ok(host.Init === undefined || host.Init === null || host.Init === false, at('Init'));
  // Capabilities and security profiles: all dropped, the engine's default seccomp and AppArmor.
  assert.deepEqual(host.CapDrop, ['ALL'], at('CapDrop'));
  assert.ok(isEmpty(host.CapAdd), at(`CapAdd is ${JSON.stringify(host.CapAdd)}`));
  assert.deepEqual(host.SecurityOpt, ['no-new-privileges'], at('SecurityOpt'));
  assert.ok(Array.isArray(host.MaskedPaths) && host.MaskedPaths.includes('/proc/kcore') && host.MaskedPaths.length >= 5, at(`MaskedPaths is ${JSON.stringify(host.MaskedPaths)}`));
  assert.ok(Array.isArray(host.ReadonlyPaths) && host.ReadonlyPaths.includes('/proc/sys'), at(`ReadonlyPaths is ${JSON.stringify(host.ReadonlyPaths)}`));
  // Filesystem and network.
  assert.equal(host.ReadonlyRootfs, true, at('ReadonlyRootfs'));
  assert.equal(host.NetworkMode, 'none', at('NetworkMode'));
  assert.equal(config.NetworkDisabled, true, at('NetworkDisabled'));
  assert.ok(isEmpty(rec(info.NetworkSettings, at('NetworkSettings')).Networks), at('attached to a network'));
  // Not root.
  const user = parseUser(String(config.User ?? ''));
  assert.ok(user, at(`User is ${JSON.stringify(config.User)}`));
  // tmpfs: only /workspace and /tmp, noexec nosuid nodev, bounded, owned by the user.
  const tmpfs = rec(host.Tmpfs, at('Tmpfs'));
  assert.deepEqual(Object.keys(tmpfs).sort(), ['/tmp', '/workspace'], at('Tmpfs paths'));
  for (const [mount, max] of [['/workspace', settings.maxWorkspaceMb], ['/tmp', settings.maxTmpMb]] as const) {
    const options = String(tmpfs[mount]).split(',');
    for (const required of ['noexec', 'nosuid', 'nodev', `uid=${user.uid}`, `gid=${user.gid}`]) assert.ok(options.includes(required), at(`Tmpfs ${mount} lacks ${required}: ${String(tmpfs[mount])}`));
    for (const forbidden of ['exec', 'suid', 'dev']) assert.ok(!options.includes(forbidden), at(`Tmpfs ${mount} has ${forbidden}`));
    const sizes = options.filter((o) => o.startsWith('size='));
    assert.equal(sizes.length, 1, at(`Tmpfs ${mount} sizes`));
    const size = Number((sizes[0] ?? '').slice(5));
    assert.ok(Number.isInteger(size) && size > 0 && size <= max * MIB, at(`Tmpfs ${mount} size ${sizes[0]}`));
  }
  // Resources: set and within the proxy's bounds; no swap.
  const within = (field: string, max: number): void => {
    const v = host[field];
    assert.ok(typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= max, at(`${field} is ${JSON.stringify(v)} (bound ${max})`));
  };
  within('Memory', settings.maxMemoryMb * MIB);
  assert.equal(host.MemorySwap, host.Memory, at('MemorySwap'));
  within('PidsLimit', settings.maxPids);
  within('NanoCpus', Math.round(settings.maxCpus * 1e9));
  within('ShmSize', settings.maxShmMb * MIB);
  const ulimits = host.Ulimits;
  assert.ok(Array.isArray(ulimits) && ulimits.length === 1, at(`Ulimits is ${JSON.stringify(ulimits)}`));
  const nofile = rec(ulimits[0], at('Ulimits[0]'));
  assert.equal(nofile.Name, 'nofile', at('Ulimits[0].Name'));
  assert.ok(typeof nofile.Hard === 'number' && nofile.Hard >= 1 && nofile.Hard <= settings.maxNofile, at('nofile Hard'));
  assert.ok(typeof nofile.Soft === 'number' && nofile.Soft >= 1 && nofile.Soft <= nofile.Hard, at('nofile Soft'));
  // Engine-side leftovers.
  assert.equal(rec(host.LogConfig, at('LogConfig')).Type, 'none', at('LogConfig.Type'));
  assert.equal(host.AutoRemove, false, at('AutoRemove'));
  assert.equal(rec(config.Labels, at('Labels'))['sandpool.app'], 'sandpool', at('label sandpool.app'));
  // The image: allowed, with its own command.
  const image = expect.images.get(String(info.Image));
  assert.ok(image, at(`Image ${String(info.Image)} is not an allowed image`));
  assert.deepEqual(config.Entrypoint, image.Entrypoint, at('Entrypoint is not the image\'s'));
  assert.deepEqual(config.Cmd, image.Cmd, at('Cmd is not the image\'s'));
  assert.equal(config.WorkingDir, '/workspace', at('WorkingDir'));
}

/** One GET on the engine's own socket, parsed. */
export function engineGet(apiPath: string, socketPath = '/var/run/docker.sock'): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'GET', path: apiPath }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : (JSON.parse(text) as unknown) });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The allowed images of a running proxy with their own Entrypoint and Cmd, from the engine. */
export async function hardenedExpectations(images: ReadonlyMap<string, string>, settings: ProxySettings): Promise<HardenedExpectations> {
  const out = new Map<string, { Entrypoint: unknown; Cmd: unknown }>();
  for (const id of images.values()) {
    const { body } = await engineGet(`/images/${id}/json`);
    const config = rec(rec(body, 'image').Config, 'image Config');
    out.set(id, { Entrypoint: config.Entrypoint, Cmd: config.Cmd });
  }
  return { images: out, settings };
}
