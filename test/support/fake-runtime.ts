import { PassThrough } from 'node:stream';
import { McpServer } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { z } from 'zod';
import type { ContainerRuntime, ContainerSummary, ExitInfo, SandboxProcess, SandboxSpec } from '../../src/runtime/types.js';
import { sleep } from '../../src/util/async.js';

/**
 * Faults a test switches on and off while the pool runs; read at the moment
 * they matter (a start, a destroy), so changing them mid-test takes effect for
 * the next start or destroy.
 */
export interface FakeFaults {
  /** Every start takes this long before it succeeds or fails. */
  startDelayMs: number;
  /** Given the 1-based number of the start, a reason to reject it with, or undefined to let it succeed. */
  failStart: ((attempt: number) => string | undefined) | undefined;
  /** While set, destroying a container waits for it (an engine that does not answer). */
  destroyGate: Promise<void> | undefined;
  /** When set, an unpause fails with this reason (the container stays frozen). */
  failResume: string | undefined;
}

export interface FakeCounts {
  /** start() calls, failed ones included. */
  starts: number;
  failedStarts: number;
  /** Containers destroyed or removed (each counted once). */
  removed: number;
  startsInFlight: number;
  peakStartsInFlight: number;
  /** Removals that began while a start was in flight. */
  removedDuringStarts: number;
}

/** One fake container: an in-process MCP server with its own in-memory files. */
export interface FakeContainer {
  readonly id: string;
  readonly spec: SandboxSpec;
  readonly files: Map<string, string>;
  running(): boolean;
  removed(): boolean;
  /** Frozen (docker pause): its server reads nothing until resumed. */
  paused(): boolean;
}

export interface FakeRuntime extends ContainerRuntime {
  readonly faults: FakeFaults;
  readonly counts: FakeCounts;
  /** Every container ever started, oldest first. */
  containers(): readonly FakeContainer[];
  /** Containers started and not removed yet (what `docker ps -a` would list). */
  present(): FakeContainer[];
  /**
   * The container dies, like `docker kill`. How the pool learns it:
   * - `loud` (default): its stdio ends at once;
   * - `event`: only the engine's event stream says so (hasExited() turns true,
   *   `exited` settles), its stdio stays open;
   * - `unnoticed`: nothing says so until someone writes to it: then its stdio
   *   ends (a death racing the hand-out, found on first use).
   */
  crash(id: string, options?: { how?: CrashNotice }): void;
}

export type CrashNotice = 'loud' | 'event' | 'unnoticed';

interface LiveContainer extends FakeContainer {
  readonly process: SandboxProcess;
  destroy(): Promise<void>;
  die(reason: string, how: CrashNotice): void;
  summary(): ContainerSummary;
}

/** The tools every fake container serves: the filesystem server's names for the first three. */
export const FAKE_TOOLS = ['write_file', 'read_text_file', 'list_directory', 'wait', 'report', 'flood'] as const;

/** Past the MCP SDK's 10 MiB read buffer, without a newline. */
const FLOOD_BYTES = 11 * 1024 * 1024;

/**
 * A ContainerRuntime without Docker: each "container" is a real MCP server
 * from the SDK, in this process, speaking over PassThrough streams, so the
 * pool and the sandbox's MCP client run exactly as they do against Docker.
 */
