/**
 * A chat service wired like a replica's, on fakes: the fake sandbox pool,
 * memory state, the single-replica bus (or a given one), the local planner,
 * and an emitter that records every event per user. For the fast tier.
 */
import { createLocalPlanner } from '../../src/agent/local-planner.js';
import type { LlmProvider } from '../../src/agent/types.js';
import { createApprovalRegistry, type ApprovalRegistry } from '../../src/chat/approvals.js';
import { UNOBSERVED_CHAT, createChatService, type ChatService } from '../../src/chat/chat-service.js';
import { createSandboxTools } from '../../src/chat/sandbox-tools.js';
import { createOwnership, type Ownership } from '../../src/chat/ownership.js';
import { createPresences, type Presences } from '../../src/chat/presence.js';
import { createSandboxLeases, type SandboxLeases } from '../../src/chat/sandbox-leases.js';
import type { ChatSettings } from '../../src/chat/settings.js';
import { createToolCatalog } from '../../src/chat/tool-catalog.js';
import { createSingleReplicaBus, type ReplicaBus } from '../../src/cluster/replica-bus.js';
import type { ServerToClientEvents } from '../../src/protocol/events.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import { createNoWorkspaceStore } from '../../src/workspace/workspace-store.js';
import { createWorkspaces, type Workspaces } from '../../src/workspace/workspaces.js';
import type { SharedState } from '../../src/state/types.js';
import { createPlanCatalog, type PlanCatalog } from '../../src/plans/plans.js';
import { createMemoryQuotaStore } from '../../src/quota/memory-quota-store.js';
import { createQuota, type Quota } from '../../src/quota/quota.js';
import { createFakePool, type FakePool } from './fake-pool.js';
import { testLogger } from './helpers.js';

export interface Emitted {
  userId: string;
  event: keyof ServerToClientEvents;
  payload: Record<string, unknown>;
}

export const TEST_CHAT_SETTINGS: ChatSettings = {
  maxRequestsPerUser: 5,
  sessionIdleTimeoutMs: 60_000,
  disconnectGraceMs: 60_000,
  toolApprovalTimeoutMs: 5_000,
  toolCallTimeoutMs: 5_000,
  maxMessageBytes: 1024,
  maxSessions: 100,
  maxAgentSteps: 8,
  socketEventsPerSecond: 20,
};

