/**
 * A sandbox source for the fast tier: leases whose "sandbox" is an in-memory
 * file tree answering the filesystem server's tool names. Chat-level unit
 * tests use it where the real pool would need a Docker engine.
 */
import type { CallToolResult, Tool } from '../../src/protocol/mcp-types.js';
import { SandboxGoneError, SandpoolError } from '../../src/errors.js';
import type { SandboxSource, UserLease } from '../../src/chat/sandbox-leases.js';
import type { ParkEvictReason } from '../../src/pool/types.js';
import { WorkspaceRestoreError, type WorkspaceChannel } from '../../src/mcp/workspace-channel.js';
import { sleep } from '../../src/util/async.js';

const TOOL_NAMES = ['list_directory', 'read_text_file', 'write_file', 'search_files', 'directory_tree', 'create_directory'] as const;

export const FAKE_TOOLS: Tool[] = TOOL_NAMES.map((name) => ({
  name,
  description: `fake ${name}`,
  inputSchema: { type: 'object', properties: { path: { type: 'string' } } },
}));

const text = (t: string, isError = false): CallToolResult => ({ content: [{ type: 'text', text: t }], ...(isError ? { isError: true } : {}) });

export interface FakeSandbox {
  readonly id: string;
  readonly files: Map<string, string>;
  dead: string | undefined;
  released: boolean;
}

export interface FakePool extends SandboxSource {
  tools(): readonly Tool[] | undefined;
  /** Every sandbox handed out, in order. */
  readonly sandboxes: FakeSandbox[];
  /** The next acquires fail with these errors, one each. */
  failNext(...errors: Error[]): void;
  /** Makes acquire take this long. */
  delayMs: number;
  /** Makes the tool catalogue unknown until the first acquire (like a pool that has started nothing). */
  catalogKnown: boolean;
  /** Kills a sandbox: its holder's next call fails with SandboxGoneError. */
  kill(sandbox: FakeSandbox, reason?: string): void;
  /** Sandboxes not released yet. */
  live(): FakeSandbox[];
  /** Paths the sandboxes report (the process runtime's temp dirs differ from /workspace). */
  workspaceDir: string;
  /** Whether the sandboxes offer workspace snapshots (sandpool's image does; others do not). */
  snapshots: boolean;
  /** Whether a lease's park keeps its sandbox (PARK_MAX > 0); off by default: park releases. */
  parking: boolean;
  /** Makes a park take this long (the engine's pause). */
  parkDelayMs: number;
  /** The next resumes fail (the sandbox is released, as the pool removes it). */
  failResumes: number;
  /** Parked sandboxes by user. */
  readonly parked: Map<string, FakeSandbox>;
  /** Evictions told to onParkedEvicted listeners, as the pool would (count, ttl, demand...). */
  evict(userId: string, reason: ParkEvictReason): void;
}

/** The in-memory files as a snapshot: JSON, which a "damaged" archive is not. */
function fakeWorkspace(files: Map<string, string>): WorkspaceChannel {
  return {
    async snapshot(maxBytes) {
      const sizeBytes = [...files.values()].reduce((n, c) => n + Buffer.byteLength(c), 0);
      if (sizeBytes > maxBytes) return { tooLarge: { sizeBytes, maxBytes } };
      return { archive: Buffer.from(JSON.stringify([...files])), files: files.size, sizeBytes };
    },
    async restore(archive) {
      let entries: Array<[string, string]>;
      try {
        entries = JSON.parse(archive.toString('utf8')) as Array<[string, string]>;
      } catch {
        throw new WorkspaceRestoreError('the snapshot is not a readable archive');
      }
      for (const [k, v] of entries) files.set(k, v);
      return { files: entries.length, sizeBytes: entries.reduce((n, [, c]) => n + Buffer.byteLength(c), 0) };
    },
  };
}

