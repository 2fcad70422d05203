import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { Authenticate, Identity } from '../auth/authenticator.js';
import type { OriginPolicy } from '../auth/origins.js';
import { SandpoolError, errorMessage, toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { McpSessionRegistry } from './mcp-sessions.js';
import { SANDPOOL_JSONRPC_ERROR } from './user-mcp-server.js';

export interface McpRoutesOptions {
  authenticate: Authenticate;
  /** With AUTH_SECRET the bearer token is a JWT; without (development), it is taken as the user id. */
  tokensAreJwts: boolean;
  /** AUTH_ISSUER: named as the authorization server in the resource metadata. */
  issuer: string | undefined;
  origins: OriginPolicy;
  /** PUBLIC_URL (or this replica's own URL): where the resource metadata says /mcp is. Never taken from request headers. */
  publicUrl(): string;
  sessions: McpSessionRegistry;
  /** A user's MCP server, for a stateless request (no session). */
  serverFor(userId: string): Server;
  maxBodyBytes: number;
  logger: Logger;
  /** A request whose token was refused (metrics). */
  onAuthFailed?(): void;
}

const METADATA_PATH = '/.well-known/oauth-protected-resource';

/** A JSON-RPC error answer for an HTTP status (id null: the request could not be read). */
function jsonRpcError(c: Context, status: 400 | 401 | 403 | 404 | 405 | 413 | 429 | 503, code: number, message: string, data?: unknown): Response {
  return c.json({ jsonrpc: '2.0', error: { code, message, ...(data === undefined ? {} : { data }) }, id: null }, status);
}

/**
 * A request body up to `max` bytes; undefined when it is larger. Read from
 * node's request when @hono/node-server serves it: the Fetch body would put a
 * web ReadableStream (and a full undici Request) on every tool call's path.
 */
async function readLimited(c: Context, max: number): Promise<string | undefined> {
  const req = c.req.raw;
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) return undefined;
  // @hono/node-server's bindings when it serves the request; none in `app.request()` tests.
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  const source: AsyncIterable<Uint8Array> | null = incoming ?? (req.body as unknown as AsyncIterable<Uint8Array> | null);
  if (!source) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function isInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => typeof m === 'object' && m !== null && (m as { method?: unknown }).method === 'initialize');
}

/**
 * `/mcp` (Streamable HTTP) and its RFC 9728 metadata. A request is
 * authenticated by its bearer token (the Socket.IO rules); a session id is
 * looked up with the user the token names, so another user's id is a 404. A
 * request without a session id that is not an initialize is answered
 * statelessly by a server made for it, so clients without sessions work too.
 */
export function createMcpRoutes(options: McpRoutesOptions): Hono {
  const app = new Hono();
  const log = options.logger.child({ component: 'McpGateway' });

  app.get(METADATA_PATH, (c) =>
    c.json({
      resource: `${options.publicUrl()}/mcp`,
      ...(options.issuer ? { authorization_servers: [options.issuer] } : {}),
      bearer_methods_supported: ['header'],
      resource_name: 'sandpool: your own sandbox\'s tools over MCP',
      resource_documentation: `${options.publicUrl()}/`,
    }),
  );

  /** Who is asking, or the 401 that says how to ask. */
  async function identify(c: Context): Promise<Identity | Response> {
    const challenge = (extra = ''): string => `Bearer resource_metadata="${options.publicUrl()}${METADATA_PATH}"${extra}`;
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      // Not counted as a failure: a client's first request without a token is how it discovers the metadata.
      c.header('www-authenticate', challenge());
      return c.json({ error: { code: 'UNAUTHORIZED', message: 'an Authorization: Bearer token is required' } }, 401);
    }
    try {
      return await options.authenticate(options.tokensAreJwts ? { token: match[1] } : { userId: match[1] });
    } catch (err) {
      options.onAuthFailed?.();
      const message = err instanceof SandpoolError ? err.message : 'the token was not accepted';
      c.header('www-authenticate', challenge(`, error="invalid_token", error_description="${message.replace(/"/g, "'")}"`));
      return c.json({ error: { code: 'UNAUTHORIZED', message } }, 401);
    }
  }

  app.all('/mcp', async (c) => {
    // A browser's request from a foreign page (DNS rebinding, CSRF) goes no further.
    if (!options.origins.allows(c.req.header('origin'))) {
      return jsonRpcError(c, 403, SANDPOOL_JSONRPC_ERROR, 'this Origin may not use /mcp (ALLOWED_ORIGINS)', { code: 'UNAUTHORIZED' });
    }
    const identity = await identify(c);
    if (identity instanceof Response) return identity;
    const { userId } = identity;
    // The plan rides with each request (a session outlives the token that opened it): tools/call reads it from here.
    const authInfo = { token: '', clientId: userId, scopes: [], extra: { plan: identity.plan }, ...(identity.expiresAtMs ? { expiresAt: Math.floor(identity.expiresAtMs / 1000) } : {}) };

    const sessionId = c.req.header('mcp-session-id');
    const session = sessionId === undefined ? undefined : options.sessions.get(sessionId, userId);
    if (sessionId !== undefined && !session) return jsonRpcError(c, 404, -32001, 'Session not found: it ended, or it is not yours; initialize a new one', { code: 'NOT_FOUND' });
    if (session) options.sessions.touch(session, identity.expiresAtMs);
    if (c.req.method === 'GET' || c.req.method === 'DELETE') {
      // The server's stream and the end of a session: no body, and only within a session.
      if (!session) return jsonRpcError(c, 400, -32000, 'Bad Request: an Mcp-Session-Id header is required (initialize first)', { code: 'BAD_REQUEST' });
      return session.transport.handleRequest(c.req.raw, { authInfo });
    }
    if (c.req.method !== 'POST') {
      c.header('allow', 'GET, POST, DELETE');
      return jsonRpcError(c, 405, -32000, `${c.req.method} is not supported on /mcp`, { code: 'BAD_REQUEST' });
    }
    // Every POST body is read and parsed here, once: the same 413 and parse errors, with data.code, in a session or not.
    const text = await readLimited(c, options.maxBodyBytes);
    if (text === undefined) {
      return jsonRpcError(c, 413, SANDPOOL_JSONRPC_ERROR, `the request body is larger than ${options.maxBodyBytes} bytes (MCP_MAX_BODY_BYTES)`, { code: 'PAYLOAD_TOO_LARGE' });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      return jsonRpcError(c, 400, -32700, `Parse error: ${errorMessage(err)}`, { code: 'BAD_REQUEST' });
    }
    if (session) return session.transport.handleRequest(c.req.raw, { parsedBody: body, authInfo });

    if (isInitialize(body)) {
      let transport: WebStandardStreamableHTTPServerTransport;
      try {
        transport = await options.sessions.open(userId, identity.expiresAtMs);
      } catch (err) {
        const e = toClientError(err, log);
        return jsonRpcError(c, e.code === 'TOO_MANY_REQUESTS' ? 429 : 503, SANDPOOL_JSONRPC_ERROR, e.message, e);
      }
      return transport.handleRequest(c.req.raw, { parsedBody: body, authInfo });
    }

    // No session: answered by a server made for this one request.
    const server = options.serverFor(userId);
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true, maxRequestBodySize: options.maxBodyBytes });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw, { parsedBody: body, authInfo });
    } finally {
      void server.close().catch(() => undefined);
    }
  });
  return app;
}