export function createFakeRuntime(initial: Partial<FakeFaults> = {}): FakeRuntime {
  const faults: FakeFaults = { startDelayMs: 0, failStart: undefined, destroyGate: undefined, failResume: undefined, ...initial };
  const counts: FakeCounts = { starts: 0, failedStarts: 0, removed: 0, startsInFlight: 0, peakStartsInFlight: 0, removedDuringStarts: 0 };
  const all: LiveContainer[] = [];
  let seq = 0;

  function makeContainer(spec: SandboxSpec): LiveContainer {
    const id = `fake-${String(++seq).padStart(4, '0')}-${spec.name}`;
    const files = new Map<string, string>();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const createdAtMs = Date.now();
    let exitedFlag = false;
    let engineSaysDead = false;
    let removedFlag = false;
    let pausedFlag = false;
    let destroying: Promise<void> | undefined;
    let resolveExited: (info: ExitInfo) => void = () => undefined;
    const exited = new Promise<ExitInfo>((resolve) => (resolveExited = resolve));

    // logging: the `report` tool sends log messages.
    const server = new McpServer({ name: 'sandpool-fake', version: '1.0.0' }, { capabilities: { logging: {} } });
    const text = (t: string): { content: Array<{ type: 'text'; text: string }> } => ({ content: [{ type: 'text', text: t }] });
    server.registerTool('write_file', { inputSchema: z.object({ path: z.string(), content: z.string() }) }, ({ path, content }) => {
      files.set(path, content);
      return text(`wrote ${path}`);
    });
    server.registerTool('read_text_file', { inputSchema: z.object({ path: z.string() }) }, ({ path }) => {
      const content = files.get(path);
      return content === undefined ? { ...text(`no such file: ${path}`), isError: true } : text(content);
    });
    server.registerTool('list_directory', { inputSchema: z.object({ path: z.string() }) }, () =>
      text([...files.keys()].map((p) => `[FILE] ${p.split('/').pop() ?? p}`).join('\n')),
    );
    // Ends early when the call is cancelled or the server closes: a crashed
    // container's timer must not keep the test process alive.
    server.registerTool('wait', { inputSchema: z.object({ ms: z.number() }) }, async ({ ms }, ctx) => {
      await sleep(ms, ctx.mcpReq.signal);
      return text(`waited ${ms} ms`);
    });
    // Says how far it got (progress, for the call's token) and a log line, as a long call does.
    server.registerTool('report', { inputSchema: z.object({ steps: z.number() }) }, async ({ steps }, ctx) => {
      const token = ctx.mcpReq._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        if (token !== undefined) await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress: step, total: steps, message: `step ${step}` } });
      }
      await ctx.mcpReq.log('info', `reported ${steps} steps`, 'fake');
      return text(`reported ${steps} steps`);
    });
    server.registerTool('flood', { inputSchema: z.object({}) }, () => {
      stdout.write(Buffer.alloc(FLOOD_BYTES, 'x'));
      return text('flooded');
    });
    void server.connect(new StdioServerTransport(stdin, stdout));

    let stdioEnded = false;
    function endStdio(): void {
      if (stdioEnded) return;
      stdioEnded = true;
      void server.close().catch(() => undefined);
      stdout.end();
      stderr.end();
    }
    function markExited(reason: string): void {
      if (exitedFlag) return;
      exitedFlag = true;
      resolveExited({ exitCode: 137, reason });
    }

    function die(reason: string, how: CrashNotice): void {
      engineSaysDead = true;
      if (how === 'unnoticed') {
        if (exitedFlag) return;
        // The server is gone; whatever is written to it next finds that out.
        stdin.removeAllListeners('data');
        stdin.once('data', () => {
          markExited(reason);
          endStdio();
        });
        return;
      }
      markExited(reason);
      if (how === 'loud') endStdio();
    }

    function destroy(): Promise<void> {
      destroying ??= (async () => {
        if (faults.destroyGate) await faults.destroyGate;
        if (counts.startsInFlight > 0) counts.removedDuringStarts++;
        die('container removed', 'loud');
        removedFlag = true;
        counts.removed++;
      })();
      return destroying;
    }

    return {
      id,
      spec,
      files,
      running: () => !engineSaysDead,
      removed: () => removedFlag,
      paused: () => pausedFlag,
      die,
      destroy,
      summary: () => ({ id, name: spec.name, labels: spec.labels, createdAtMs, running: !engineSaysDead }),
      process: {
        id,
        workspaceDir: '/workspace',
        stdin,
        stdout,
        stderr,
        exited,
        hasExited: () => exitedFlag,
        async pause() {
          if (removedFlag || engineSaysDead) throw new Error(`container ${id} is not running`);
          // What it is sent waits unread, as in a frozen cgroup.
          pausedFlag = true;
          stdin.pause();
        },
        async resume() {
          if (faults.failResume !== undefined) throw new Error(faults.failResume);
          if (removedFlag) throw new Error(`no such container: ${id}`);
          pausedFlag = false;
          stdin.resume();
        },
        destroy,
      },
    };
  }

  const byId = (id: string): LiveContainer | undefined => all.find((c) => c.id === id);

  return {
    kind: 'docker',
    isolated: true,
    faults,
    counts,
    async ping() {
      /* always answers */
    },
    async start(spec) {
      const attempt = ++counts.starts;
      counts.startsInFlight++;
      counts.peakStartsInFlight = Math.max(counts.peakStartsInFlight, counts.startsInFlight);
      try {
        if (faults.startDelayMs > 0) await sleep(faults.startDelayMs);
        const reason = faults.failStart?.(attempt);
        if (reason !== undefined) {
          counts.failedStarts++;
          throw new Error(reason);
        }
        const container = makeContainer(spec);
        all.push(container);
        return container.process;
      } finally {
        counts.startsInFlight--;
      }
    },
    async list(labels) {
      return all.filter((c) => !c.removed() && Object.entries(labels).every(([k, v]) => c.spec.labels[k] === v)).map((c) => c.summary());
    },
    async remove(id) {
      await byId(id)?.destroy();
    },
    async isRunning(id) {
      const c = byId(id);
      return c && !c.removed() ? c.running() : undefined;
    },
    containers: () => all,
    present: () => all.filter((c) => !c.removed()),
    crash(id, options) {
      const c = byId(id);
      if (!c) throw new Error(`no fake container ${id}`);
      c.die('container exited with code 137 (killed by the test)', options?.how ?? 'loud');
    },
  };
}
