import { request, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { SANDBOX_LABEL, judgeCall } from './policy.js';

export interface SocketProxyOptions {
  /** The Docker engine's socket. */
  upstreamSocket: string;
  logger: Logger;
  /** Largest request body checked and forwarded (container create). Default 1 MiB. */
  maxBodyBytes?: number;
}

/**
 * Reads and drops `length` bytes of a request body from a hijacked socket
 * (what came with the headers first); resolves with what followed it, or
 * undefined when the client went away first.
 */
function skipBytes(socket: Duplex, head: Buffer, length: number): Promise<Buffer | undefined> {
  if (!Number.isFinite(length) || length <= 0) return Promise.resolve(head);
  if (head.length >= length) return Promise.resolve(head.subarray(length));
  return new Promise((resolve) => {
    let missing = length - head.length;
    const onData = (chunk: Buffer): void => {
      if (chunk.length < missing) {
        missing -= chunk.length;
        return;
      }
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(chunk.subarray(missing));
    };
    const onClose = (): void => resolve(undefined);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Reads and drops a request's body; resolves with its length once it ended (or the client went away). */
function drainBody(req: IncomingMessage): Promise<number> {
  return new Promise((resolve) => {
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
    });
    req.once('end', () => resolve(length));
    req.once('close', () => resolve(length));
    req.resume();
  });
}

/** Container ids known to be sandboxes (created through this proxy, or checked). */
const KNOWN_LIMIT = 10_000;

/**
 * A Docker API proxy in front of the engine's socket that allows only the
 * calls sandpool makes (ping, create, start, attach, inspect, list, remove,
 * events), creates only of hardened sandboxes, and start/attach/remove only
 * of containers labelled as sandboxes. Attach is an HTTP upgrade (the engine
 * hijacks the connection for the raw stdio stream): it is piped byte for byte.
 */
export function createSocketProxy(options: SocketProxyOptions): Server {
  const log = options.logger.child({ component: 'SocketProxy' });
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576;
  const sandboxes = new Set<string>();

  const remember = (id: string): void => {
    if (sandboxes.size >= KNOWN_LIMIT) sandboxes.clear();
    sandboxes.add(id);
  };

  /** Asks the engine whether a container is a sandbox (by id or name). */
  function isSandbox(id: string): Promise<boolean> {
    if (sandboxes.has(id)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const req = request({ socketPath: options.upstreamSocket, method: 'GET', path: `/containers/${encodeURIComponent(id)}/json` }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const info = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Id?: string; Config?: { Labels?: Record<string, string> } };
            const yes = info.Config?.Labels?.[SANDBOX_LABEL.key] === SANDBOX_LABEL.value;
            if (yes && info.Id) remember(info.Id);
            resolve(yes);
          } catch {
            resolve(false);
          }
        });
      });
      req.on('error', () => resolve(false));
      req.end();
    });
  }

  function refuse(res: ServerResponse | Duplex, status: number, message: string): void {
    const body = JSON.stringify({ message: `sandpool socket proxy: ${message}` });
    if ('writeHead' in res) {
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    } else {
      res.end(`HTTP/1.1 ${status} Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
  }

  /** Judges a call; resolves with its body (read when it must be checked) or refuses it. */
  async function admit(req: IncomingMessage, res: ServerResponse | Duplex): Promise<{ body: Buffer | undefined } | undefined> {
    const url = new URL(req.url ?? '/', 'http://docker');
    const verdict = judgeCall(req.method ?? 'GET', url.pathname);
    if (!verdict.rule) {
      log.warn({ method: req.method, path: url.pathname }, 'refused a Docker API call');
      refuse(res, 403, verdict.why);
      return undefined;
    }
    if (verdict.containerId !== undefined && !(await isSandbox(verdict.containerId))) {
      log.warn({ method: req.method, path: url.pathname }, 'refused a call on a container that is not a sandbox');
      refuse(res, 403, `container ${verdict.containerId} is not a sandpool sandbox`);
      return undefined;
    }
    if (!verdict.rule.body) return { body: undefined };
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBodyBytes) {
        refuse(res, 413, 'request body too large');
        return undefined;
      }
      chunks.push(chunk);
    }
    const body = Buffer.concat(chunks);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      refuse(res, 400, 'the request body is not JSON');
      return undefined;
    }
    const problem = verdict.rule.body(parsed);
    if (problem) {
      log.warn({ method: req.method, path: url.pathname, problem }, 'refused a container create');
      refuse(res, 403, problem);
      return undefined;
    }
    return { body };
  }

  const server = createServer((req, res) => {
    void admit(req, res).then(
      (admitted) => {
        if (!admitted) return;
        const headers = { ...req.headers };
        if (admitted.body) headers['content-length'] = String(admitted.body.length);
        const upstream = request({ socketPath: options.upstreamSocket, method: req.method, path: req.url, headers }, (up) => {
          if (req.method === 'POST' && /\/containers\/create$/.test(new URL(req.url ?? '/', 'http://docker').pathname) && up.statusCode === 201) {
            // Learn the new sandbox's id from the answer, so its start and attach need no lookup.
            const chunks: Buffer[] = [];
            up.on('data', (c: Buffer) => chunks.push(c));
            up.on('end', () => {
              const body = Buffer.concat(chunks);
              try {
                const id = (JSON.parse(body.toString('utf8')) as { Id?: string }).Id;
                if (id) remember(id);
              } catch {
                /* the client sees the body as it is */
              }
              res.writeHead(up.statusCode ?? 502, up.headers).end(body);
            });
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        upstream.on('error', (err) => {
          log.warn({ err: errorMessage(err) }, 'Docker engine unreachable');
          if (!res.headersSent) refuse(res, 502, 'the Docker engine did not answer');
          else res.destroy();
        });
        // The client going away (an events stream closed) ends the upstream call too.
        res.on('close', () => upstream.destroy());
        if (admitted.body) upstream.end(admitted.body);
        else req.pipe(upstream);
      },
      (err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'proxy failure');
        if (!res.headersSent) refuse(res, 502, 'proxy failure');
      },
    );
  });

  // Attach: the engine upgrades the connection and streams raw stdio both ways.
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    client.on('error', () => undefined);
    void admit(req, client).then(async (admitted) => {
      if (!admitted) return;
      // dockerode repeats the attach options as a JSON body; the engine takes
      // them from the query string, and hijacks the connection right after the
      // headers, so body bytes that arrive apart from them would reach the
      // sandbox's stdin and corrupt its first message. The body is dropped.
      // Node 26 (the app image) delivers an upgrade's body through `req`;
      // Node 20 leaves it in `head` and on the socket: skip what `req` did not take.
      const taken = await drainBody(req);
      const rest = await skipBytes(client, head, Number(req.headers['content-length'] ?? 0) - taken);
      if (rest === undefined) return;
      const upstream = connect(options.upstreamSocket);
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      upstream.once('connect', () => {
        const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
        for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
          const name = req.rawHeaders[i] ?? '';
          if (name.toLowerCase() !== 'content-length') lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
        }
        lines.push('Content-Length: 0');
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (rest.length > 0) upstream.write(rest);
        upstream.pipe(client);
        client.pipe(upstream);
      });
    });
  });
  return server;
}
