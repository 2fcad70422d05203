import assert from 'node:assert/strict';
import { Agent, createServer, request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { classifyEngineCall, startEngineCallCounter } from '../../scripts/lib/engine-call-counter.js';

/** A stand-in engine on a unix socket: 200 to every call, and an upgrade for attach that echoes. */
async function fakeEngine(): Promise<{ socketPath: string; close(): Promise<void> }> {
  const socketPath = path.join(os.tmpdir(), `fake-engine-${process.pid}-${Date.now()}.sock`);
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  server.on('upgrade', (_req, socket: Duplex) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { socketPath, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function call(socketPath: string, agent: Agent, method: string, p: string, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: p, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(body);
  });
}

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
});

describe('engine call counter (bench:pool)', () => {
  it('classifies Docker API calls, with or without a version prefix', () => {
    assert.equal(classifyEngineCall('POST', '/v1.41/containers/create?name=x'), 'create');
    assert.equal(classifyEngineCall('POST', '/containers/abc/attach?stream=1'), 'attach');
    assert.equal(classifyEngineCall('POST', '/containers/abc/start'), 'start');
    assert.equal(classifyEngineCall('GET', '/containers/abc/json'), 'inspect');
    assert.equal(classifyEngineCall('GET', '/containers/json?all=1'), 'list');
    assert.equal(classifyEngineCall('DELETE', '/containers/abc?force=true'), 'remove');
    assert.equal(classifyEngineCall('GET', '/events?filters=x'), 'events');
    assert.equal(classifyEngineCall('GET', '/images/json'), 'other');
  });

  it('counts calls on kept-alive connections, and nothing of a hijacked one after its attach', async () => {
    const engine = await fakeEngine();
    cleanups.push(engine.close);
    const counter = await startEngineCallCounter(engine.socketPath);
    cleanups.push(counter.close);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    await call(counter.socketPath, agent, 'POST', '/containers/create', JSON.stringify({ Image: 'x', Cmd: ['GET', '/no HTTP/1.1'] }));
    await call(counter.socketPath, agent, 'POST', '/containers/abc/start');
    await call(counter.socketPath, agent, 'GET', '/containers/abc/json');
    await call(counter.socketPath, agent, 'DELETE', '/containers/abc?force=true');
    // An attach: upgraded, then stdio bytes that look like a request line.
    await new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: counter.socketPath, method: 'POST', path: '/containers/abc/attach?stream=1', headers: { Connection: 'Upgrade', Upgrade: 'tcp' } });
      req.on('upgrade', (_res, socket) => {
        socket.write('GET /containers/abc/json HTTP/1.1\r\n');
        socket.once('data', () => {
          socket.destroy();
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
    const counts = counter.counts();
    assert.deepEqual(
      Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0)),
      { create: 1, start: 1, inspect: 1, remove: 1, attach: 1 },
    );
    counter.reset();
    assert.equal(Object.values(counter.counts()).reduce((a, b) => a + b, 0), 0);
  });
});
