import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../logger.js';
import type { ContainerRuntime, ContainerSummary, ExitInfo, SandboxProcess, SandboxSpec } from './types.js';

/** Options of the process runtime. */
export interface ProcessRuntimeOptions {
  /**
   * The MCP server started for every sandbox. Default: the sandbox agent
   * (pool/agent: the official filesystem server from node_modules, with
   * workspace snapshots), as in sandpool's image.
   */
  serverEntry?: string;
  /**
   * Settings this runtime cannot honour (e.g. `POOL_IMAGE=...`): there is no
   * image to run here, so an operator who chose one must learn that their
   * server is not the one answering. Warned about once, at the first start.
   */
  ignoredSettings?: readonly string[];
  /** Gets that warning. Default: process.emitWarning. */
  logger?: Logger;
}

/** Sends a signal to a running child; rejects when it is gone. */
function signal(child: ChildProcessWithoutNullStreams, sig: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || !child.kill(sig)) throw new Error(`process ${child.pid ?? '?'} is gone: cannot send ${sig}`);
}

/**
 * Development fallback when no Docker engine answers: the same MCP filesystem
 * server as a child process rooted at a fresh temp directory. NOT isolated:
 * the server runs with this process's user and network, and the sandbox
 * limits are not enforced. Refused when NODE_ENV=production (see config).
 */
export function createProcessRuntime(options: ProcessRuntimeOptions = {}): ContainerRuntime {
  const serverEntry = options.serverEntry ?? fileURLToPath(new URL('../../pool/agent/main.mjs', import.meta.url));
  const children = new Map<string, { child: ChildProcessWithoutNullStreams; summary: ContainerSummary; dir: string }>();
  let warnedAboutSpec = false;

  function warnIfSettingsIgnored(): void {
    const ignored = options.ignoredSettings ?? [];
    if (warnedAboutSpec || ignored.length === 0) return;
    warnedAboutSpec = true;
    const message = `the process runtime (no Docker) ignores ${ignored.join(' and ')}: every sandbox runs the built-in MCP filesystem server (${serverEntry})`;
    if (options.logger) options.logger.warn({ ignored }, message);
    else process.emitWarning(message, { code: 'SANDPOOL_SPEC_IGNORED' });
  }

  async function kill(id: string): Promise<void> {
    const entry = children.get(id);
    if (!entry) return;
    children.delete(id);
    if (entry.child.exitCode === null && entry.child.signalCode === null) {
      const gone = new Promise<void>((resolve) => entry.child.once('exit', () => resolve()));
      entry.child.kill('SIGKILL');
      await gone;
    }
    await rm(entry.dir, { recursive: true, force: true });
  }

  return {
    kind: 'process',
    isolated: false,
    async ping() {
      /* always available */
    },
    async start(spec: SandboxSpec): Promise<SandboxProcess> {
      warnIfSettingsIgnored();
      const dir = await mkdtemp(path.join(os.tmpdir(), 'sandpool-sbx-'));
      const child = spawn(process.execPath, [serverEntry, dir], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      const id = `proc-${child.pid ?? 'x'}-${path.basename(dir).slice(-6)}`;
      let exitedFlag = false;
      const exited = new Promise<ExitInfo>((resolve) => {
        child.once('exit', (code, signal) => {
          exitedFlag = true;
          resolve({ exitCode: code, reason: signal ? `process killed by ${signal}` : `process exited with code ${code}` });
        });
        child.once('error', (err) => {
          exitedFlag = true;
          resolve({ exitCode: null, reason: `process failed to start: ${err.message}` });
        });
      });
      children.set(id, {
        child,
        dir,
        summary: { id, name: spec.name, labels: spec.labels, createdAtMs: Date.now(), running: true },
      });
      void exited.then(() => {
        const entry = children.get(id);
        if (entry) entry.summary.running = false;
      });
      return {
        id,
        workspaceDir: dir,
        stdin: child.stdin,
        stdout: child.stdout,
        stderr: child.stderr,
        exited,
        hasExited: () => exitedFlag,
        // A stopped process keeps its memory and pipes; SIGKILL ends it all the same.
        pause: async () => signal(child, 'SIGSTOP'),
        resume: async () => signal(child, 'SIGCONT'),
        destroy: () => kill(id),
      };
    },
    async list(labels) {
      return [...children.values()]
        .map((e) => e.summary)
        .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    },
    remove: kill,
    async isRunning(id) {
      const entry = children.get(id);
      return entry ? entry.summary.running : undefined;
    },
  };
}
