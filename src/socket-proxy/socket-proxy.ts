import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { checkSandboxCreate, serializeSandboxCreate, type CreateLimits } from './create-schema.js';
import { createEngineClient, type EngineClient } from './engine-client.js';
import type { ImageAllowList } from './image-allow-list.js';
import { createName, isSandboxInfo, redactInspect, routeOf, upstreamPath, upstreamQuery, type Route } from './policy.js';
import { PolicyRefusal } from './refusal.js';
import { StrictJsonError, parseStrictJson } from './strict-json.js';

export interface SocketProxyOptions {
  /** The Docker engine's socket. */
  upstreamSocket: string;
  logger: Logger;
  /** The images sandboxes may be created from (loaded before the proxy starts). */
  images: ImageAllowList;
  /** Bounds on a sandbox's resources. */
  limits: CreateLimits;
  /** Largest container-create body read. Default 64 KiB (sandpool's is under 2 KiB). */
  maxBodyBytes?: number;
  /** Bound on the proxy's own engine calls (lookups, inspect, create). Default 10000. */
  callTimeoutMs?: number;
}

/** Container ids known to be sandboxes (created through this proxy, or looked up). */
const KNOWN_LIMIT = 10_000;

/** Reads and drops `length` bytes of a request body from a hijacked socket; resolves with what followed it, or undefined when the client went away first. */
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

/** A request body up to `max` bytes, as UTF-8 text (invalid UTF-8 is refused: the engine would read it otherwise). */
async function readBody(req: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new PolicyRefusal(`the request body is larger than ${max} bytes`, 413);
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new PolicyRefusal('the request body is not UTF-8', 400);
  }
}

