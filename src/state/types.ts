import type { ReplicaRecord } from '../cluster/replica-record.js';
import type { ChatMessage } from '../model/conversation.js';
import type { PendingToolCall } from '../protocol/events.js';
import type { EventBudget } from './event-budget.js';
import type { SlotLimiter } from './slot-limiter.js';

export type { EventBudget, SlotLimiter };

/** A user's conversation, shared by every replica. */
export interface ConversationStore {
  /** The id of the user's conversation (the wire's `sessionId`), created (unpredictable) on first use. */
  conversationId(userId: string): Promise<string>;
  history(userId: string): Promise<ChatMessage[]>;
  /** Appends a finished exchange; keeps at most `maxMessages`, cut at a user turn. */
  append(userId: string, messages: readonly ChatMessage[], maxMessages: number): Promise<void>;
}

/** A tool call waiting for its user's decision, as every replica can see it. */
export interface PendingCall extends PendingToolCall {
  /** The replica running the request (the one that can decide it). */
  replica: string;
}

/** Pending approvals, shared so any replica can list and route them. */
export interface PendingStore {
  add(userId: string, call: PendingCall): Promise<void>;
  remove(userId: string, callId: string): Promise<void>;
  /** The user's calls that have not expired. */
  list(userId: string): Promise<PendingCall[]>;
  get(userId: string, callId: string): Promise<PendingCall | undefined>;
}

/** Which replica holds a user's sandbox: one workspace per user while that replica lives. */
export interface OwnershipStore {
  /** Sets the owner unless another replica holds it; returns the owner after the call. */
  claim(userId: string, replicaId: string, ttlMs: number): Promise<string>;
  owner(userId: string): Promise<string | undefined>;
  /** Drops the record if it is still this replica's. */
  release(userId: string, replicaId: string): Promise<void>;
  /**
   * Keeps this replica's records alive, re-creating any that vanished (a Redis
   * restart without persistence). Resolves with the users whose record now
   * names another replica: their sandbox here must be given up.
   */
  renew(userIds: readonly string[], replicaId: string, ttlMs: number): Promise<string[]>;
}


export interface DeadReplica {
  replica: string;
  /** When its last heartbeat was written. */
  lastSeenAtMs: number;
  /**
   * The node (machine, engine) it ran on, as it published (NODE_NAME): its
   * containers are on that node's engine, which only that node's replicas reach.
   */
  node?: string;
}

/** Replica liveness and published stats (heartbeats with expiry). */
export interface ReplicaRegistry {
  heartbeat(record: ReplicaRecord, ttlMs: number): Promise<void>;
  /** Replicas whose heartbeat has not expired, with their records; a record that is not of the declared shape is skipped (and logged). */
  live(): Promise<ReplicaRecord[]>;
  /** Whether that replica's heartbeat is current, read now (not from a cached view). */
  isLive(replicaId: string): Promise<boolean>;
  /** Replicas that announced themselves but whose heartbeat expired, not yet buried, with their last beat. */
  dead(): Promise<DeadReplica[]>;
  /** Forgets a dead replica (after its containers were removed). */
  bury(replicaId: string): Promise<void>;
  leave(replicaId: string): Promise<void>;
}

/** Everything replicas share: in memory for one replica, in Redis for several. */
export interface SharedState {
  readonly kind: 'memory' | 'redis';
  /** Requests in flight per user (MAX_REQUESTS_PER_USER). */
  readonly limiter: SlotLimiter;
  /** Sockets connected per user, all replicas (MAX_SOCKETS_PER_USER). */
  readonly sockets: SlotLimiter;
  /** Socket events per user per second, all replicas (SOCKET_EVENTS_PER_SECOND). */
  readonly events: EventBudget;
  readonly conversations: ConversationStore;
  readonly owners: OwnershipStore;
  readonly pending: PendingStore;
  readonly replicas: ReplicaRegistry;
  /** true when the store answers (always for memory). */
  healthy(): boolean;
  close(): Promise<void>;
}