export interface ChatHarness {
  chat: ChatService;
  presences: Presences;
  leases: SandboxLeases;
  approvals: ApprovalRegistry;
  pool: FakePool;
  state: SharedState;
  ownership: Ownership;
  events: Emitted[];
  /** The first event of this kind for this user matching `match` not taken yet (already emitted or still to come). */
  next(userId: string, event: keyof ServerToClientEvents, match?: (p: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a message (under `plan`, else DEFAULT_PLAN) and approves every tool call of it; resolves with the request's last event. */
  converse(userId: string, text: string, approved?: boolean, plan?: string): Promise<{ requestId: string; results: Array<Record<string, unknown>>; end: Emitted }>;
  close(): Promise<void>;
}

export function createChatHarness(
  options: {
    settings?: Partial<ChatSettings>;
    replicaId?: string;
    bus?: ReplicaBus;
    state?: SharedState;
    provider?: LlmProvider;
    pool?: FakePool;
    isReplicaLive?: (replicaId: string) => Promise<boolean>;
    /** How long a message waits out an owner that did not answer (default: 300 ms, polled every 20). */
    silentOwner?: { lapseMs: number; pollMs: number };
    /** Users' files across sandboxes (default: off). */
    workspaces?: Workspaces;
    /** Plans (default: free and enterprise, DEFAULT_PLAN free, maxInFlight from the settings, workspaceMaxBytes 1 MiB or `workspaceMaxBytes`). */
    plans?: PlanCatalog;
    workspaceMaxBytes?: number;
    /** Quotas (default: counted in memory, closed). */
    quota?: Quota;
  } = {},
): ChatHarness {
  const settings = { ...TEST_CHAT_SETTINGS, ...options.settings };
  const replicaId = options.replicaId ?? 'unit-a';
  const pool = options.pool ?? createFakePool();
  const state = options.state ?? createMemoryState({ maxRequestsPerUser: settings.maxRequestsPerUser, maxSocketsPerUser: 10 });
  const bus = options.bus ?? createSingleReplicaBus();
  const isReplicaLive = options.isReplicaLive ?? (async (id: string) => id === replicaId);
  const logger = testLogger();
  const workspaces = options.workspaces ?? createWorkspaces({ store: createNoWorkspaceStore(), maxBytes: 0, timeoutMs: 1000, logger, observer: { saved: () => undefined, restored: () => undefined } });
  const ownership = createOwnership({ owners: state.owners, replicaId, ownerTtlMs: 60_000, isReplicaLive, logger });
  const leases = createSandboxLeases({ pool, ownership, ensureCurrent: async () => undefined, workspaces, logger });
  const presences = createPresences({ settings, sandbox: leases });
  const approvals = createApprovalRegistry();
  const plans =
    options.plans ??
    createPlanCatalog({
      plans: { free: { callsPerHour: 100, callsPerDay: 1_000, callsPerMonth: 10_000 }, enterprise: { callsPerHour: null, callsPerDay: null, callsPerMonth: null } },
      defaultPlan: 'free',
      maxInFlight: settings.maxRequestsPerUser,
      workspaceMaxBytes: options.workspaceMaxBytes ?? 1_048_576,
    });
  const quotaStore = createMemoryQuotaStore();
  const quota = options.quota ?? createQuota({ store: quotaStore, failMode: 'closed', logger });
  const events: Emitted[] = [];
  const taken = new Set<Emitted>();
  const waiters = new Set<() => void>();
  const silentOwner = options.silentOwner ?? { lapseMs: 300, pollMs: 20 };
  const chat = createChatService({
    settings,
    replicaId,
    provider: options.provider ?? createLocalPlanner(),
    tools: createToolCatalog(pool),
    sandboxTools: createSandboxTools({ presences, leases, bus, ownership, silentOwner, workspaces, quota, plans, isReadOnly: (tool) => ['read_text_file', 'list_directory', 'search_files', 'directory_tree'].includes(tool) }),
    presences,
    leases,
    ownership,
    silentOwner,
    approvals,
    state,
    bus,
    emit: (userId, event, ...payload) => {
      events.push({ userId, event, payload: payload[0] as unknown as Record<string, unknown> });
      for (const w of [...waiters]) w();
    },
    logger,
    observer: UNOBSERVED_CHAT,
    plans,
    quota,
  });

  const next: ChatHarness['next'] = (userId, event, match = () => true, timeoutMs = 5_000) =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = events.find((e) => !taken.has(e) && e.userId === userId && e.event === event && match(e.payload));
        if (!hit) return false;
        taken.add(hit);
        waiters.delete(onEvent);
        clearTimeout(timer);
        resolve(hit.payload);
        return true;
      };
      const onEvent = (): void => void check();
      const timer = setTimeout(() => {
        waiters.delete(onEvent);
        reject(new Error(`no ${event} for ${userId} within ${timeoutMs} ms; saw ${events.map((e) => e.event).join(', ')}`));
      }, timeoutMs);
      if (!check()) waiters.add(onEvent);
    });

  return {
    chat,
    presences,
    leases,
    approvals,
    pool,
    state,
    ownership,
    events,
    next,
    async converse(userId, text, approved = true, plan) {
      const { requestId } = await chat.handleMessage(userId, text, plan === undefined ? undefined : { plan });
      const mine = (p: Record<string, unknown>): boolean => p.requestId === requestId;
      const ended = (): Emitted | undefined => events.find((e) => e.userId === userId && (e.event === 'message:done' || e.event === 'request:error') && mine(e.payload));
      /** The next untaken event of this request among `kinds`, or the request's end. */
      const nextOf = (kinds: ReadonlyArray<keyof ServerToClientEvents>): Promise<Emitted> =>
        new Promise((resolve) => {
          const look = (): void => {
            const hit = events.find((e) => !taken.has(e) && e.userId === userId && kinds.includes(e.event) && mine(e.payload)) ?? ended();
            if (!hit) return;
            waiters.delete(look);
            if (kinds.includes(hit.event)) taken.add(hit);
            resolve(hit);
          };
          waiters.add(look);
          look();
        });
      const results: Array<Record<string, unknown>> = [];
      for (;;) {
        const step = await nextOf(['tool:request']);
        if (step.event !== 'tool:request') return { requestId, results, end: step };
        await chat.handleApproval(userId, { callId: step.payload.callId, approved });
        const result = await nextOf(['tool:result']);
        if (result.event === 'tool:result') results.push(result.payload);
      }
    },
    async close() {
      await chat.shutdown(0);
      await state.close();
      await quotaStore.close();
    },
  };
}
