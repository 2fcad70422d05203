/**
 * A per-user cap on named slots: requests in flight (slot = request id),
 * sockets connected (slot = socket id). A slot is held until released, so it
 * can be released exactly once and a double release cannot free somebody
 * else's slot.
 */
export interface SlotLimiter {
  /**
   * Takes a slot; false when the user already holds the maximum (`max`, or the
   * limiter's own: a plan's maxInFlight). Taking a held slot again succeeds.
   */
  tryAcquire(userId: string, slotId: string, max?: number): Promise<boolean>;
  /** Frees the slot; unknown ids are ignored. */
  release(userId: string, slotId: string): Promise<void>;
  /** Slots the user holds (all replicas). */
  count(userId: string): Promise<number>;
}

export function createMemorySlotLimiter(max: number): SlotLimiter {
  const slots = new Map<string, Set<string>>();
  return {
    async tryAcquire(userId, slotId, cap = max) {
      let mine = slots.get(userId);
      if (!mine) slots.set(userId, (mine = new Set()));
      if (mine.size >= cap && !mine.has(slotId)) {
        if (mine.size === 0) slots.delete(userId);
        return false;
      }
      mine.add(slotId);
      return true;
    },
    async release(userId, slotId) {
      const mine = slots.get(userId);
      if (!mine?.delete(slotId)) return;
      if (mine.size === 0) slots.delete(userId);
    },
    async count(userId) {
      return slots.get(userId)?.size ?? 0;
    },
  };
}
