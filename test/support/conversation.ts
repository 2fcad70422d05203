import assert from 'node:assert/strict';
import { sleep } from '../../src/util/async.js';
import { emitAck, nextEvent, type ClientSocket } from './helpers.js';

/**
 * Sends a message and approves every tool call it asks for, from `approver`
 * (default: the same socket); resolves with the tool results' contents and
 * the final answer. A refused message or a request:error fails it with the
 * code and message.
 */
export async function converse(socket: ClientSocket, text: string, timeoutMs = 30_000, approver: ClientSocket = socket): Promise<{ contents: string[]; done: string }> {
  const ack = await emitAck(socket, 'message', text);
  assert.equal(ack.ok, true, `"${text}" refused: ${JSON.stringify(ack)}`);
  const mine = (p: { requestId: string | null }): boolean => p.requestId === ack.requestId;
  // The waits that lose their race are stopped on the way out: a pending one's timer would keep the test's
  // process alive until it fires (up to timeoutMs after the file's last test; seen: 55 s per file).
  const stop = new AbortController();
  try {
    const done = nextEvent(socket, 'message:done', mine, timeoutMs, stop.signal);
    const failed = nextEvent(socket, 'request:error', mine, timeoutMs, stop.signal).then((e) => {
      throw new Error(`"${text}" failed: ${e.error.code}: ${e.error.message}`);
    });
    done.catch(() => undefined);
    failed.catch(() => undefined);
    const contents: string[] = [];
    for (;;) {
      const next = await Promise.race([done.then(() => null), failed, nextEvent(approver, 'tool:request', mine, timeoutMs, stop.signal)]);
      if (next === null) return { contents, done: (await done).text };
      const decided = await emitAck(approver, 'tool:approval', { callId: next.callId, approved: true });
      assert.equal(decided.ok, true, JSON.stringify(decided));
      contents.push((await nextEvent(socket, 'tool:result', (r) => r.callId === next.callId, timeoutMs)).content);
    }
  } finally {
    stop.abort();
  }
}

/**
 * A message sent again while it is refused with "did not answer; try again": the replica holding the user's
 * sandbox stayed silent, and still counted as alive, for longer than the survivor waits. The lab's node-loss
 * steps (lab.test, bench:lab) use it; `retries` says whether it was needed.
 */
export async function converseRetrying(socket: ClientSocket, text: string, timeoutMs: number, retryForMs = 30_000): Promise<{ contents: string[]; done: string; retries: number }> {
  const deadline = Date.now() + retryForMs;
  for (let retries = 0; ; retries++) {
    try {
      return { ...(await converse(socket, text, timeoutMs)), retries };
    } catch (err) {
      if (!/did not answer; try again/.test(String(err)) || Date.now() > deadline) throw err;
      await sleep(1_000);
    }
  }
}
