import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sleep } from '../../src/util/async.js';

/**
 * A loopback stand-in for a paid LLM API: records each request and answers
 * with queued responses in the provider's documented wire format.
 */

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}
export type Responder = (res: ServerResponse) => void;

/** A loopback HTTP server that records each request and answers with the next queued responder. */
export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  private readonly responders: Responder[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body: unknown = raw ? JSON.parse(raw) : {};
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body as Record<string, unknown> });
      const respond = this.responders.shift();
      if (respond) respond(res);
      else sendJson(res, 599, { error: { message: 'fake server: no response queued' } });
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Queues the answer to the next request and returns a getter for that request. */
  next(respond: Responder): () => RecordedRequest {
    const index = this.requests.length + this.responders.length;
    this.responders.push(respond);
    return () => {
      const request = this.requests[index];
      assert.ok(request, 'the provider sent no request');
      return request;
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Writes SSE events one by one (with a pause, so they really arrive as separate chunks). */
export function sendSse(events: readonly { event?: string; data: unknown }[]): Responder {
  return (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    void (async () => {
      for (const { event, data } of events) {
        const payload = typeof data === 'string' ? data : JSON.stringify(data);
        res.write(`${event ? `event: ${event}\n` : ''}data: ${payload}\n\n`);
        await sleep(5);
      }
      res.end();
    })();
  };
}

/** One chunk of an OpenAI chat.completions stream. */
export function openAiChunk(delta: Record<string, unknown>, finish: string | null = null, model = 'gpt-test'): Record<string, unknown> {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] };
}
