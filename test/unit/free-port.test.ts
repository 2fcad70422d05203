import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { freePorts } from '../../src/util/free-port.js';

describe('freePorts', () => {
  it('gives n distinct loopback ports, each free to listen on afterwards', async () => {
    const ports = await freePorts(6);
    assert.equal(ports.length, 6);
    assert.equal(new Set(ports).size, 6);
    const servers = ports.map(() => createServer());
    try {
      await Promise.all(servers.map((srv, i) => new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(ports[i], '127.0.0.1', resolve);
      })));
    } finally {
      await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    }
  });
});