export function createFakePool(options: { workspaceDir?: string; snapshots?: boolean } = {}): FakePool {
  const sandboxes: FakeSandbox[] = [];
  const failures: Error[] = [];
  const parked = new Map<string, FakeSandbox>();
  const parkedLeases = new Map<string, UserLease>();
  const listeners: Array<(userId: string, reason: ParkEvictReason) => void> = [];
  let seq = 0;
  const pool: FakePool = {
    sandboxes,
    parking: false,
    parkDelayMs: 0,
    failResumes: 0,
    parked,
    evict(userId, reason) {
      const sb = parked.get(userId);
      if (!sb) return;
      parked.delete(userId);
      parkedLeases.delete(userId);
      sb.released = true;
      for (const l of listeners) l(userId, reason);
    },
    async resume(userId) {
      const sb = parked.get(userId);
      const lease = parkedLeases.get(userId);
      parked.delete(userId);
      parkedLeases.delete(userId);
      if (!sb || !lease) return undefined;
      if (pool.failResumes > 0 || sb.dead) {
        pool.failResumes = Math.max(0, pool.failResumes - 1);
        sb.released = true;
        return undefined;
      }
      return lease;
    },
    evictParked(userId, reason) {
      if (!parked.has(userId)) return false;
      pool.evict(userId, reason);
      return true;
    },
    parkedUsers: () => [...parked.keys()],
    onParkedEvicted: (listener) => void listeners.push(listener),
    delayMs: 0,
    catalogKnown: true,
    snapshots: options.snapshots ?? false,
    workspaceDir: options.workspaceDir ?? '/workspace',
    tools: () => (pool.catalogKnown ? FAKE_TOOLS : undefined),
    failNext: (...errors) => void failures.push(...errors),
    kill(sandbox, reason = 'container exited with code 137') {
      sandbox.dead = reason;
    },
    live: () => sandboxes.filter((s) => !s.released),
    async acquire(): Promise<UserLease> {
      if (pool.delayMs > 0) await sleep(pool.delayMs);
      const failure = failures.shift();
      if (failure) throw failure;
      pool.catalogKnown = true;
      const sb: FakeSandbox = { id: `fake-${++seq}`, files: new Map(), dead: undefined, released: false };
      sandboxes.push(sb);
      const root = pool.workspaceDir;
      const rel = (p: unknown): string => {
        const path = String(p ?? '');
        if (path !== root && !path.startsWith(`${root}/`)) throw new SandpoolError('BAD_REQUEST', `Access denied - path outside allowed directories: ${path}`);
        return path;
      };
      const lease: UserLease = {
        sandbox: {
          id: sb.id,
          workspaceDir: root,
          isUsable: () => !sb.dead && !sb.released,
          failureReason: () => sb.dead ?? (sb.released ? 'the sandbox was released' : undefined),
          workspace: pool.snapshots ? fakeWorkspace(sb.files) : undefined,
        },
        async callTool(name, args) {
          if (sb.released) throw new SandpoolError('SANDBOX_FAILED', 'this sandbox lease was already released');
          if (sb.dead) throw new SandboxGoneError(`sandbox ${sb.id} is gone: ${sb.dead}`);
          try {
            switch (name) {
              case 'write_file':
                sb.files.set(rel(args.path), String(args.content ?? ''));
                return text(`Successfully wrote to ${String(args.path)}`);
              case 'read_text_file': {
                const content = sb.files.get(rel(args.path));
                return content === undefined ? text(`Error: ENOENT: no such file or directory, open '${String(args.path)}'`, true) : text(content);
              }
              case 'list_directory': {
                const dir = rel(args.path);
                const names = [...sb.files.keys()].filter((f) => f.startsWith(`${dir}/`)).map((f) => `[FILE] ${f.slice(dir.length + 1)}`);
                return text(names.join('\n'));
              }
              case 'search_files':
              case 'directory_tree':
                return text(JSON.stringify([...sb.files.keys()]));
              case 'create_directory':
                return text(`Successfully created directory ${String(args.path)}`);
              default:
                throw new Error(`MCP error -32602: Tool ${name} not found`);
            }
          } catch (err) {
            return text(`Error: ${err instanceof Error ? err.message : String(err)}`, true);
          }
        },
        async release() {
          sb.released = true;
        },
        async park(userId) {
          if (pool.parkDelayMs > 0) await sleep(pool.parkDelayMs);
          if (!pool.parking || sb.dead) {
            sb.released = true;
            return false;
          }
          const previous = parked.get(userId);
          if (previous && previous !== sb) pool.evict(userId, 'count');
          parked.set(userId, sb);
          parkedLeases.set(userId, lease);
          return true;
        },
      };
      return lease;
    },
  };
  return pool;
}
