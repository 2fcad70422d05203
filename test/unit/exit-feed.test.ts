import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import { createExitFeed, type EngineExit } from '../../src/runtime/exit-feed.js';
import { sleep } from '../../src/util/async.js';
import { waitFor } from '../support/helpers.js';

/** An engine whose event streams the test writes to, noting each open's `since`. */
function fakeEngine(): { open: (since: number) => Promise<PassThrough>; streams: PassThrough[]; sinces: number[]; send(event: object, stream?: PassThrough): void } {
  const streams: PassThrough[] = [];
  const sinces: number[] = [];
  return {
    streams,
    sinces,
    open: async (since) => {
      sinces.push(since);
      const s = new PassThrough();
      streams.push(s);
      return s;
    },
    send(event, stream = streams[streams.length - 1]) {
      assert.ok(stream, 'no stream open');
      stream.write(`${JSON.stringify(event)}\n`);
    },
  };
}

const die = (id: string, exitCode: string, time = 1_700_000_000): object => ({ Type: 'container', Action: 'die', Actor: { ID: id, Attributes: { exitCode } }, time });
const logger = createLogger({ level: 'silent' });

describe('exit feed (container deaths from the engine event stream)', () => {
  it('opens one stream only while containers are watched, and tells each watcher once', async () => {
    const engine = fakeEngine();
    const feed = createExitFeed({ open: engine.open, logger });
    assert.equal(engine.streams.length, 0, 'opened with nothing to watch');
    const exits: Array<[string, EngineExit]> = [];
    const unwatchA = feed.watch('a', (e) => exits.push(['a', e]));
    feed.watch('b', (e) => exits.push(['b', e]));
    await waitFor('stream open', () => feed.connected());
    assert.equal(engine.streams.length, 1, 'one stream for all containers');
    engine.send(die('other', '0'));
    engine.send(die('b', '137'));
    engine.send(die('b', '137'));
    await sleep(10);
    assert.deepEqual(exits, [['b', { exitCode: 137, reason: 'container exited with code 137' }]]);
    unwatchA();
    await sleep(10);
    assert.equal(feed.connected(), false, 'still open with nobody watching');
    assert.equal(engine.streams[0]?.destroyed, true);
  });

  it('says OOMKilled when the engine sent oom before die; reads events split across chunks', async () => {
    const engine = fakeEngine();
    const feed = createExitFeed({ open: engine.open, logger });
    let exit: EngineExit | undefined;
    feed.watch('c', (e) => (exit = e));
    await waitFor('stream open', () => feed.connected());
    engine.send({ Type: 'container', Action: 'oom', Actor: { ID: 'c' } });
    const line = `${JSON.stringify(die('c', '137'))}\n`;
    engine.streams[0]?.write(line.slice(0, 10));
    await sleep(5);
    engine.streams[0]?.write(line.slice(10));
    await waitFor('exit told', () => exit);
    assert.deepEqual(exit, { exitCode: 137, reason: 'container exited with code 137 (OOMKilled)' });
  });

  it('reopens a stream that ended, from the last event seen, so a death in the gap is not missed', async () => {
    const engine = fakeEngine();
    const feed = createExitFeed({ open: engine.open, logger, retryMs: 10 });
    const exits: string[] = [];
    feed.watch('d', () => exits.push('d'));
    feed.watch('e', () => exits.push('e'));
    await waitFor('stream open', () => feed.connected());
    engine.send(die('d', '1', 1_700_000_123));
    engine.streams[0]?.end();
    await waitFor('reopened', () => engine.streams.length === 2 && feed.connected());
    assert.equal(engine.sinces[1], 1_700_000_123);
    engine.send(die('e', '2'));
    await waitFor('both told', () => exits.length === 2);
    assert.deepEqual(exits, ['d', 'e']);
  });

  it('keeps retrying when the engine refuses the stream', async () => {
    let attempts = 0;
    const engine = fakeEngine();
    const feed = createExitFeed({
      logger,
      retryMs: 5,
      open: (since) => (++attempts < 3 ? Promise.reject(new Error('engine down')) : engine.open(since)),
    });
    let told = false;
    feed.watch('f', () => (told = true));
    await waitFor('open after failures', () => feed.connected());
    assert.equal(attempts, 3);
    engine.send(die('f', '0'));
    await waitFor('told', () => told);
  });
});
