import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisQuotaStore } from '../../src/quota/redis-quota-store.js';
import { QUOTA_TTL_MS } from '../../src/quota/quota-store.js';
import { startRedis, type RedisServer } from '../support/helpers.js';
import { T0, quotaStoreContract, testClock } from '../support/quota-contract.js';

let redisServer: RedisServer | undefined;
const clients: Redis[] = [];
async function client(): Promise<Redis> {
  redisServer ??= await startRedis();
  const redis = new Redis(redisServer.url);
  clients.push(redis);
  return redis;
}

quotaStoreContract('redis', async (clock) => createRedisQuotaStore({ redis: await client(), prefix: `q${randomBytes(3).toString('hex')}:`, now: clock.now }));

const MINUTE = 60_000;

describe('Redis quota store', () => {
  it('is one count for every replica: two stores on two connections share each user\'s windows', async () => {
    const clock = testClock(T0);
    const prefix = `r${randomBytes(3).toString('hex')}:`;
    const a = createRedisQuotaStore({ redis: await client(), prefix, now: clock.now });
    const b = createRedisQuotaStore({ redis: await client(), prefix, now: clock.now });
    const limits = { hour: 10, day: null, month: null };
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).check('shared', limits, { count: true })));
    assert.equal(results.filter((r) => r.admitted).length, 10);
    assert.equal((await b.check('shared', limits, { count: false })).usage.hour.used, 10);
  });

  it('keeps at most 117 counters per user (61 minutes, 25 hours, 31 days) in one hash that expires after the month, a few KiB', async () => {
    const clock = testClock(T0);
    const prefix = `m${randomBytes(3).toString('hex')}:`;
    const redis = await client();
    const store = createRedisQuotaStore({ redis, prefix, now: clock.now });
    const unlimited = { hour: null, day: null, month: null };
    // 45 days of a call every hour, then one every minute for an hour: every bucket of every window gets used, and old ones must go.
    const times = [...Array.from({ length: 45 * 24 }, (_, h) => h * 60), ...Array.from({ length: 62 }, (_, m) => 45 * 24 * 60 + m)];
    let fields = 0;
    for (const t of times) {
      clock.set(T0 + t * MINUTE);
      await store.check('busy', unlimited, { count: true });
      fields = Math.max(fields, await redis.hlen(`${prefix}quota:busy`));
    }
    assert.ok(fields <= 117, `${fields} counters`);
    assert.ok(fields >= 100, `only ${fields} counters: the windows were not all filled`);
    const ttl = await redis.pttl(`${prefix}quota:busy`);
    assert.ok(ttl > QUOTA_TTL_MS - 60_000 && ttl <= QUOTA_TTL_MS, String(ttl));
    const bytes = Number(await redis.call('MEMORY', 'USAGE', `${prefix}quota:busy`));
    assert.ok(bytes < 4096, `${bytes} bytes`);
    assert.equal(await redis.call('OBJECT', 'ENCODING', `${prefix}quota:busy`).then(String).then((e) => ['listpack', 'ziplist'].includes(e)), true, 'a compact hash');
    process.stderr.write(`# quota memory for a user with every bucket used: ${fields} counters, ${bytes} bytes (MEMORY USAGE)\n`);
  });

  it('loads its script again after a Redis restart (EVALSHA falls back to EVAL)', async () => {
    const server = await startRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 5 });
    clients.push(redis);
    const store = createRedisQuotaStore({ redis, prefix: 'restart:', now: () => T0 });
    const limits = { hour: 3, day: null, month: null };
    await store.check('u', limits, { count: true });
    await server.restart();
    await new Promise((r) => setTimeout(r, 500));
    const after = await store.check('u', limits, { count: true });
    assert.equal(after.admitted, true);
    assert.equal(after.usage.hour.used, 1, 'a Redis without persistence starts over');
    await server.stop();
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await redisServer?.stop();
});
