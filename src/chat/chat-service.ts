import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ChatSettings } from './settings.js';
import { SandpoolError, errorMessage, toErrorBody, toSandpoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { runAgent } from '../agent/agent-loop.js';
import type { LlmProvider, ToolSpec } from '../agent/types.js';
import type { ContainerPool } from '../pool/container-pool.js';
import type { SharedState } from '../state/types.js';
import type { ApprovalOutcome, ApprovalRegistry } from './approvals.js';
import type { ClusterBus } from './cluster-bus.js';
import type { Session, SessionManager } from './sessions.js';

/** Server -> client event names and payloads (../shared/protocol.md, plus `session`). */
export interface ServerEvents {
  session: (p: SessionInfo) => void;
  'tool:request': (p: { requestId: string; callId: string; tool: string; arguments: Record<string, unknown> }) => void;
  'tool:result': (p: { requestId: string; callId: string; tool: string; ok: boolean; content: string; durationMs: number; approval: ApprovalOutcome }) => void;
  'message:delta': (p: { requestId: string; text: string }) => void;
  'message:done': (p: { requestId: string; text: string }) => void;
  /** Extension: a message of this user was accepted (other tabs show it). */
  'message:accepted': (p: { requestId: string; text: string }) => void;
  /** Extension: a tool call was decided (other tabs lock their buttons before the result). */
  'tool:decided': (p: { requestId: string; callId: string; approved: boolean }) => void;
  'request:error': (p: { requestId: string | null; error: { code: string; message: string } }) => void;
}

export interface SessionInfo {
  sessionId: string;
  userId: string;
  replica: string;
  provider: string;
  model: string;
  tools: string[];
  limits: { maxRequestsPerUser: number; maxMessageBytes: number; toolApprovalTimeoutMs: number };
  /** This user's requests in flight right now (all tabs). */
  inFlight: number;
  /** Tool calls waiting for this user's decision, so a tab that connects late can show them. */
  pending: Array<{ requestId: string; callId: string; tool: string; arguments: Record<string, unknown>; expiresAtMs: number }>;
}

export type EmitToUser = <E extends keyof ServerEvents>(userId: string, event: E, payload: Parameters<ServerEvents[E]>[0]) => void;

/** Hooks for metrics; all optional. */
export interface ChatObserver {
  rejected?(code: string): void;
  approvalWaited?(ms: number, outcome: ApprovalOutcome): void;
  firstToolResult?(ms: number): void;
  requestFinished?(ms: number, outcome: 'done' | 'error'): void;
}

export interface ChatService {
  /** Throws TOO_MANY_REQUESTS when this user would need a session beyond MAX_SESSIONS. */
  checkCapacity(userId: string): void;
  /** A socket of this user connected; refuses at session capacity. */
  connect(userId: string): Promise<SessionInfo>;
  disconnect(userId: string): void;
  /**
   * Validates and accepts a message; the request then runs in the background,
   * on the replica holding the user's sandbox (forwarded there if that is another one).
   */
  handleMessage(userId: string, payload: unknown, options?: { forwarded?: boolean }): Promise<{ requestId: string; sessionId: string }>;
  /** Decides a pending call here, or on the replica that holds it. */
  handleApproval(userId: string, payload: unknown, options?: { forwarded?: boolean }): Promise<void>;
  inFlight(): number;
  /** Refuse new requests, give running ones `graceMs` to finish, fail the rest, end sessions. */
  shutdown(graceMs: number): Promise<void>;
}

const messageSchema = z.union([
  z.string(),
  z.object({ text: z.string({ error: (i) => (i.input === undefined ? 'text is required' : 'text must be a string') }), sessionId: z.string().max(128).optional() }),
]);

const approvalSchema = z.object({
  callId: z.string({ error: (i) => (i.input === undefined ? 'callId is required' : 'callId must be a string') }).min(1).max(128),
  approved: z.boolean({ error: (i) => (i.input === undefined ? 'approved is required' : 'approved must be true or false') }),
});

function badRequest(error: z.ZodError, what: string): SandpoolError {
  const detail = error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  return new SandpoolError('BAD_REQUEST', `${what}: ${detail}`);
}

/** Completed messages kept per conversation (older exchanges are dropped at a user turn). */
const MAX_HISTORY_MESSAGES = 60;

export function createChatService(options: {
  chat: ChatSettings;
  replicaId: string;
  provider: LlmProvider;
  pool: ContainerPool;
  sessions: SessionManager;
  approvals: ApprovalRegistry;
  state: SharedState;
  /** Absent with a single replica. */
  bus?: ClusterBus;
  /** Whether a replica's heartbeat is current, checked now. */
  isReplicaLive: (replicaId: string) => Promise<boolean>;
  emit: EmitToUser;
  logger: Logger;
  observer?: ChatObserver;
}): ChatService {
  const { chat, provider, pool, sessions, approvals, emit, observer, bus } = options;
  const { limiter, conversations, owners, pending } = options.state;
  const log = options.logger.child({ component: 'Chat' });
  const running = new Map<string, Promise<void>>();
  const stopping = new AbortController();
  let accepting = true;

  function knownTools(): ToolSpec[] | undefined {
    return pool.tools()?.map((t) => ({ name: t.name, description: t.description ?? '', inputSchema: t.inputSchema as Record<string, unknown> }));
  }

  /**
   * Tools before any sandbox of this replica has started (POOL_MIN_SIZE=0, the
   * pool off, or still warming): one throwaway sandbox tells them, so a user's
   * own sandbox is still only taken by their first tool call. Once per replica:
   * the pool remembers the catalogue.
   */
  let discovering: Promise<ToolSpec[]> | undefined;
  function discoverTools(): Promise<ToolSpec[]> {
    const known = knownTools();
    if (known) return Promise.resolve(known);
    discovering ??= (async () => {
      const probe = await pool.acquire();
      void probe.release().catch(() => undefined);
      return knownTools() ?? [];
    })().finally(() => (discovering = undefined));
    return discovering;
  }

  async function info(session: Session): Promise<SessionInfo> {
    return {
      inFlight: await limiter.inFlight(session.userId),
      pending: (await pending.list(session.userId).catch(() => approvals.pendingFor(session.userId).map((c) => ({ ...c, replica: options.replicaId })))).map(
        ({ requestId, callId, tool, arguments: args, expiresAtMs }) => ({ requestId, callId, tool, arguments: args, expiresAtMs }),
      ),
      sessionId: await conversations.sessionId(session.userId),
      userId: session.userId,
      replica: options.replicaId,
      provider: provider.name,
      model: provider.model,
      tools: (knownTools() ?? []).map((t) => t.name),
      limits: { maxRequestsPerUser: chat.maxRequestsPerUser, maxMessageBytes: chat.maxMessageBytes, toolApprovalTimeoutMs: chat.toolApprovalTimeoutMs },
    };
  }

  /** Shared-state calls fail with a clear message while Redis is unreachable. */
  async function stateCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof SandpoolError) throw err;
      reject(new SandpoolError('INTERNAL', `shared state (Redis) is unavailable: ${errorMessage(err)}; try again shortly`));
    }
  }

  function reject(err: SandpoolError): never {
    observer?.rejected?.(err.code);
    throw err;
  }

  async function run(session: Session, requestId: string, text: string): Promise<void> {
    const started = performance.now();
    let firstResultSeen = false;
    const signal = AbortSignal.any([session.abort.signal, stopping.signal]);
    // A session with a request running is not idle, however long a tool call or approval takes.
    session.running++;
    try {
      const history = await conversations.history(session.userId);
      const outcome = await runAgent({
        requestId,
        text,
        history,
        provider,
        knownTools: knownTools(),
        discoverTools,
        lease: () => sessions.lease(session),
        approve: async ({ callId, tool, arguments: args }, announce) => {
          const waitStarted = performance.now();
          const expiresAtMs = Date.now() + chat.toolApprovalTimeoutMs;
          // Registered here before anything is announced, so an instant answer finds the call.
          const waiting = approvals.wait({
            userId: session.userId,
            requestId,
            callId,
            tool,
            arguments: args,
            timeoutMs: chat.toolApprovalTimeoutMs,
            signal,
          });
          // Shared, so a tab on any replica sees the call and its decision is routed here.
          await pending
            .add(session.userId, { requestId, callId, tool, arguments: args, expiresAtMs, replica: options.replicaId })
            .catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not share a pending call'));
          announce();
          const outcome = await waiting;
          observer?.approvalWaited?.(performance.now() - waitStarted, outcome);
          void pending.remove(session.userId, callId).catch(() => undefined);
          sessions.touch(session);
          return outcome;
        },
        events: {
          toolRequest: (p) => emit(session.userId, 'tool:request', p),
          toolResult: (p) => {
            if (!firstResultSeen) {
              firstResultSeen = true;
              observer?.firstToolResult?.(performance.now() - started);
            }
            emit(session.userId, 'tool:result', p);
          },
          delta: (p) => emit(session.userId, 'message:delta', p),
        },
        maxSteps: chat.maxAgentSteps,
        toolCallTimeoutMs: chat.toolCallTimeoutMs,
        approvalTimeoutMs: chat.toolApprovalTimeoutMs,
        signal,
      });
      // The answer exists: a history that cannot be saved right now (Redis down) must not swallow it.
      await conversations
        .append(session.userId, outcome.messages, MAX_HISTORY_MESSAGES)
        .catch((err: unknown) => log.warn({ requestId, err: errorMessage(err) }, 'could not save this exchange to the history'));
      emit(session.userId, 'message:done', { requestId, text: outcome.text });
      observer?.requestFinished?.(performance.now() - started, 'done');
    } catch (err) {
      let e = toSandpoolError(err);
      if (stopping.signal.aborted) e = new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down; please send the message again');
      if (e.code === 'INTERNAL') log.error({ err: e.message, requestId }, 'request failed');
      emit(session.userId, 'request:error', { requestId, error: toErrorBody(e) });
      observer?.requestFinished?.(performance.now() - started, 'error');
    } finally {
      session.running--;
      sessions.touch(session);
    }
  }

  return {
    // Connection refusals are counted where they become connect_error (the gateway), not here.
    checkCapacity(userId) {
      if (!sessions.get(userId) && sessions.count() >= chat.maxSessions) {
        throw new SandpoolError('TOO_MANY_REQUESTS', `this replica serves its maximum of ${chat.maxSessions} sessions; try again later`);
      }
    },
    async connect(userId) {
      return info(sessions.socketConnected(userId));
    },
    disconnect(userId) {
      sessions.socketDisconnected(userId);
    },
    async handleMessage(userId, payload, handleOptions) {
      if (!accepting) reject(new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down; reconnect and send again'));
      const parsed = messageSchema.safeParse(payload);
      if (!parsed.success) reject(badRequest(parsed.error, 'message must be a string or { text, sessionId? }'));
      const text = typeof parsed.data === 'string' ? parsed.data : parsed.data.text;
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > chat.maxMessageBytes) {
        reject(new SandpoolError('PAYLOAD_TOO_LARGE', `message is ${bytes} bytes; the limit is ${chat.maxMessageBytes}`));
      }
      if (text.trim() === '') reject(new SandpoolError('BAD_REQUEST', 'message is empty'));
      // One workspace per session: run where the user's sandbox lives while that replica lives.
      if (bus && !handleOptions?.forwarded) {
        const owner = await stateCall(() => owners.owner(userId));
        if (owner && owner !== options.replicaId && (await options.isReplicaLive(owner))) return bus.forwardMessage(owner, userId, payload);
      }
      const session = sessions.get(userId) ?? sessions.open(userId);
      // Before the slot: a request must never run after its sender was told it was refused.
      const sessionId = await stateCall(() => conversations.sessionId(userId));
      const requestId = randomUUID();
      if (!(await stateCall(() => limiter.tryAcquire(userId, requestId)))) {
        reject(
          new SandpoolError(
            'TOO_MANY_REQUESTS',
            `you already have ${chat.maxRequestsPerUser} requests in flight; wait for one to finish (approve or deny pending tool calls)`,
          ),
        );
      }
      sessions.touch(session);
      // Start after the ack is on the wire, so the client sees it before any event of the request.
      const done = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => {
          emit(userId, 'message:accepted', { requestId, text });
          return run(session, requestId, text.trim());
        })
        .finally(() => {
          running.delete(requestId);
          // Shared state may be down right now: the slot then expires on its own (REQUEST_SLOT_TTL_MS).
          return limiter.release(userId, requestId).catch((err: unknown) =>
            log.warn({ requestId, err: errorMessage(err) }, 'could not free a request slot; it expires by itself'),
          );
        });
      running.set(requestId, done);
      return { requestId, sessionId };
    },
    async handleApproval(userId, payload, handleOptions) {
      const parsed = approvalSchema.safeParse(payload);
      if (!parsed.success) reject(badRequest(parsed.error, 'tool:approval must be { callId, approved }'));
      try {
        const { requestId } = approvals.decide(userId, parsed.data.callId, parsed.data.approved);
        emit(userId, 'tool:decided', { requestId, callId: parsed.data.callId, approved: parsed.data.approved });
      } catch (err) {
        const e = toSandpoolError(err);
        // Not here: maybe on the replica running that request (only if the shared store knows the call).
        if (e.code === 'UNKNOWN_CALL' && bus && !handleOptions?.forwarded) {
          const shared = await pending.get(userId, parsed.data.callId).catch(() => undefined);
          if (shared && shared.replica !== options.replicaId && (await bus.forwardApproval(userId, parsed.data))) return;
        }
        reject(e);
      }
    },
    inFlight: () => running.size,
    async shutdown(graceMs) {
      const deadline = Date.now() + graceMs;
      accepting = false;
      // New messages are refused from here on; running ones get the grace period.
      const inFlight = [...running.values()];
      if (inFlight.length > 0) {
        log.info({ inFlight: inFlight.length, graceMs }, 'waiting for requests in flight');
        await Promise.race([Promise.allSettled(inFlight), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      }
      stopping.abort();
      await Promise.allSettled([...running.values()]);
      await sessions.closeAll('shutdown');
    },
  };
}
