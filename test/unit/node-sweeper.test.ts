import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import type { EngineAnswer, EngineClient } from '../../src/socket-proxy/engine-client.js';
import { createNodeSweeper } from '../../src/socket-proxy/node-sweeper.js';

interface FakeContainer {
  id: string;
  labels: Record<string, string>;
  running: boolean;
}

/** An engine of these containers, answering the calls the sweeper makes; records them. */
function fakeEngine(containers: FakeContainer[], options: { failList?: boolean } = {}): EngineClient & { calls: string[] } {
  const calls: string[] = [];
  const answer = (status: number, body: unknown = ''): EngineAnswer => ({ status, headers: {}, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) });
  return {
    calls,
    async call(method, path) {
      calls.push(`${method} ${path}`);
      const url = new URL(path, 'http://engine');
      if (method === 'GET' && url.pathname === '/v1.41/containers/json') {
        if (options.failList) return answer(500, 'engine down');
        const wanted = (JSON.parse(url.searchParams.get('filters') ?? '{}') as { label?: string[] }).label ?? [];
        const matches = (c: FakeContainer): boolean => wanted.every((l) => { const [k = '', v] = l.split('='); return c.labels[k] === v; });
        return answer(200, containers.filter(matches).map((c) => ({ Id: c.id, Labels: c.labels })));
      }
      const inspect = /^\/v1\.41\/containers\/([^/]+)\/json$/.exec(url.pathname);
      if (method === 'GET' && inspect) {
        const c = containers.find((x) => x.id.startsWith(decodeURIComponent(inspect[1] ?? '')));
        return c ? answer(200, { Id: c.id, Config: { Labels: c.labels }, State: { Running: c.running } }) : answer(404, { message: 'No such container' });
      }
      const remove = /^\/v1\.41\/containers\/([^/?]+)$/.exec(url.pathname);
      if (method === 'DELETE' && remove) {
        const at = containers.findIndex((x) => x.id === remove[1]);
        if (at < 0) return answer(404);
        containers.splice(at, 1);
        return answer(204);
      }
      return answer(403, 'not a call the sweeper makes');
    },
  };
}

const logger = createLogger({ level: 'silent' });
const sandbox = (id: string, ownerHost: string): FakeContainer => ({ id, labels: { 'sandpool.app': 'sandpool', 'sandpool.owner': `${ownerHost}/7`, 'sandpool.replica': `${ownerHost}-3000` }, running: true });

describe('node sweeper (the socket proxy removes sandboxes of stopped replica containers on its engine)', () => {
  it('removes the sandboxes of a stopped replica container at once, asking the engine once per owner', async () => {
    const containers: FakeContainer[] = [
      { id: 'aaaaaaaaaaaa0000', labels: { 'sandpool.role': 'replica' }, running: false },
      { id: 'bbbbbbbbbbbb0000', labels: { 'sandpool.role': 'replica' }, running: true },
      sandbox('s1', 'aaaaaaaaaaaa'),
      sandbox('s2', 'aaaaaaaaaaaa'),
      sandbox('s3', 'bbbbbbbbbbbb'),
    ];
    const engine = fakeEngine(containers);
    const removed = await createNodeSweeper({ engine, logger, intervalMs: 0 }).sweep();
    assert.deepEqual(removed.sort(), ['s1', 's2']);
    assert.deepEqual(containers.map((c) => c.id), ['aaaaaaaaaaaa0000', 'bbbbbbbbbbbb0000', 's3']);
    assert.equal(engine.calls.filter((c) => c.startsWith('GET /v1.41/containers/aaaaaaaaaaaa/')).length, 1);
  });

  it('keeps sandboxes whose owner is not a replica container here: unknown, not labelled a replica, or no owner label', async () => {
    const containers: FakeContainer[] = [
      { id: 'cccccccccccc0000', labels: {}, running: false },
      sandbox('s1', 'cccccccccccc'),
      sandbox('s2', 'a-host-process-replica'),
      { id: 's3', labels: { 'sandpool.app': 'sandpool' }, running: true },
      sandbox('s4', 'bad name;'),
    ];
    const engine = fakeEngine(containers);
    assert.deepEqual(await createNodeSweeper({ engine, logger, intervalMs: 0 }).sweep(), []);
    assert.equal(containers.length, 5);
    assert.ok(!engine.calls.some((c) => c.startsWith('DELETE')));
  });

  it('removes nothing when the engine cannot list, and never removes a replica container', async () => {
    const replica: FakeContainer = { id: 'dddddddddddd0000', labels: { 'sandpool.app': 'sandpool', 'sandpool.role': 'replica', 'sandpool.owner': 'dddddddddddd/1' }, running: false };
    assert.deepEqual(await createNodeSweeper({ engine: fakeEngine([replica, sandbox('s1', 'dddddddddddd')], { failList: true }), logger, intervalMs: 0 }).sweep(), []);
    const containers = [replica, sandbox('s1', 'dddddddddddd')];
    assert.deepEqual(await createNodeSweeper({ engine: fakeEngine(containers), logger, intervalMs: 0 }).sweep(), ['s1']);
    assert.deepEqual(containers.map((c) => c.id), ['dddddddddddd0000']);
  });
});
