import { createMemoryQuotaStore } from '../../src/quota/memory-quota-store.js';
import { quotaStoreContract } from '../support/quota-contract.js';

// The same contract the Redis store passes (test/integration/quota-redis.test.ts).
quotaStoreContract('memory', async (clock) => createMemoryQuotaStore({ now: clock.now }));
