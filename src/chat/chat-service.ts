import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CancelledError, SandpoolError, cancellationOf, errorMessage, toClientError, toSandpoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { runAgentLoop, type Approver } from '../agent/agent-loop.js';
import type { LlmProvider } from '../agent/types.js';
import type { ReplicaBus } from '../cluster/replica-bus.js';
import { callOwnerUnlessSilent, type SilentOwnerWait } from '../cluster/silent-owner.js';
import type { Plan, PlanCatalog } from '../plans/plans.js';
import type { Quota } from '../quota/quota.js';
import type { ApprovalVerdict, MessageAccepted, ServerToClientEvents, SessionInfo } from '../protocol/events.js';
import type { SharedState } from '../state/types.js';
import type { ApprovalRegistry } from './approvals.js';
import type { Ownership } from './ownership.js';
import type { Presence, Presences } from './presence.js';
import type { SandboxLeases } from './sandbox-leases.js';
import type { SandboxTools } from './sandbox-tools.js';
import type { ChatSettings } from './settings.js';
import type { ToolCatalog } from './tool-catalog.js';

/** Sends one server event to every socket of a user (any replica). */
export type ChatEmitter = <E extends keyof ServerToClientEvents>(userId: string, event: E, ...payload: Parameters<ServerToClientEvents[E]>) => void;

/** Hooks for metrics. */
export interface ChatObserver {
  /** A refusal (of a message, a connection, an event, an MCP call), with the user's plan when it is known. */
  rejected(code: string, plan?: string): void;
  approvalWaited(ms: number, verdict: ApprovalVerdict): void;
  firstToolResult(ms: number): void;
  /** `refused`: ended by a limit mid-request (QUOTA_EXCEEDED), the client's to wait for, not a fault. */
  requestFinished(ms: number, outcome: 'done' | 'error' | 'cancelled' | 'refused'): void;
}

/** For a chat service nobody measures (tests, embedding). */
export const UNOBSERVED_CHAT: ChatObserver = {
  rejected: () => undefined,
  approvalWaited: () => undefined,
  firstToolResult: () => undefined,
  requestFinished: () => undefined,
};

export interface ChatService {
  /** A socket of this user connected (`plan`: its token's; DEFAULT_PLAN otherwise); refuses beyond MAX_SESSIONS. */
  connect(userId: string, options?: { plan?: string }): Promise<SessionInfo>;
  disconnect(userId: string): void;
  /**
   * Validates and accepts a message; the request then runs in the background,
   * on the replica holding the user's sandbox (routed there if that is another one).
   */
  handleMessage(userId: string, payload: unknown, options?: { routed?: boolean; plan?: string }): Promise<MessageAccepted>;
  /** Decides a pending call here, or on the replica that holds it. Resolves false (routed only) when no such call is here. */
  handleApproval(userId: string, payload: unknown, options?: { routed?: boolean }): Promise<boolean>;
  /** Deletes the user's files: their snapshot and their sandbox, wherever it lives. */
  wipeWorkspace(userId: string): Promise<void>;
  inFlight(): number;
  /** Refuse new requests, give running ones `graceMs` to finish, cancel the rest, end every presence. */
  shutdown(graceMs: number): Promise<void>;
}

export interface ChatServiceOptions {
  settings: ChatSettings;
  replicaId: string;
  provider: LlmProvider;
  tools: ToolCatalog;
  sandboxTools: SandboxTools;
  presences: Presences;
  leases: Pick<SandboxLeases, 'wipe'>;
  /** Where the user's sandbox lives: their work runs there. */
  ownership: Pick<Ownership, 'liveOwnerElsewhere'>;
  /**
   * A dead owner looks live until its heartbeat lapses (`lapseMs` after its
   * last beat). A message its owner did not answer waits that long at most,
   * checking every `pollMs`, for the owner to be known dead (or replaced)
   * before the user is told to try again.
   */
  silentOwner: SilentOwnerWait;
  approvals: ApprovalRegistry;
  state: Pick<SharedState, 'limiter' | 'conversations' | 'pending'>;
  bus: ReplicaBus;
  emit: ChatEmitter;
  logger: Logger;
  observer: ChatObserver;
  plans: PlanCatalog;
  quota: Quota;
}

