import { SandpoolError } from '../errors.js';
import type { MessageAccepted, RemoteToolCall, ToolApproval, ToolNotice, ToolRun } from '../protocol/events.js';

/**
 * The replica a call was routed to gave no answer in time: it may be dead
 * (its heartbeat has not lapsed yet) or stalled. The caller may wait for its
 * liveness to settle before telling the user to try again. `lateAnswer`: the
 * answer, should it come after all (a routed tool call's reply: a replica of
 * the previous version runs calls without acking them, during a rolling
 * update).
 */
export class ReplicaSilentError<T = unknown> extends SandpoolError {
  constructor(
    readonly target: string,
    readonly lateAnswer?: Promise<T>,
  ) {
    super('SANDBOX_FAILED', `replica ${target}, which holds your sandbox, did not answer; try again`);
  }
}

/** What a replica does with calls other replicas route to it (registered once the chat service exists). */
export interface ReplicaBusHandlers {
  /** Accepts (and runs here) a message of a user whose sandbox this replica holds, under the plan the user came with. */
  message(userId: string, payload: unknown, plan: string | undefined): Promise<MessageAccepted>;
  /** Decides a call pending here; false when this replica holds no such call. */
  approval(userId: string, approval: ToolApproval): Promise<boolean>;
  /** Runs a tool call in the user's sandbox, which this replica holds. */
  tool(userId: string, call: RemoteToolCall, onNotice: (notice: ToolNotice) => void): Promise<ToolRun>;
  /** Releases the user's sandbox here if nothing here holds it any more. */
  release(userId: string): Promise<void>;
  /** Wipes the user's workspace here (their sandbox goes without a snapshot). */
  wipe(userId: string): Promise<void>;
}

/**
 * Replica-to-replica calls, for a user whose sockets (or MCP requests) reach
 * a different replica than the one holding their sandbox or their pending
 * tool call: one workspace per user across replicas.
 */
export interface ReplicaBus {
  /** Runs the message on `target` under `plan`; resolves with its ack, rejects with its SandpoolError (fields included), or ReplicaSilentError when no answer came. */
  forwardMessage(target: string, userId: string, payload: unknown, plan: string): Promise<MessageAccepted>;
  /** Offers the decision to every other replica; true when one of them held that call for this user. */
  forwardApproval(userId: string, approval: ToolApproval): Promise<boolean>;
  /** Runs a tool call on `target`, which holds the user's sandbox. Rejects with SandboxGoneError, a SandpoolError, or ReplicaSilentError when the target did not take the call. */
  runTool(target: string, userId: string, call: RemoteToolCall, onNotice?: (notice: ToolNotice) => void): Promise<ToolRun>;
  /** Tells `target` the user let go here (fire and forget): it releases the sandbox if nothing there holds it. */
  release(target: string, userId: string): void;
  /** Has `target` drop the user's sandbox without a last snapshot; resolves once it has (or did not answer). */
  wipe(target: string, userId: string): Promise<void>;
  serve(handlers: ReplicaBusHandlers): void;
}

/**
 * A single replica has nobody to route to: ownership is always its own, so
 * the chat layer never forwards, and an approval it does not hold is unknown.
 */
export function createSingleReplicaBus(): ReplicaBus {
  const nobody = (): Promise<never> => Promise.reject(new SandpoolError('INTERNAL', 'no other replica to route to (single replica)'));
  return {
    forwardMessage: nobody,
    forwardApproval: async () => false,
    runTool: nobody,
    release() {
      /* the one replica releases by itself */
    },
    wipe: async () => undefined,
    serve() {
      /* nothing is ever routed here */
    },
  };
}
