import assert from 'node:assert/strict';
import { SandpoolError } from '../../src/errors.js';
import type { ContainerPool } from '../../src/pool/container-pool.js';
import type { Lease } from '../../src/pool/types.js';
import { sleep } from '../../src/util/async.js';
import { textOf } from './helpers.js';

/**
 * Assertions about the pool's behaviour shared by the unit tier (fake
 * runtime) and the integration tier (real Docker): the same behaviour, the
 * same checks.
 */

/** Awaits a rejection with a SandpoolError of `code` and returns it. */
/** Everything an error says: the client's message and the log's detail (the engine's reason, the sandbox's stderr). */
export function told(err: SandpoolError): string {
  return `${err.message}\n${err.detail ?? ''}`;
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<SandpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SandpoolError, `expected a SandpoolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** Every acquire failed with SANDBOX_FAILED. */
export function assertAllStartsFailed(results: ReadonlyArray<PromiseSettledResult<Lease>>): void {
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    if (r.status === 'rejected') assert.ok(r.reason instanceof SandpoolError && r.reason.code === 'SANDBOX_FAILED', String(r.reason));
  }
}

/**
 * The oldest acquire (first result) failed with SANDBOX_FAILED carrying
 * `reason`; every younger one got a lease. Returns those leases.
 */
export function assertOnlyOldestFailed(results: ReadonlyArray<PromiseSettledResult<Lease>>, reason: RegExp): Lease[] {
  const [oldest, ...others] = results;
  assert.equal(oldest?.status, 'rejected', 'the oldest waiter was served although a start failed');
  if (oldest?.status === 'rejected') {
    assert.ok(oldest.reason instanceof SandpoolError && oldest.reason.code === 'SANDBOX_FAILED', String(oldest.reason));
    assert.match(told(oldest.reason), reason);
  }
  return others.map((r) => {
    if (r.status === 'rejected') assert.fail(`a younger waiter failed too: ${String(r.reason)}`);
    return r.value;
  });
}

/** The lowest value `read` gave while sampled for `ms`: catches a dip a single look would miss. */
export async function lowestDuring(read: () => number, ms: number, everyMs = 20): Promise<number> {
  let lowest = read();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    lowest = Math.min(lowest, read());
    await sleep(everyMs);
  }
  return lowest;
}

/**
 * Two leases at once never share a sandbox or a file, and a released
 * sandbox's workspace never comes back. Needs the filesystem tools
 * (write_file, read_text_file, list_directory) and two sandboxes free.
 */
export async function assertLeasesIsolated(pool: ContainerPool): Promise<void> {
  const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
  assert.notEqual(a.sandbox.id, b.sandbox.id);
  await a.callTool('write_file', { path: '/workspace/secret-a.txt', content: 'only for A' });
  assert.doesNotMatch(textOf(await b.callTool('list_directory', { path: '/workspace' })), /secret-a/);
  const bRead = await b.callTool('read_text_file', { path: '/workspace/secret-a.txt' });
  assert.equal(bRead.isError, true, "B could read A's file");
  // A used workspace never comes back: the next lease gets a fresh sandbox.
  const aId = a.sandbox.id;
  await a.release();
  const c = await pool.acquire();
  assert.notEqual(c.sandbox.id, aId);
  assert.doesNotMatch(textOf(await c.callTool('list_directory', { path: '/workspace' })), /secret-a/);
  await Promise.all([b.release(), c.release()]);
}
