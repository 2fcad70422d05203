/**
 * Start a child process and wait until it is ready: the one way the scripts
 * and the tests launch replicas, clusters, Redis, nginx, dockerd and Artillery.
 *
 * Readiness is a predicate over the child's captured output or any async
 * probe (an HTTP check, a file appearing). A child that dies first, or is not
 * ready in time, fails the wait with its exit status and its last output
 * lines, and is stopped, so a failed start leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep, withTimeout } from '../../src/util/async.js';

/**
 * Where one of the child's output streams goes. 'capture' keeps it for
 * output() and error messages; { file } appends to a file (kept whole, for a
 * long or noisy child) whose end error messages quote.
 */
export type Sink = 'capture' | 'inherit' | 'ignore' | { file: string };

export interface SpawnOptions {
  command: string;
  args?: readonly string[];
  /** How errors name the child; default: the command's file name. */
  name?: string;
  cwd?: string;
  /** The child's whole environment; default: this process's. */
  env?: NodeJS.ProcessEnv;
  stdout?: Sink;
  stderr?: Sink;
  /**
   * Own process group: a terminal's Ctrl-C reaches only us, and we decide
   * the order in which children stop.
   */
  detached?: boolean;
  /** Signals go to the child's whole process group (implies detached): for a launcher like npm that does not pass them on. */
  signalGroup?: boolean;
  /** Sent to the child should this process exit while it runs (no async cleanup is possible then). */
  onParentExit?: NodeJS.Signals;
  /** Captured output kept, newest last. */
  maxCaptureBytes?: number;
}

/** A readiness check: a pattern or predicate over the captured output, or a probe that ignores it. */
export type Ready = RegExp | ((output: string) => boolean | Promise<boolean>);

export interface StartOptions extends SpawnOptions {
  ready: Ready;
  readyTimeoutMs: number;
  pollMs?: number;
  /** How long a child that failed to become ready gets to stop on SIGTERM before SIGKILL (default 5 s). */
  stopTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

export interface StartedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Captured output, both streams interleaved in arrival order, or one of them. */
  output(stream?: 'stdout' | 'stderr'): string;
  /** The last lines of the output (captured, or from the sink file). */
  tail(lines?: number): string;
  /** Its exit status once it ended and its output streams closed. */
  readonly exited: Promise<ExitStatus>;
  /** Undefined while it runs. */
  exitStatus(): ExitStatus | undefined;
  signal(signal: NodeJS.Signals): void;
  /** Resolves once `ready` holds; rejects (without stopping it) when it died or the time ran out. */
  waitReady(ready: Ready, timeoutMs: number, pollMs?: number): Promise<void>;
  /** Sends `signal`, waits up to timeoutMs for the exit, then SIGKILLs. Resolves with how it ended. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
}

const TAIL_LINES = 20;
// After SIGKILL only a stuck output stream (held open by a grandchild outside the group) can delay 'close'.
const AFTER_KILL_MS = 5_000;

export function describeExit(status: ExitStatus | undefined): string {
  if (!status) return 'still running';
  if (status.error) return `failed to start: ${status.error.message}`;
  return status.signal ? `killed by ${status.signal}` : `exited with code ${status.code}`;
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** Starts the child; it is running (or failing) when this returns. */
export function spawnProcess(options: SpawnOptions): StartedProcess {
  const name = options.name ?? path.basename(options.command);
  const maxBytes = options.maxCaptureBytes ?? 4 * 1024 * 1024;
  const sinks = { stdout: options.stdout ?? 'capture', stderr: options.stderr ?? 'capture' } as const;
  const opened: number[] = [];
  const stdio = (sink: Sink): 'pipe' | 'inherit' | 'ignore' | number => {
    if (sink === 'capture') return 'pipe';
    if (sink === 'inherit' || sink === 'ignore') return sink;
    const fd = openSync(sink.file, 'a');
    opened.push(fd);
    return fd;
  };
  let child: ChildProcess;
  try {
    child = spawn(options.command, [...(options.args ?? [])], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', stdio(sinks.stdout), stdio(sinks.stderr)],
      detached: options.detached === true || options.signalGroup === true,
    });
  } finally {
    // The child holds its own copies of the file descriptors.
    for (const fd of opened) closeSync(fd);
  }

  const chunks: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
  let capturedBytes = 0;
  const capture = (stream: 'stdout' | 'stderr') => (data: Buffer): void => {
    chunks.push({ stream, text: data.toString() });
    capturedBytes += data.length;
    while (capturedBytes > maxBytes && chunks.length > 1) capturedBytes -= Buffer.byteLength(chunks.shift()?.text ?? '');
  };
  child.stdout?.on('data', capture('stdout'));
  child.stderr?.on('data', capture('stderr'));

