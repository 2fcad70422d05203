/**
 * Per-user cap on requests in flight. Each accepted request holds a named slot
 * (its request id) until it ends, so a slot can be released exactly once and
 * a double release cannot free somebody else's slot.
 */
export interface RequestLimiter {
  /** Takes a slot for requestId; false when the user already has `max` in flight. */
  tryAcquire(userId: string, requestId: string): Promise<boolean>;
  /** Frees the slot; unknown ids are ignored. */
  release(userId: string, requestId: string): Promise<void>;
  inFlight(userId: string): Promise<number>;
}

export function createMemoryRequestLimiter(max: number): RequestLimiter {
  const slots = new Map<string, Set<string>>();
  return {
    async tryAcquire(userId, requestId) {
      let mine = slots.get(userId);
      if (!mine) slots.set(userId, (mine = new Set()));
      if (mine.size >= max && !mine.has(requestId)) return false;
      mine.add(requestId);
      return true;
    },
    async release(userId, requestId) {
      const mine = slots.get(userId);
      if (!mine?.delete(requestId)) return;
      if (mine.size === 0) slots.delete(userId);
    },
    async inFlight(userId) {
      return slots.get(userId)?.size ?? 0;
    },
  };
}
