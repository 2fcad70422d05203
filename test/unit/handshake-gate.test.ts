import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import { createHostGuard } from '../../src/auth/host-guard.js';
import { installHandshakeGate, refuseNewHandshakes, routingHintOf, type HandshakeRefusal } from '../../src/realtime/handshake-gate.js';
import type { ErrorBody } from '../../src/protocol/errors.js';

/** A server whose own listeners answer 200 "passed" and upgrade with 101, behind the gate. */
let server: Server;
let base: string;
let refusal: HandshakeRefusal | undefined;
const seen: string[] = [];

before(async () => {
  server = createServer((_req, res) => res.end('passed'));
  server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
  installHandshakeGate(
    server,
    {
      hosts: createHostGuard({ allowedHosts: [], publicUrl: undefined, ownAddresses: [] }),
      refuse: (req: IncomingMessage) => {
        seen.push(routingHintOf(req) ?? '-');
        return refusal;
      },
    },
    createLogger({ level: 'silent' }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A WebSocket upgrade request; resolves with the status line the server answered. */
function upgrade(path: string, host?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket', ...(host ? { Host: host } : {}) } });
    req.on('upgrade', (res) => resolve(`${res.statusCode}`));
    req.on('response', (res) => {
      res.resume();
      resolve(`${res.statusCode}`);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('handshake gate (503 so nginx tries the next replica)', () => {
  it('turns away new Socket.IO handshakes the refusal names, polling and WebSocket alike, with a coded 503', async () => {
    refusal = { code: 'TOO_MANY_REQUESTS', message: 'this replica is full; connect again (another replica has room)' };
    const res = await fetch(`${base}/socket.io/?EIO=4&transport=polling&uid=dave`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.deepEqual(await res.json(), { error: refusal });
    assert.equal(seen.at(-1), 'dave', 'the refusal is asked with the routing hint');
    assert.equal(await upgrade('/socket.io/?EIO=4&transport=websocket&uid=dave'), '503');
  });

  it('lets through what is not a new handshake: a connection\'s requests (sid) and every other path', async () => {
    refusal = { code: 'SHUTTING_DOWN', message: 'draining' };
    const before = seen.length;
    assert.equal(await (await fetch(`${base}/socket.io/?EIO=4&transport=polling&sid=abc&uid=erin`)).text(), 'passed');
    assert.equal(await (await fetch(`${base}/status`)).text(), 'passed');
    assert.equal(seen.length, before, 'the refusal was asked about a request that is not a handshake');
  });

  it('lets new handshakes through when nothing refuses them', async () => {
    refusal = undefined;
    assert.equal(await (await fetch(`${base}/socket.io/?EIO=4&transport=polling&uid=frank`)).text(), 'passed');
    assert.equal(await upgrade('/socket.io/?EIO=4&transport=websocket&uid=frank'), '101');
  });

  it('refuses every request addressed to a host it does not allow with a coded 403, upgrades included, before any refusal is asked', async () => {
    refusal = undefined;
    const before = seen.length;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${base}/status`, { headers: { Host: 'rebound.evil.example:3000' } }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 403);
    assert.equal((JSON.parse(res.body) as { error: ErrorBody }).error.code, 'FORBIDDEN');
    assert.equal(await upgrade('/socket.io/?EIO=4&transport=websocket&uid=frank', 'rebound.evil.example'), '403');
    assert.equal(seen.length, before);
    assert.equal(await upgrade('/socket.io/?EIO=4&transport=websocket&uid=frank', 'localhost:3000'), '101');
  });
});

describe('which new handshakes go elsewhere (refuseNewHandshakes)', () => {
  const handshake = (uid: string): IncomingMessage => ({ url: `/socket.io/?EIO=4&transport=polling&uid=${uid}`, headers: {} }) as IncomingMessage;

  it('all of them while this replica drains; a new user\'s while it is full and a peer has room', () => {
    let draining = false;
    const passedOn: Array<string | undefined> = [];
    const refuse = refuseNewHandshakes({ isDraining: () => draining, overflow: { passOn: (hint) => (passedOn.push(hint), hint === 'new') } });
    assert.equal(refuse(handshake('known')), undefined);
    assert.deepEqual(refuse(handshake('new')), { code: 'TOO_MANY_REQUESTS', message: 'this replica is full; connect again (another replica has room)' });
    assert.deepEqual(passedOn, ['known', 'new'], 'overflow is asked with the routing hint');
    draining = true;
    assert.deepEqual(refuse(handshake('known')), { code: 'SHUTTING_DOWN', message: 'this replica is shutting down; connect again (another replica will answer)' });
  });
});