  let status: ExitStatus | undefined;
  let closed = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => (status ??= { code, signal }));
    child.once('close', (code, signal) => {
      closed = true;
      resolve((status ??= { code, signal }));
    });
    child.once('error', (error) => {
      // A child that never started emits no 'exit'; one that did may still emit 'close'.
      if (child.pid !== undefined) return;
      closed = true;
      resolve((status = { code: null, signal: null, error }));
    });
  });

  const guard = (): void => {
    if (options.onParentExit) signal(options.onParentExit);
  };
  if (options.onParentExit) {
    process.once('exit', guard);
    void exited.then(() => process.off('exit', guard));
  }

  function signal(sig: NodeJS.Signals): void {
    // A group can outlive its leader (npm gone, the server under it not): until the shared output closes, it may still be there.
    const gone = options.signalGroup ? closed : status !== undefined;
    if (gone || child.pid === undefined) return;
    try {
      if (options.signalGroup) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      // It ended between the check and the signal.
    }
  }

  function output(stream?: 'stdout' | 'stderr'): string {
    return chunks.filter((c) => stream === undefined || c.stream === stream).map((c) => c.text).join('');
  }

  function tail(lines = TAIL_LINES): string {
    const parts = [output()];
    const files = new Set([sinks.stdout, sinks.stderr].flatMap((sink) => (typeof sink === 'object' ? [sink.file] : [])));
    for (const file of files) if (existsSync(file)) parts.push(readFileSync(file, 'utf8'));
    const text = lastLines(parts.filter(Boolean).join('\n'), lines);
    if (text) return text;
    return sinks.stdout === 'capture' || sinks.stderr === 'capture' || files.size > 0 ? '(no output)' : '(output not captured)';
  }

  async function waitReady(ready: Ready, timeoutMs: number, pollMs = 100): Promise<void> {
    const check = typeof ready === 'function' ? ready : (out: string): boolean => ready.test(out);
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      if (status) throw new Error(`${name} ${describeExit(status)} before it was ready; last output:\n${tail()}`);
      try {
        // A check that never settles (see httpOk) must not outlive the deadline.
        if (await withTimeout(Promise.resolve().then(() => check(output())), Math.max(deadline - Date.now(), pollMs), `${name}'s readiness check`)) return;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() >= deadline) {
        const probe = lastError instanceof Error ? ` (last check: ${lastError.message})` : '';
        throw new Error(`${name} not ready within ${timeoutMs} ms${probe}, ${describeExit(status)}; last output:\n${tail()}`);
      }
      await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())));
    }
  }

  /** Whether it ended within ms; the timer is cleared either way, so that it holds no event loop open. */
  async function endsWithin(ms: number): Promise<boolean> {
    const giveUp = new AbortController();
    const ended = await Promise.race([exited.then(() => true), sleep(ms, giveUp.signal).then(() => false)]);
    giveUp.abort();
    return ended;
  }

  async function stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<ExitStatus> {
    signal(sig);
    if (!(await endsWithin(timeoutMs))) {
      signal('SIGKILL');
      await endsWithin(AFTER_KILL_MS);
    }
    // Only a process stuck in the kernel outlives SIGKILL: say so rather than wait without bound.
    return status ?? { code: null, signal: null, error: new Error(`${name} did not exit after SIGKILL`) };
  }

  return {
    name,
    child,
    pid: child.pid,
    output,
    tail,
    exited,
    exitStatus: () => status,
    signal,
    waitReady,
    stop,
  };
}

/** Spawns and waits until ready; a child that fails to become ready is stopped before this rejects. */
export async function startProcess(options: StartOptions): Promise<StartedProcess> {
  const proc = spawnProcess(options);
  try {
    await proc.waitReady(options.ready, options.readyTimeoutMs, options.pollMs);
  } catch (err) {
    await proc.stop('SIGTERM', options.stopTimeoutMs ?? 5_000);
    throw err;
  }
  return proc;
}

/**
 * A readiness probe: an HTTP GET of `url` answers 2xx within `timeoutMs`. The
 * bound matters: Node 20's fetch never settles when the peer closes right
 * after accepting (a port published before anything listens behind it).
 */
export function httpOk(url: string, timeoutMs = 5_000): () => Promise<boolean> {
  return async () => (await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })).ok;
}

/** A readiness probe: `file` exists. */
export function fileExists(file: string): () => boolean {
  return () => existsSync(file);
}
