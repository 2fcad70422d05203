import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Client, type JSONRPCMessage } from '@modelcontextprotocol/client';
import { StreamTransport } from '../../src/mcp/stream-transport.js';

describe('StreamTransport', () => {
  it('splits newline-delimited JSON-RPC across chunk boundaries and reports stray lines without stopping', async () => {
    const input = new PassThrough();
    const t = new StreamTransport(input, new PassThrough());
    const messages: JSONRPCMessage[] = [];
    const errors: Error[] = [];
    t.onmessage = (m) => messages.push(m);
    t.onerror = (e) => errors.push(e);
    await t.start();
    input.write('{"jsonrpc":"2.0","id":1,"res');
    input.write('ult":{}}\nnot json at all\n{"jsonrpc":"2.0","method":"x"}\n');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(messages, [
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', method: 'x' },
    ]);
    assert.equal(errors.length, 1);
  });

  it('dispatches a progress notification before the response that follows it in the same chunk (a server\'s last progress reaches the caller)', async () => {
    const fromServer = new PassThrough();
    const toServer = new PassThrough();
    const client = new Client({ name: 't', version: '1' });
    // A server that answers initialize, then, to the call, its last progress and its result in one write.
    toServer.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        const m = JSON.parse(line) as { id?: number; method: string; params?: { _meta?: { progressToken?: unknown } } };
        if (m.method === 'initialize') fromServer.write(`${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 's', version: '1' } } })}\n`);
        if (m.method === 'tools/call') {
          const progress = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: m.params?._meta?.progressToken, progress: 1, total: 1 } };
          fromServer.write(`${JSON.stringify(progress)}\n${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [] } })}\n`);
        }
      }
    });
    await client.connect(new StreamTransport(fromServer, toServer));
    const heard: unknown[] = [];
    await client.request({ method: 'tools/call', params: { name: 'x', arguments: {} } }, { onprogress: (p) => heard.push(p) });
    assert.deepEqual(heard, [{ progress: 1, total: 1 }]);
    await client.close();
  });

  it('writes an attached payload raw, right after the line of the request that names it, once; forgotten bytes are never written', async () => {
    const output = new PassThrough();
    const t = new StreamTransport(new PassThrough(), output);
    await t.start();
    const payload = Buffer.from([0x00, 0x0a, 0xff, 0x0a, 0x7b]);
    t.attachPayload('p1', payload);
    const forget = t.attachPayload('p2', Buffer.from('never'));
    forget();
    await t.send({ jsonrpc: '2.0', id: 1, method: 'sandpool/workspace/restore-raw', params: { payload: 'p1', bytes: payload.length } });
    await t.send({ jsonrpc: '2.0', id: 2, method: 'sandpool/workspace/restore-raw', params: { payload: 'p1', bytes: 0 } });
    await t.send({ jsonrpc: '2.0', id: 3, method: 'x', params: { payload: 'p2' } });
    const written = output.read() as Buffer;
    const first = Buffer.from(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'sandpool/workspace/restore-raw', params: { payload: 'p1', bytes: payload.length } })}\n`);
    assert.ok(written.subarray(0, first.length).equals(first));
    assert.ok(written.subarray(first.length, first.length + payload.length).equals(payload), 'the payload follows its line');
    const rest = written.subarray(first.length + payload.length).toString('utf8').split('\n').filter(Boolean);
    assert.deepEqual(rest.map((l) => (JSON.parse(l) as { id: number }).id), [2, 3], 'sent once; a forgotten payload never');
  });

  it('waits for drain when the sandbox reads slowly (write backpressure)', async () => {
    let release: (() => void) | undefined;
    const written: string[] = [];
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _enc, cb) {
        written.push(chunk.toString());
        release = cb;
      },
    });
    const t = new StreamTransport(new PassThrough(), slow);
    await t.start();
    let sent = false;
    const sending = t.send({ jsonrpc: '2.0', method: 'notifications/x', params: { pad: 'x'.repeat(64) } }).then(() => (sent = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(sent, false, 'send resolved before the stream drained');
    release?.();
    await sending;
    assert.equal(sent, true);
    assert.match(written.join(''), /notifications\/x/);
  });

  it('closes instead of throwing when the sandbox writes more than 10 MiB without a newline', async () => {
    // The SDK's read buffer throws past 10 MiB; thrown from a 'data' handler that
    // would be an uncaught exception and take the whole replica down.
    const input = new PassThrough();
    const t = new StreamTransport(input, new PassThrough());
    const errors: Error[] = [];
    let closed = 0;
    t.onerror = (e) => errors.push(e);
    t.onclose = () => closed++;
    await t.start();
    const mib = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 11; i++) input.write(mib);
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, 1);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /exceeded the maximum of 10485760 bytes/);
    assert.equal(t.closeError, errors[0]);
    await assert.rejects(t.send({ jsonrpc: '2.0', method: 'x' }), /closed/);
    // Whatever it prints afterwards goes nowhere.
    input.write('{"jsonrpc":"2.0","method":"late"}\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(errors.length, 1);
  });

  it('closes when the sandbox output ends, and refuses sends after that', async () => {
    const input = new PassThrough();
    const t = new StreamTransport(input, new PassThrough());
    let closed = 0;
    t.onclose = () => closed++;
    await t.start();
    input.end();
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, 1);
    await assert.rejects(t.send({ jsonrpc: '2.0', method: 'x' }), /closed/);
  });
});

describe('LineBuffer', () => {
  it('returns the lines a chunk completes, across chunk boundaries, without their newline or a trailing \\r', async () => {
    const { LineBuffer } = await import('../../src/mcp/line-buffer.js');
    const b = new LineBuffer(1024);
    assert.deepEqual(b.push(Buffer.from('{"a":')), []);
    assert.deepEqual(b.push(Buffer.from('1}\r\n{"b":2}\n{"c"')), ['{"a":1}', '{"b":2}']);
    assert.deepEqual(b.push(Buffer.from(':3}\n')), ['{"c":3}']);
    assert.deepEqual(b.push(Buffer.from('\n\n')), ['', '']);
  });

  it('keeps a multi-byte character split between chunks whole', async () => {
    const { LineBuffer } = await import('../../src/mcp/line-buffer.js');
    const b = new LineBuffer(1024);
    const bytes = Buffer.from('"äö"\n');
    assert.deepEqual([...b.push(bytes.subarray(0, 2)), ...b.push(bytes.subarray(2))], ['"äö"']);
  });

  it('gives back a line of megabytes that arrived in many small chunks, and refuses one past the limit', async () => {
    const { LineBuffer } = await import('../../src/mcp/line-buffer.js');
    const b = new LineBuffer(8 * 1024 * 1024);
    const line = 'y'.repeat(6 * 1024 * 1024);
    let out: string[] = [];
    for (let i = 0; i < line.length; i += 4096) out = out.concat(b.push(Buffer.from(line.slice(i, i + 4096))));
    assert.deepEqual(out, []);
    assert.deepEqual(b.push(Buffer.from('\n')), [line]);
    assert.throws(() => b.push(Buffer.alloc(9 * 1024 * 1024, 'z')), /exceeded the maximum of 8388608 bytes/);
  });
});
