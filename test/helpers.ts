import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig, type Config } from '../src/config/config.js';
import { createLogger, type Logger } from '../src/logger.js';

export const execFileAsync = promisify(execFile);

/** A replica id no other test uses, so label filters isolate each test's containers. */
export function uniqueReplica(prefix: string): string {
  return `t-${prefix}-${randomBytes(3).toString('hex')}`;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    REPLICA_ID: uniqueReplica('r'),
    POOL_MIN_SIZE: '1',
    POOL_MAX_SIZE: '4',
    POOL_ACQUIRE_TIMEOUT_MS: '20000',
    ...overrides,
  });
}

export function testLogger(): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

/** Ids of containers carrying these labels, straight from the docker CLI (not our runtime). */
export async function dockerPs(labels: Record<string, string>): Promise<string[]> {
  const args = ['ps', '-a', '-q', '--no-trunc', ...Object.entries(labels).flatMap(([k, v]) => ['--filter', `label=${k}=${v}`])];
  const { stdout } = await execFileAsync('docker', args);
  return stdout.split('\n').filter(Boolean);
}

export async function dockerInspect(id: string): Promise<DockerInspect> {
  const { stdout } = await execFileAsync('docker', ['inspect', id]);
  const parsed = JSON.parse(stdout) as DockerInspect[];
  if (!parsed[0]) throw new Error(`no such container ${id}`);
  return parsed[0];
}

export interface DockerInspect {
  Id: string;
  State: { Running: boolean; Status: string };
  Config: { User: string; Labels: Record<string, string>; Image: string };
  HostConfig: {
    NetworkMode: string;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    ReadonlyRootfs: boolean;
    Tmpfs: Record<string, string> | null;
    Memory: number;
    NanoCpus: number;
    PidsLimit: number | null;
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function textOf(result: CallToolResult): string {
  return result.content
    .map((c) => (c.type === 'text' ? c.text : ''))
    .join('\n');
}

/** A sandpool replica as a real child process (`node dist/src/main.js`), output captured. */
export interface ReplicaProcess {
  child: import('node:child_process').ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export function spawnReplica(env: Record<string, string>): ReplicaProcess {
  const child = spawn(process.execPath, ['dist/src/main.js'], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}
