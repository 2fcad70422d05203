import { createMemoryState } from '../../src/state/memory-state.js';
import { sharedStateContract } from '../support/state-contract.js';

// The same contract the Redis implementation passes (test/integration/state-redis.test.ts).
sharedStateContract('memory', async (o) => createMemoryState(o));