function jsonAnswer(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/**
 * A Docker API proxy in front of the engine's socket that passes on only the
 * calls sandpool makes (ping, version, create, start, attach, pause, unpause,
 * inspect, list, remove, events), each rebuilt from its checked parts:
 * - create: the body is read strictly and checked against the sandbox schema
 *   (create-schema.ts), and the proxy sends a body it serialized itself, with
 *   the image as one of the allowed image ids;
 * - start, attach, pause, unpause, remove: only of sandboxes (label
 *   sandpool.app=sandpool), addressed by their full id;
 * - list, events: the sandbox label filter is added to the client's;
 * - inspect: sandboxes only, without their environment (policy.ts redactInspect).
 * Attach is an HTTP upgrade (the engine hijacks the connection for the raw
 * stdio stream): piped byte for byte once the request line is rebuilt.
 */
export function createSocketProxy(options: SocketProxyOptions): Server {
  const log = options.logger.child({ component: 'SocketProxy' });
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024;
  const engine: EngineClient = createEngineClient({ socketPath: options.upstreamSocket, callTimeoutMs: options.callTimeoutMs });
  const sandboxes = new Set<string>();

  const remember = (id: string): void => {
    if (sandboxes.size >= KNOWN_LIMIT) sandboxes.clear();
    sandboxes.add(id);
  };

  const notFound = (id: string): PolicyRefusal => new PolicyRefusal(`No such container: ${id} (or it is not a sandpool sandbox)`, 404);

  /** The full id of the sandbox `id` names (an id, id prefix or name); a 404 refusal for anything else, so nothing else is seen to exist. */
  async function sandboxId(id: string): Promise<string> {
    if (sandboxes.has(id)) return id;
    const answer = await engine.call('GET', upstreamPath({ kind: 'inspect', id }, ''));
    if (answer.status === 404) throw notFound(id);
    if (answer.status !== 200) throw new Error(`the engine answered ${answer.status} to an inspect`);
    const info = JSON.parse(answer.body.toString('utf8')) as { Id?: unknown };
    if (!isSandboxInfo(info) || typeof info.Id !== 'string') throw notFound(id);
    remember(info.Id);
    return info.Id;
  }

  /** Sends the engine's answer on as it comes (list, events, start, remove...). */
  function forward(req: IncomingMessage, res: ServerResponse, method: string, path: string): void {
    const upstream = request({ socketPath: options.upstreamSocket, method, path }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      log.warn({ err: errorMessage(err) }, 'Docker engine unreachable');
      if (!res.headersSent) jsonAnswer(res, 502, { message: 'sandpool socket proxy: the Docker engine did not answer' });
      else res.destroy();
    });
    // The client going away (an events stream closed) ends the upstream call too.
    res.on('close', () => upstream.destroy());
    req.on('error', () => upstream.destroy());
    upstream.end();
  }

  async function create(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): Promise<void> {
    const text = await readBody(req, maxBodyBytes);
    let body;
    try {
      body = parseStrictJson(text);
    } catch (err) {
      if (err instanceof StrictJsonError) throw new PolicyRefusal(`the body is not JSON the proxy accepts: ${err.message}`, 400);
      throw err;
    }
    const accepted = checkSandboxCreate(body, options.limits);
    const queryName = createName(params);
    if (accepted.name !== undefined && queryName !== undefined && accepted.name !== queryName) {
      throw new PolicyRefusal(`name: the body names ${JSON.stringify(accepted.name)}, the query ${JSON.stringify(queryName)}`, 400);
    }
    const imageId = await options.images.match(accepted.image);
    if (imageId === undefined) {
      throw new PolicyRefusal(`Image ${JSON.stringify(accepted.image)} is not one of the proxy's sandbox images (POOL_IMAGE)`, 403);
    }
    const name = queryName ?? accepted.name;
    const route: Route = { kind: 'create' };
    const path = upstreamPath(route, name === undefined ? '' : new URLSearchParams({ name }).toString());
    const answer = await engine.call('POST', path, { contentType: 'application/json', text: serializeSandboxCreate(accepted, imageId) });
    if (answer.status === 201) {
      try {
        const id = (JSON.parse(answer.body.toString('utf8')) as { Id?: unknown }).Id;
        if (typeof id === 'string') remember(id);
      } catch {
        /* the client sees the answer as it is */
      }
    }
    res.writeHead(answer.status, { 'content-type': answer.headers['content-type'] ?? 'application/json', 'content-length': answer.body.length }).end(answer.body);
  }

  async function inspect(res: ServerResponse, id: string): Promise<void> {
    const answer = await engine.call('GET', upstreamPath({ kind: 'inspect', id }, ''));
    if (answer.status === 404) throw notFound(id);
    if (answer.status !== 200) {
      res.writeHead(answer.status, { 'content-type': answer.headers['content-type'] ?? 'application/json', 'content-length': answer.body.length }).end(answer.body);
      return;
    }
    const shown = redactInspect(JSON.parse(answer.body.toString('utf8')) as unknown);
    if (!shown) throw notFound(id);
    if (isSandboxInfo(shown) && typeof shown.Id === 'string') remember(shown.Id);
    jsonAnswer(res, 200, shown);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://docker');
    const route = routeOf(req.method ?? 'GET', url.pathname);
    if (route.kind === 'create') return create(req, res, url.searchParams);
    // No other call has a body the engine should read (below API 1.24 a start's body was a HostConfig).
    req.resume();
    const query = upstreamQuery(route, url.searchParams);
    switch (route.kind) {
      case 'inspect':
        return inspect(res, route.id);
      case 'sandbox':
        return forward(req, res, route.action === 'remove' ? 'DELETE' : 'POST', upstreamPath(route, query, await sandboxId(route.id)));
      case 'ping':
        return forward(req, res, route.method, upstreamPath(route, query));
      default:
        return forward(req, res, 'GET', upstreamPath(route, query));
    }
  }

  function answerRefusal(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (err instanceof PolicyRefusal) {
      if (err.status !== 404) log.warn({ method: req.method, url: req.url, why: err.message }, 'refused a Docker API call');
      if (!res.headersSent) jsonAnswer(res, err.status, { message: `sandpool socket proxy: ${err.message}` });
      return;
    }
    log.warn({ method: req.method, url: req.url, err: errorMessage(err) }, 'proxy failure');
    if (!res.headersSent) jsonAnswer(res, 502, { message: 'sandpool socket proxy: the Docker engine did not answer as expected' });
    else res.destroy();
  }

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => answerRefusal(req, res, err));
  });

  /** Refuses an upgrade on the raw socket. */
  function refuseRaw(client: Duplex, err: unknown): void {
    const refusal = err instanceof PolicyRefusal ? err : new PolicyRefusal('the Docker engine did not answer as expected', 403);
    if (!(err instanceof PolicyRefusal)) log.warn({ err: errorMessage(err) }, 'proxy failure on an attach');
    const body = JSON.stringify({ message: `sandpool socket proxy: ${refusal.message}` });
    client.end(`HTTP/1.1 ${refusal.status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }

  // Attach: the engine upgrades the connection and streams raw stdio both ways.
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    client.on('error', () => undefined);
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://docker');
      const route = routeOf(req.method ?? 'GET', url.pathname);
      if (route.kind !== 'sandbox' || route.action !== 'attach') throw new PolicyRefusal(`${req.method} ${url.pathname} is not a call sandpool makes as an upgrade`, 403);
      const path = upstreamPath(route, upstreamQuery(route, url.searchParams), await sandboxId(route.id));
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
        // The request line and headers are the proxy's own: nothing of the client's headers reaches the engine.
        upstream.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`);
        if (rest.length > 0) upstream.write(rest);
        upstream.pipe(client);
        client.pipe(upstream);
      });
    })().catch((err: unknown) => refuseRaw(client, err));
  });
  return server;
}