const messageSchema = z.union([
  z.string(),
  z.object({
    text: z.string({ error: (i) => (i.input === undefined ? 'text is required' : 'text must be a string') }),
    sessionId: z.string().max(128).optional(),
  }),
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

export function createChatService(options: ChatServiceOptions): ChatService {
  const { settings, provider, presences, approvals, emit, observer, bus, tools } = options;
  const { limiter, conversations, pending } = options.state;
  const log = options.logger.child({ component: 'Chat' });
  const running = new Map<string, Promise<void>>();
  const stopping = new AbortController();
  let accepting = true;

  async function info(presence: Presence, plan: Plan): Promise<SessionInfo> {
    const { userId } = presence;
    const shared = await pending.list(userId).catch(() => approvals.pendingFor(userId));
    return {
      inFlight: await limiter.count(userId),
      pending: shared.map(({ requestId, callId, tool, arguments: args, expiresAtMs }) => ({ requestId, callId, tool, arguments: args, expiresAtMs })),
      sessionId: await conversations.conversationId(userId),
      userId,
      replica: options.replicaId,
      provider: provider.name,
      model: provider.model,
      tools: (tools.known() ?? []).map((t) => t.name),
      limits: { maxRequestsPerUser: plan.maxInFlight, maxMessageBytes: settings.maxMessageBytes, toolApprovalTimeoutMs: settings.toolApprovalTimeoutMs },
      plan: plan.name,
    };
  }

  function reject(err: SandpoolError, plan?: Plan): never {
    observer.rejected(err.code, plan?.name);
    throw err;
  }

  /** Shared-state calls fail with a clear message while Redis is unreachable. */
  async function stateCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof SandpoolError) throw err;
      reject(new SandpoolError('INTERNAL', 'shared state (Redis) is unavailable; try again shortly', { cause: err, detail: errorMessage(err) }));
    }
  }

  /** The live replica other than this one holding the user's sandbox, if any; INTERNAL while shared state is unreachable. */
  const ownerElsewhere = (userId: string): Promise<string | undefined> => stateCall(() => options.ownership.liveOwnerElsewhere(userId));

  /**
   * The message on the replica holding the user's sandbox, its silence waited
   * out (cluster/silent-owner.ts). Resolves undefined when nobody live holds
   * the sandbox any more: the message runs here, the user's files from the
   * snapshot.
   */
  async function forwardUnlessSilent(owner: string, userId: string, payload: unknown, plan: string): Promise<MessageAccepted | undefined> {
    const routed = await callOwnerUnlessSilent(owner, (target) => bus.forwardMessage(target, userId, payload, plan), () => ownerElsewhere(userId), options.silentOwner);
    if (routed.owner !== undefined) return routed.answer;
    log.warn({ user: userId, owner }, 'the replica holding the user\'s sandbox went silent and its heartbeat lapsed: serving the user here');
    return undefined;
  }

  function approverFor(presence: Presence, requestId: string, signal: AbortSignal): Approver {
    const { userId } = presence;
    return async ({ callId, tool, arguments: args }, announce) => {
      const waitStarted = performance.now();
      const expiresAtMs = Date.now() + settings.toolApprovalTimeoutMs;
      // Registered here before anything is announced, so an instant answer finds the call.
      const waiting = approvals.wait({ userId, requestId, callId, tool, arguments: args, timeoutMs: settings.toolApprovalTimeoutMs, signal });
      // Shared, so a tab on any replica sees the call and its decision is routed here.
      await pending
        .add(userId, { requestId, callId, tool, arguments: args, expiresAtMs, replica: options.replicaId })
        .catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not share a pending call'));
      announce();
      try {
        const verdict = await waiting;
        observer.approvalWaited(performance.now() - waitStarted, verdict);
        return verdict;
      } finally {
        void pending.remove(userId, callId).catch(() => undefined);
        presence.touch();
      }
    };
  }

  async function run(presence: Presence, requestId: string, text: string, plan: Plan): Promise<void> {
    const { userId } = presence;
    const started = performance.now();
    let firstResultSeen = false;
    const signal = AbortSignal.any([presence.signal, stopping.signal]);
    // A presence with a request running is not idle, however long a tool call or approval takes.
    const done = presence.begin();
    try {
      const history = await conversations.history(userId);
      const outcome = await runAgentLoop({
        requestId,
        text,
        history,
        provider,
        tools: await tools.get(),
        runner: options.sandboxTools.runnerFor(presence, plan),
        approve: approverFor(presence, requestId, signal),
        events: {
          toolRequest: (p) => emit(userId, 'tool:request', p),
          toolResult: (p) => {
            if (!firstResultSeen) {
              firstResultSeen = true;
              observer.firstToolResult(performance.now() - started);
            }
            emit(userId, 'tool:result', p);
          },
          toolProgress: (p) => emit(userId, 'tool:progress', p),
          toolLog: (p) => emit(userId, 'tool:log', p),
          delta: (p) => emit(userId, 'message:delta', p),
        },
        maxSteps: settings.maxAgentSteps,
        toolCallTimeoutMs: settings.toolCallTimeoutMs,
        approvalTimeoutMs: settings.toolApprovalTimeoutMs,
        signal,
      });
      // The answer exists: a history that cannot be saved right now (Redis down) must not swallow it.
      await conversations
        .append(userId, outcome.messages, MAX_HISTORY_MESSAGES)
        .catch((err: unknown) => log.warn({ requestId, err: errorMessage(err) }, 'could not save this exchange to the history'));
      emit(userId, 'message:done', { requestId, text: outcome.text });
      observer.requestFinished(performance.now() - started, 'done');
    } catch (err) {
      // Whatever failed last, a cancelled request is reported as its cancellation (providers see only an abort).
      const cause = signal.aborted ? cancellationOf(signal) : err;
      if (cause instanceof CancelledError) log.info({ requestId, user: userId, reason: cause.reason }, 'request cancelled');
      const error = toClientError(cause, log.child({ requestId }));
      emit(userId, 'request:error', { requestId, error });
      if (error.code === 'QUOTA_EXCEEDED') observer.rejected(error.code, plan.name);
      observer.requestFinished(performance.now() - started, cause instanceof CancelledError ? 'cancelled' : error.code === 'QUOTA_EXCEEDED' ? 'refused' : 'error');
    } finally {
      done();
    }
  }

  return {
    // Connection refusals are counted where they become connect_error (the gateway), not here.
    async connect(userId, connectOptions) {
      return info(presences.attach(userId), options.plans.resolve(connectOptions?.plan));
    },
    disconnect(userId) {
      presences.detach(userId);
    },
    async handleMessage(userId, payload, handleOptions) {
      const plan = options.plans.resolve(handleOptions?.plan);
      if (handleOptions?.plan !== undefined && plan.name !== handleOptions.plan) {
        log.warn({ user: userId, plan: handleOptions.plan, used: plan.name }, 'a routed message names a plan this replica does not have (PLANS_FILE differs between replicas?): DEFAULT_PLAN applies');
      }
      if (!accepting) reject(new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down; reconnect and send again'), plan);
      const parsed = messageSchema.safeParse(payload);
      if (!parsed.success) reject(badRequest(parsed.error, 'message must be a string or { text, sessionId? }'), plan);
      const text = typeof parsed.data === 'string' ? parsed.data : parsed.data.text;
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > settings.maxMessageBytes) reject(new SandpoolError('PAYLOAD_TOO_LARGE', `message is ${bytes} bytes; the limit is ${settings.maxMessageBytes}`), plan);
      if (text.trim() === '') reject(new SandpoolError('BAD_REQUEST', 'message is empty'), plan);
      // One workspace per user: run where the user's sandbox lives while that replica lives.
      if (!handleOptions?.routed) {
        const owner = await ownerElsewhere(userId);
        if (owner) {
          const routed = await forwardUnlessSilent(owner, userId, payload, plan.name);
          if (routed) return routed;
        }
      }
      const presence = presences.open(userId);
      // Before the slot: a request must never run after its sender was told it was refused.
      const conversationId = await stateCall(() => conversations.conversationId(userId));
      // A full window refuses the message itself: it could run no tool.
      let quota: MessageAccepted['quota'];
      try {
        quota = await options.quota.admitMessage(userId, plan);
      } catch (err) {
        reject(toSandpoolError(err), plan);
      }
      const requestId = randomUUID();
      if (!(await stateCall(() => limiter.tryAcquire(userId, requestId, plan.maxInFlight)))) {
        reject(
          new SandpoolError(
            'TOO_MANY_REQUESTS',
            `you already have ${plan.maxInFlight} requests in flight (your ${plan.name} plan's limit); wait for one to finish (approve or deny pending tool calls)`,
          ),
          plan,
        );
      }
      presence.touch();
      // Start after the ack is on the wire, so the client sees it before any event of the request.
      const done = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => {
          emit(userId, 'message:accepted', { requestId, text });
          return run(presence, requestId, text.trim(), plan);
        })
        .finally(() => {
          running.delete(requestId);
          // Shared state may be down right now: the slot then expires on its own (REQUEST_SLOT_TTL_MS).
          return limiter
            .release(userId, requestId)
            .catch((err: unknown) => log.warn({ requestId, err: errorMessage(err) }, 'could not free a request slot; it expires by itself'));
        });
      running.set(requestId, done);
      return { requestId, sessionId: conversationId, ...(quota ? { quota } : {}) };
    },
    async handleApproval(userId, payload, handleOptions) {
      const parsed = approvalSchema.safeParse(payload);
      if (!parsed.success) reject(badRequest(parsed.error, 'tool:approval must be { callId, approved }'));
      try {
        const { requestId } = approvals.decide(userId, parsed.data.callId, parsed.data.approved);
        emit(userId, 'tool:decided', { requestId, callId: parsed.data.callId, approved: parsed.data.approved });
        return true;
      } catch (err) {
        const e = toSandpoolError(err);
        if (e.code !== 'UNKNOWN_CALL') reject(e);
        if (handleOptions?.routed) return false;
        // Not here: maybe on the replica running that request (only if the shared store knows the call).
        const shared = await pending.get(userId, parsed.data.callId).catch(() => undefined);
        if (shared && shared.replica !== options.replicaId && (await bus.forwardApproval(userId, parsed.data))) return true;
        reject(e);
      }
    },
    async wipeWorkspace(userId) {
      const owner = await ownerElsewhere(userId);
      // The replica holding the sandbox drops it first, so no save of it lands after the wipe.
      if (owner) await bus.wipe(owner, userId);
      await options.leases.wipe(userId);
      log.info({ user: userId }, 'workspace wiped');
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
      stopping.abort(new CancelledError('shutdown'));
      await Promise.allSettled([...running.values()]);
      await presences.closeAll();
    },
  };
}
