import { createInterface } from 'node:readline';
import { Client, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { SandboxGoneError, SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ToolNotice } from '../protocol/events.js';
import type { CallToolResult, Tool } from '../protocol/mcp-types.js';
import type { ContainerRuntime, SandboxProcess, SandboxSpec } from '../runtime/types.js';
import { StreamTransport } from './stream-transport.js';
import { workspaceChannelOf, type WorkspaceChannel } from './workspace-channel.js';

/** Options of startSandbox. */
export interface StartSandboxOptions {
  logger: Logger;
  /** Bound on MCP initialize + tools/list. Default 15000. */
  initTimeoutMs?: number;
  /** stderr lines logged per sandbox before the rest is dropped (a chatty server must not flood the log). Default 200. */
  maxLoggedStderrLines?: number;
}

/** Options of one tool call in a sandbox. */
export interface SandboxCallOptions {
  /** Default 60000. */
  timeoutMs?: number;
  /**
   * What the sandbox's server says while the call runs: its progress
   * notifications for this call (asked for with a progress token), and its
   * logging notifications while this call is in flight (stdio logging is not
   * tied to a request: every call in flight on the sandbox hears them).
   */
  onNotice?: (notice: ToolNotice) => void;
}

/** A running sandbox with a connected MCP client and its tool list (cached at warm-up). */
export interface Sandbox {
  readonly id: string;
  readonly workspaceDir: string;
  readonly tools: readonly Tool[];
  readonly client: Client;
  readonly process: SandboxProcess;
  /** Local check, no engine call: false once the process exited (stdio closed, or the engine's event said so) or the MCP connection closed. */
  isUsable(): boolean;
  /** Why the sandbox is no longer usable, when it is not. */
  failureReason(): string | undefined;
  /**
   * Rejects with SandboxGoneError when the sandbox is gone (before or during
   * the call), with a plain SANDBOX_FAILED SandpoolError when only this call
   * failed (e.g. it timed out) and the sandbox is still usable.
   */
  callTool(name: string, args: Record<string, unknown>, options?: SandboxCallOptions): Promise<CallToolResult>;
  /** Snapshot and restore of /workspace, when the sandbox's server offers them (sandpool's image does). */
  readonly workspace: WorkspaceChannel | undefined;
  /** Freezes it (the runtime's pause), memory, processes and /workspace kept, for its user's return. */
  park(): Promise<void>;
  /**
   * Thaws a parked sandbox and checks it answers (an MCP ping within
   * timeoutMs). Rejects when either fails: the caller removes it and starts
   * the user a fresh one from their snapshot.
   */
  resume(timeoutMs: number): Promise<void>;
  destroy(): Promise<void>;
}

/** What a client reads when a start fails (the engine's reason and the sandbox's stderr go to the log). */
const START_FAILED = 'a sandbox could not be started; try again shortly';
/** What a client reads when its sandbox died under it. */
const GONE = 'your sandbox stopped working (its container went away); send the message again to continue in a fresh one';

export async function startSandbox(runtime: ContainerRuntime, spec: SandboxSpec, options: StartSandboxOptions): Promise<Sandbox> {
  const initTimeoutMs = options.initTimeoutMs ?? 15_000;
  const maxLines = options.maxLoggedStderrLines ?? 200;
  const proc = await runtime.start(spec).catch((err: unknown) => {
    throw new SandpoolError('SANDBOX_FAILED', START_FAILED, { cause: err, detail: `the engine could not start ${spec.image}: ${errorMessage(err)}` });
  });
  const shortId = proc.id.slice(0, 12);
  const log = options.logger.child({ sandbox: shortId });

  const stderrTail: string[] = [];
  let logged = 0;
  createInterface({ input: proc.stderr, crlfDelay: Infinity }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
    if (logged < maxLines) log.info({ stream: 'stderr' }, line);
    else if (logged === maxLines) log.warn({ stream: 'stderr' }, `further stderr of sandbox ${shortId} is not logged`);
    logged++;
  });

  let closedReason: string | undefined;
  void proc.exited.then((info) => {
    closedReason ??= info.reason;
  });

  const transport = new StreamTransport(proc.stdout, proc.stdin);
  // The default, plain 2025 handshake (no server/discover probe): the image's
  // server speaks stdio MCP 2025-11-25, and a probe would cost a round trip at
  // every start for nothing.
  const client = new Client({ name: 'sandpool', version: '0.1.0' }, { capabilities: {} });
  /** The calls in flight that listen to what the server says (see SandboxCallOptions.onNotice). */
  const listeners = new Set<(notice: ToolNotice) => void>();
  client.setNotificationHandler('notifications/message', (n) => {
    if (listeners.size === 0) return;
    const notice: ToolNotice = { kind: 'log', level: n.params.level, data: n.params.data, ...(n.params.logger === undefined ? {} : { logger: n.params.logger }) };
    for (const listener of listeners) listener(notice);
  });
  client.onclose = () => {
    closedReason ??= transport.closeError ? `the MCP connection closed: ${transport.closeError.message}` : 'the MCP connection closed';
  };
  client.onerror = (err) => log.warn({ err: errorMessage(err) }, 'MCP transport error');

  const describeFailure = (err: unknown): string => {
    const tail = stderrTail.length > 0 ? `; stderr: ${stderrTail.slice(-5).join(' | ')}` : '';
    return `${errorMessage(err)}${closedReason ? ` (${closedReason})` : ''}${tail}`;
  };

  let tools: Tool[];
  try {
    await client.connect(transport, { timeout: initTimeoutMs });
    tools = [];
    let cursor: string | undefined;
    do {
      // A plain request, not client.listTools(): that one also compiles a JSON
      // Schema validator (ajv) for every tool's output schema, in this process,
      // at every start (~20 ms of CPU for the filesystem server's 14 tools).
      // Those validators would only check what the sandbox says against what
      // the same sandbox declared; the results are passed on as they are.
      const page = await client.request({ method: 'tools/list', params: cursor ? { cursor } : {} }, { timeout: initTimeoutMs });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
  } catch (err) {
    // Wait briefly for the exit reason: it is the most useful part of the error.
    await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 200))]);
    await proc.destroy().catch(() => undefined);
    await client.close().catch(() => undefined);
    throw new SandpoolError('SANDBOX_FAILED', START_FAILED, {
      cause: err,
      detail: `sandbox ${shortId} from ${spec.image} did not initialize MCP: ${describeFailure(err)}`,
    });
  }

  let destroyed = false;
  /** Set when sandpool removed it for what it did (it overran the snapshot bounds). */
  let removedReason: string | undefined;
  const sandbox: Sandbox = {
    id: proc.id,
    workspaceDir: proc.workspaceDir,
    tools,
    client,
    process: proc,
    isUsable: () => !destroyed && closedReason === undefined && !proc.hasExited(),
    failureReason: () => removedReason ?? (destroyed ? 'the sandbox was released' : closedReason),
    // A sandbox that floods the snapshot channel is broken or hostile: it goes at once.
    workspace: workspaceChannelOf(client, transport, (detail) => {
      removedReason ??= `removed: ${detail}`;
      log.warn({ detail }, 'sandbox sent more than a snapshot may hold: removing it');
      void sandbox.destroy().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not remove a sandbox that overran its snapshot bounds'));
    }),
    async callTool(name, args, callOptions) {
      if (!sandbox.isUsable()) {
        throw new SandboxGoneError(GONE, { detail: `sandbox ${shortId} is gone: ${sandbox.failureReason() ?? 'unknown reason'}` });
      }
      const onNotice = callOptions?.onNotice;
      if (onNotice) listeners.add(onNotice);
      try {
        // A plain request, not client.callTool(): that one looks the tool up in
        // its response cache for an output validator and header mirroring, which
        // the sandbox's own answers, passed on as they are, do not need.
        return (await client.request(
          { method: 'tools/call', params: { name, arguments: args } },
          {
            timeout: callOptions?.timeoutMs ?? 60_000,
            ...(onNotice ? { onprogress: (p) => onNotice({ kind: 'progress', progress: p.progress, ...(p.total === undefined ? {} : { total: p.total }), ...(p.message === undefined ? {} : { message: p.message }) }) } : {}),
          },
        )) as CallToolResult;
      } catch (err) {
        // The SDK fails every pending request with ConnectionClosed when the
        // transport closes (the process exited, or its stdout broke the protocol).
        const connectionClosed = err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed;
        if (connectionClosed || !sandbox.isUsable()) {
          // Give the exit a moment to be observed so the holder learns why.
          await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 500))]);
          throw new SandboxGoneError(GONE, { cause: err, detail: `sandbox ${shortId} failed during ${name}: ${describeFailure(err)}` });
        }
        // The tool server's own answer (a bad path, a timeout): the model and the user can act on it.
        throw new SandpoolError('SANDBOX_FAILED', `tool ${name} failed: ${errorMessage(err)}`, { cause: err });
      } finally {
        if (onNotice) listeners.delete(onNotice);
      }
    },
    async park() {
      if (!sandbox.isUsable()) throw new SandboxGoneError(GONE, { detail: `sandbox ${shortId} is gone: ${sandbox.failureReason() ?? 'unknown reason'}` });
      await proc.pause();
    },
    async resume(timeoutMs) {
      await proc.resume();
      // Thawed is not alive: the server must answer before the user's call goes to it.
      await client.ping({ timeout: timeoutMs });
      if (!sandbox.isUsable()) throw new SandboxGoneError(GONE, { detail: `sandbox ${shortId} is gone: ${sandbox.failureReason() ?? 'unknown reason'}` });
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await client.close().catch(() => undefined);
      await proc.destroy();
    },
  };
  return sandbox;
}
