/**
 * The docker CLI for the deployment scripts (`npm run swarm:up|down`) and
 * their tests: a command that fails rejects with its output, and the
 * sandboxes a stack's replicas own, found by the containers they ran in.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { APP_LABEL_VALUE, LABELS } from '../../src/runtime/types.js';

const execFileAsync = promisify(execFile);

/** The repository's root (where the compose files are), from dist/scripts/lib. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command in the repository's root; resolves with its stdout, rejects with its output when it fails. */
export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, [...args], { cwd: ROOT, env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${(e.stderr ?? '').slice(-4000)}`);
  }
}

export function docker(args: readonly string[], options: RunOptions = {}): Promise<string> {
  return run('docker', args, options);
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean);
}

/**
 * Hostnames of the containers carrying every one of these labels, running or
 * not: a container's hostname is the start (12 characters) of its id, unless
 * set otherwise, and it is what a replica writes into its sandboxes' owner label.
 */
export async function containerHosts(labels: readonly string[]): Promise<string[]> {
  const out = await docker(['ps', '-a', '--no-trunc', '-q', ...labels.flatMap((l) => ['--filter', `label=${l}`])]);
  return lines(out).map((id) => id.slice(0, 12));
}

/** Ids of the sandboxes (any state) whose owner process ran in one of these containers (by hostname). */
export async function sandboxesOwnedBy(hosts: Iterable<string>): Promise<string[]> {
  const wanted = new Set(hosts);
  const out = await docker(['ps', '-a', '--no-trunc', '--filter', `label=${LABELS.app}=${APP_LABEL_VALUE}`, '--format', `{{.ID}} {{.Label "${LABELS.owner}"}}`]);
  return lines(out).flatMap((line) => {
    const [id = '', owner = ''] = line.split(' ');
    return wanted.has(owner.split('/')[0] ?? '') ? [id] : [];
  });
}
