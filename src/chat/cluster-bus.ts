/**
 * Replica-to-replica calls, for a user whose sockets reach a different
 * replica than the one holding their sandbox or their pending tool call.
 * Implemented over the Socket.IO Redis adapter (serverSideEmit with acks);
 * absent with a single replica.
 */
export interface ClusterBus {
  /** Runs the message on `targetReplica`; resolves with its ack, rejects with its SandpoolError. */
  forwardMessage(targetReplica: string, userId: string, payload: unknown): Promise<{ requestId: string; sessionId: string }>;
  /** Offers the decision to every other replica; true when one of them held that call for this user. */
  forwardApproval(userId: string, approval: { callId: string; approved: boolean }): Promise<boolean>;
}
