import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, SandboxGoneError, SandpoolError, cancellationOf, toClientError, toErrorBody } from '../../src/errors.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';

describe('errors on the wire', () => {
  it('keeps a SandpoolError\'s code and message', () => {
    assert.deepEqual(toErrorBody(new SandpoolError('POOL_EXHAUSTED', 'none free')), { code: 'POOL_EXHAUSTED', message: 'none free' });
    assert.equal(toErrorBody(new SandboxGoneError('container exited with code 137')).code, 'SANDBOX_FAILED');
  });

  it('turns a cancellation into SHUTTING_DOWN or CANCELLED, never INTERNAL', () => {
    assert.equal(toErrorBody(new CancelledError('shutdown')).code, 'SHUTTING_DOWN');
    assert.equal(toErrorBody(new CancelledError('user-left')).code, 'CANCELLED');
  });

  it('reads a cancellation from an aborted signal: its own CancelledError, or user-left for a foreign abort', () => {
    const stopping = new AbortController();
    const reason = new CancelledError('shutdown');
    stopping.abort(reason);
    assert.equal(cancellationOf(stopping.signal), reason);
    const foreign = new AbortController();
    foreign.abort(new Error('not ours'));
    const fallback = cancellationOf(foreign.signal);
    assert.ok(fallback instanceof CancelledError);
    assert.equal(fallback.reason, 'user-left');
  });

  it('makes anything else INTERNAL, and every code is one of the protocol\'s', () => {
    assert.equal(toErrorBody(new Error('boom')).code, 'INTERNAL');
    assert.equal(toErrorBody('text').code, 'INTERNAL');
    for (const err of [new SandpoolError('UNAUTHORIZED', 'x'), new CancelledError('user-left'), new TypeError('y')]) {
      assert.ok((ERROR_CODES as readonly string[]).includes(toErrorBody(err).code));
    }
  });
});

describe('errors to clients', () => {
  /** A pino logger that keeps what it writes. */
  async function capture(): Promise<{ logger: import('../../src/logger.js').Logger; lines: () => Array<Record<string, unknown>> }> {
    const { createLogger } = await import('../../src/logger.js');
    const { PassThrough } = await import('node:stream');
    const out = new PassThrough();
    const written: string[] = [];
    out.on('data', (d: Buffer) => written.push(...d.toString().split('\n').filter(Boolean)));
    return { logger: createLogger({ level: 'info', destination: out }), lines: () => written.map((l) => JSON.parse(l) as Record<string, unknown>) };
  }
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('say what happened and what to do, with a log id; the internals go to the log under that id only', async () => {
    const { logger, lines } = await capture();
    const err = new SandpoolError('SANDBOX_FAILED', 'a sandbox could not be started; try again shortly', {
      detail: 'sandbox 1a2b3c from sandpool-sandbox:latest did not initialize MCP: stderr: Error: EACCES /opt/secret',
    });
    const body = toClientError(err, logger);
    assert.equal(body.code, 'SANDBOX_FAILED');
    assert.match(body.message, /^a sandbox could not be started; try again shortly \(log id [0-9a-f]{8}\)$/);
    assert.doesNotMatch(body.message, /EACCES|sandpool-sandbox|1a2b3c/);
    await tick();
    const logged = lines().find((l) => l.logId === body.logId);
    assert.match(String(logged?.detail), /EACCES \/opt\/secret/);
  });

  it('hide an unexpected fault\'s own text (a library\'s, a Redis address) behind INTERNAL and a log id', async () => {
    const { logger, lines } = await capture();
    const body = toClientError(new Error('connect ECONNREFUSED 10.0.0.7:6379'), logger);
    assert.equal(body.code, 'INTERNAL');
    assert.doesNotMatch(body.message, /ECONNREFUSED|10\.0\.0\.7/);
    assert.ok(body.logId);
    await tick();
    assert.match(String(lines().find((l) => l.logId === body.logId)?.detail), /10\.0\.0\.7:6379/);
  });

  it('pass plain refusals through as they are, without a log id or a log line', async () => {
    const { logger, lines } = await capture();
    assert.deepEqual(toClientError(new SandpoolError('TOO_MANY_REQUESTS', 'you already have 5 requests in flight'), logger), {
      code: 'TOO_MANY_REQUESTS',
      message: 'you already have 5 requests in flight',
    });
    await tick();
    assert.deepEqual(lines(), []);
  });
});

describe('a quota refusal on the wire', () => {
  it('carries plan, window, limit and retryAfterSeconds through toErrorBody, toClientError and back from another replica', async () => {
    const { quotaExceeded, fromErrorBody } = await import('../../src/errors.js');
    const { createLogger } = await import('../../src/logger.js');
    const err = quotaExceeded({ plan: 'free', window: 'day', limit: 1000, retryAfterSeconds: 42 });
    const fields = { plan: 'free', window: 'day', limit: 1000, retryAfterSeconds: 42 };
    assert.deepEqual(toErrorBody(err), { code: 'QUOTA_EXCEEDED', message: err.message, ...fields });
    const body = toClientError(err, createLogger({ level: 'silent' }));
    assert.deepEqual(body, { code: 'QUOTA_EXCEEDED', message: 'your free plan allows 1000 tool calls per day, and you have used them; one more is allowed in 42 s', ...fields });
    const back = fromErrorBody(body);
    assert.equal(back.code, 'QUOTA_EXCEEDED');
    assert.deepEqual(back.fields, fields);
    assert.equal(fromErrorBody({ code: 'INTERNAL', message: 'x (log id 1234abcd)', logId: '1234abcd' }).fields, undefined);
  });
});
