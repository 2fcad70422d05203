/**
 * A pass-through proxy in front of the Docker engine's socket that counts the
 * API calls going through it, by kind: what a start, a hand-out or a removal
 * costs the engine, measured where the calls happen rather than read from
 * the code. Bytes are piped unchanged; request lines are read off the client
 * side until the connection is hijacked (attach), after which it carries a
 * sandbox's stdio and is not read any more.
 */
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export type EngineCallKind = 'create' | 'attach' | 'start' | 'inspect' | 'remove' | 'list' | 'events' | 'ping' | 'stats' | 'other';

export interface EngineCallCounter {
  /** Point DOCKER_SOCKET / the runtime here. */
  readonly socketPath: string;
  /** Calls counted since the start or the last reset, by kind. */
  counts(): Record<EngineCallKind, number>;
  reset(): void;
  close(): Promise<void>;
}

// Anywhere in the stream: on a kept-alive connection a request follows the last body directly.
const REQUEST_LINE = /(GET|POST|PUT|DELETE|HEAD) (\/\S*) HTTP\/1\.[01]\r\n/g;

/** The kind of one Docker API call, from its method and path (an optional /v1.xx prefix allowed). */
export function classifyEngineCall(method: string, rawPath: string): EngineCallKind {
  const p = (rawPath.split('?')[0] ?? '').replace(/^\/v\d+(\.\d+)?/, '');
  if (p === '/_ping') return 'ping';
  if (p === '/events') return 'events';
  if (p === '/containers/json') return 'list';
  if (method === 'POST' && p === '/containers/create') return 'create';
  if (method === 'POST' && /^\/containers\/[^/]+\/attach$/.test(p)) return 'attach';
  if (method === 'POST' && /^\/containers\/[^/]+\/start$/.test(p)) return 'start';
  if (method === 'GET' && /^\/containers\/[^/]+\/json$/.test(p)) return 'inspect';
  if (method === 'GET' && /^\/containers\/[^/]+\/stats$/.test(p)) return 'stats';
  if (method === 'DELETE' && /^\/containers\/[^/]+$/.test(p)) return 'remove';
  return 'other';
}

const zero = (): Record<EngineCallKind, number> => ({ create: 0, attach: 0, start: 0, inspect: 0, remove: 0, list: 0, events: 0, ping: 0, stats: 0, other: 0 });

export async function startEngineCallCounter(upstreamSocket: string): Promise<EngineCallCounter> {
  const socketPath = path.join(os.tmpdir(), `sandpool-engine-calls-${process.pid}-${Date.now()}.sock`);
  let counts = zero();
  const open = new Set<Socket>();

  const server: Server = createServer((client) => {
    const upstream = connect(upstreamSocket);
    open.add(client);
    open.add(upstream);
    let carry = '';
    let hijacked = false;
    client.on('data', (chunk: Buffer) => {
      if (hijacked) return;
      const text = carry + chunk.toString('latin1');
      let counted = 0;
      for (const m of text.matchAll(REQUEST_LINE)) {
        const kind = classifyEngineCall(m[1] ?? '', m[2] ?? '');
        counts[kind]++;
        counted = m.index + m[0].length;
        if (kind === 'attach') {
          hijacked = true;
          break;
        }
      }
      // A request line may straddle two chunks: keep the tail not counted yet.
      carry = text.slice(Math.max(counted, text.length - 256));
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  server.unref();

  return {
    socketPath,
    counts: () => ({ ...counts }),
    reset() {
      counts = zero();
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(socketPath, { force: true });
    },
  };
}
