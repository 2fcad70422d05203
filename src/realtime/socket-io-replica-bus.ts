import { randomUUID } from 'node:crypto';
import { SandboxGoneError, SandpoolError, fromErrorBody, toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ForwardedMessageAck, ToolNotice, ToolRun } from '../protocol/events.js';
import { ReplicaSilentError, type ReplicaBus, type ReplicaBusHandlers } from '../cluster/replica-bus.js';
import type { SandpoolIo } from './socket-server.js';

export interface SocketIoReplicaBusOptions {
  io: SandpoolIo;
  replicaId: string;
  logger: Logger;
  /** A routed tool call is given up after its own timeout plus this (acquiring a sandbox, the hop). */
  toolCallSlackMs: number;
}

/**
 * The replica bus over the Socket.IO Redis adapter. Messages and approvals
 * are answered at once by every replica (serverSideEmitWithAck, bounded by
 * the adapter's requestsTimeout); tool calls can run for a minute, so they
 * are a request, acked at once on receipt, and a reply event with this
 * replica's own timeout.
 */
/** What the replicas that did answer said, when some did not in time (the adapter rejects with them attached). */
function answeredBeforeTimeout<R>(err: unknown): R[] {
  return (err as { responses?: R[] }).responses ?? [];
}

export function createSocketIoReplicaBus(options: SocketIoReplicaBusOptions): ReplicaBus {
  const { io, replicaId } = options;
  const log = options.logger.child({ component: 'ReplicaBus' });
  const waiting = new Map<string, { resolve(run: ToolRun): void; reject(err: Error): void; onNotice: ((notice: ToolNotice) => void) | undefined }>();

  io.on('sandpool:tool-notice', ({ origin, id, notice }) => {
    if (origin !== replicaId) return;
    waiting.get(id)?.onNotice?.(notice);
  });

  io.on('sandpool:tool-reply', ({ origin, id, outcome }) => {
    if (origin !== replicaId) return;
    const waiter = waiting.get(id);
    if (!waiter) return;
    waiting.delete(id);
    if (outcome.ok) waiter.resolve({ result: outcome.result, startedFresh: outcome.startedFresh });
    else waiter.reject(outcome.gone ? new SandboxGoneError(outcome.error.message) : fromErrorBody(outcome.error));
  });

  return {
    async forwardMessage(target, userId, payload, plan) {
      // A replica that did not answer in time: the target may still have.
      const responses = await io.serverSideEmitWithAck('sandpool:message', { target, userId, payload, plan }).catch(answeredBeforeTimeout<ForwardedMessageAck>);
      const answer = responses.find((r): r is NonNullable<ForwardedMessageAck> => r !== null);
      if (!answer) throw new ReplicaSilentError(target);
      if (!answer.ok) throw fromErrorBody(answer.error);
      const { ok: _ok, ...accepted } = answer;
      void _ok;
      return accepted;
    },

    async forwardApproval(userId, approval) {
      const responses = await io.serverSideEmitWithAck('sandpool:approval', { userId, ...approval }).catch(answeredBeforeTimeout<boolean>);
      return responses.some((decided) => decided === true);
    },

    async runTool(target, userId, call, onNotice) {
      const id = randomUUID();
      // Waiting before the emit: a quick reply may come before the acks.
      const reply = new Promise<ToolRun>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new SandpoolError('SANDBOX_FAILED', `replica ${target}, which holds your sandbox, did not answer within ${call.timeoutMs + options.toolCallSlackMs} ms; try again`));
        }, call.timeoutMs + options.toolCallSlackMs);
        waiting.set(id, {
          resolve: (run) => (clearTimeout(timer), resolve(run)),
          reject: (err) => (clearTimeout(timer), reject(err)),
          onNotice,
        });
      });
      // Taken or not is known within the adapter's request timeout, not the call's own: a dead target is waited out by the caller.
      const acks = await io
        .serverSideEmitWithAck('sandpool:tool', { target, origin: replicaId, id, userId, call })
        .catch(answeredBeforeTimeout<boolean>);
      // Not taken: dead, stalled, or a replica of the previous version (no ack); its reply may still come.
      if (!acks.includes(true)) throw new ReplicaSilentError(target, reply);
      return reply;
    },

    release(target, userId) {
      io.serverSideEmit('sandpool:release', { target, userId });
    },

    async wipe(target, userId) {
      await io.serverSideEmitWithAck('sandpool:wipe', { target, userId }).catch(() => undefined);
    },

    serve(handlers: ReplicaBusHandlers) {
      io.on('sandpool:wipe', ({ target, userId }, ack) => {
        if (target !== replicaId) return ack(false);
        handlers.wipe(userId).then(() => ack(true), () => ack(false));
      });
      io.on('sandpool:release', ({ target, userId }) => {
        if (target === replicaId) void handlers.release(userId).catch(() => undefined);
      });
      io.on('sandpool:message', (msg, ack) => {
        if (msg.target !== replicaId) return ack(null);
        handlers.message(msg.userId, msg.payload, msg.plan).then(
          (accepted) => ack({ ok: true, ...accepted }),
          (err: unknown) => ack({ ok: false, error: toClientError(err, log) }),
        );
      });
      io.on('sandpool:approval', (msg, ack) => {
        handlers.approval(msg.userId, { callId: msg.callId, approved: msg.approved }).then(ack, () => ack(false));
      });
      io.on('sandpool:tool', ({ target, origin, id, userId, call }, ack) => {
        // A replica of the previous version emits without an ack (rolling update).
        const answer = typeof ack === 'function' ? ack : (): void => undefined;
        if (target !== replicaId) return answer(false);
        answer(true);
        handlers.tool(userId, call, (notice) => io.serverSideEmit('sandpool:tool-notice', { origin, id, notice })).then(
          (run) => io.serverSideEmit('sandpool:tool-reply', { origin, id, outcome: { ok: true, ...run } }),
          (err: unknown) => {
            // The details stay in this replica's log, under the log id the body carries.
            io.serverSideEmit('sandpool:tool-reply', { origin, id, outcome: { ok: false, error: toClientError(err, log.child({ user: userId })), gone: err instanceof SandboxGoneError } });
          },
        );
      });
    },
  };
}
