import { PROTOCOL_VERSION_META_KEY, SUPPORTED_PROTOCOL_VERSIONS, WebStandardStreamableHTTPServerTransport, createMcpHandler, isLegacyRequest, type AuthInfo, type Server } from '@modelcontextprotocol/server';
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { Authenticate, Identity } from '../auth/authenticator.js';
import type { OriginPolicy } from '../auth/origins.js';
import { SandpoolError, errorMessage, toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createEnvelopeCheck, encodeError, encodeToolResult, plainToolCall } from './held-call.js';
import { createIdentityCache } from './identity-cache.js';
import type { McpSessionRegistry } from './mcp-sessions.js';
import { JsonRpcError, SANDPOOL_JSONRPC_ERROR, type McpTools } from './user-mcp-server.js';

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
  /** A user's MCP server, for one request without a session (either era). */
  serverFor(userId: string): Server;
  /** tools/call as the servers run it: the held call's fast path runs the same. */
  tools: McpTools;
  /** Answer plainly valid 2026-07-28 tools/call requests without the SDK's per-request machinery (held-call.ts). Default true; off, every request goes through the SDK. */
  heldCallFastPath?: boolean;
  maxBodyBytes: number;
  logger: Logger;
  /** Counts a POST /mcp by the protocol era it was served in (metrics). */
  observeEra?(era: 'modern' | 'legacy'): void;
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
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) return undefined;
  // @hono/node-server's bindings when it serves the request; none in `app.request()` tests.
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  const source: AsyncIterable<Uint8Array> | null = incoming ?? (c.req.raw.body as unknown as AsyncIterable<Uint8Array> | null);
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

/**
 * Whether a request is 2025-era (legacy), as the SDK's isLegacyRequest
 * decides it: legacy exactly when it carries no `_meta` envelope claim (the
 * protocol-version key). The common cases are read here from the parsed
 * body; the rest (batches, a 2026 MCP-Protocol-Version header without the
 * claim) are left to the SDK's own predicate.
 */
async function isLegacy(c: Context, body: unknown, maxBodyBytes: number): Promise<boolean> {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const meta = (body as { params?: { _meta?: unknown } }).params?._meta;
    if (typeof meta === 'object' && meta !== null && !Array.isArray(meta) && PROTOCOL_VERSION_META_KEY in meta) return false;
    const version = c.req.header('mcp-protocol-version');
    if (version === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return true;
  }
  return isLegacyRequest(c.req.raw, body, { maxRequestBodySize: maxBodyBytes });
}

function isInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => typeof m === 'object' && m !== null && (m as { method?: unknown }).method === 'initialize');
}

/** The gateway's routes, and what shutdown closes of it (open 2026-07-28 streams). */
export interface McpGateway {
  readonly routes: Hono;
  /** Ends the 2026-07-28 exchanges in flight and the subscriptions/listen streams. Sessions close with their registry. */
  close(): Promise<void>;
}

/** The user a request's AuthInfo names (set here, from the bearer token, never from the request). */
function userOf(authInfo: AuthInfo | undefined): string {
  if (!authInfo?.clientId) throw new Error('an MCP request reached a server without the user its token names');
  return authInfo.clientId;
}

/**
 * `/mcp` (Streamable HTTP) and its RFC 9728 metadata, for both protocol eras
 * at one URL. A request is authenticated by its bearer token (the Socket.IO
 * rules), every time. Then:
 * - a 2026-07-28 request (its `_meta` names the protocol version) goes to the
 *   SDK's stateless entry (createMcpHandler): `server/discover`, the
 *   MCP-Protocol-Version / Mcp-Method / Mcp-Name checks (400 with -32020 on a
 *   mismatch, -32022 for a version it does not serve), `subscriptions/listen`,
 *   and a server made for that one request and that user;
 * - a 2025-era request keeps today's rules: initialize opens a session that
 *   belongs to the token's user (another user's session id is a 404), and a
 *   request with neither session nor initialize is answered statelessly.
 */
export function createMcpRoutes(options: McpRoutesOptions): McpGateway {
  const app = new Hono();
  const log = options.logger.child({ component: 'McpGateway' });
  const modern = createMcpHandler(({ authInfo }) => options.serverFor(userOf(authInfo)), {
    // 2025-era traffic never reaches it: the sessions below answer that.
    legacy: 'reject',
    maxRequestBodySize: options.maxBodyBytes,
    // Refused requests (a header that disagrees with the body, an unknown version) are the client's business: answered, not alarming.
    onerror: (err) => log.debug({ err: errorMessage(err) }, 'MCP request refused or failed (2026-07-28 entry)'),
  });
  const fastPath = options.heldCallFastPath ?? true;
  const envelopeValid = createEnvelopeCheck();
  // A 2026-07-28 client sends its token with every request: verified once, until it expires.
  const verifyToken = createIdentityCache(options.authenticate, { maxEntries: 10_000 });

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
      c.header('www-authenticate', challenge());
      return c.json({ error: { code: 'UNAUTHORIZED', message: 'an Authorization: Bearer token is required' } }, 401);
    }
    try {
      return await (options.tokensAreJwts ? verifyToken(match[1]) : options.authenticate({ userId: match[1] }));
    } catch (err) {
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
    const authInfo: AuthInfo = { token: '', clientId: userId, scopes: [], ...(identity.expiresAtMs ? { expiresAt: Math.floor(identity.expiresAtMs / 1000) } : {}) };

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
    if (session) {
      options.observeEra?.('legacy');
      return session.transport.handleRequest(c.req.raw, { parsedBody: body, authInfo });
    }

    const legacy = await isLegacy(c, body, options.maxBodyBytes);
    options.observeEra?.(legacy ? 'legacy' : 'modern');
    const held = !legacy && fastPath ? plainToolCall(body, (name) => c.req.header(name), envelopeValid) : undefined;
    if (held) {
      let answer: string;
      try {
        answer = encodeToolResult(held.id, await options.tools.call(userId, held.name, held.arguments));
      } catch (err) {
        const e = err instanceof JsonRpcError ? err : new JsonRpcError(-32603, 'Internal error', undefined);
        if (!(err instanceof JsonRpcError)) log.error({ err: errorMessage(err), user: userId }, 'a held tools/call failed unexpectedly');
        answer = encodeError(held.id, e.code, e.message, e.data);
      }
      return c.body(answer, 200, { 'content-type': 'application/json' });
    }
    if (!legacy) {
      return modern.fetch(untilTokenExpires(c.req.raw, body, identity.expiresAtMs), { parsedBody: body, authInfo });
    }

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
  return { routes: app, close: () => modern.close() };
}

/**
 * A subscriptions/listen stream lives only as long as the token that opened
 * it (as a session does): its request's signal, which the SDK's listen router
 * ends the stream on, also fires when the token expires. Any other request is
 * passed on as it is.
 */
function untilTokenExpires(request: Request, body: unknown, expiresAtMs: number | undefined): Request {
  if (expiresAtMs === undefined || (body as { method?: unknown } | null)?.method !== 'subscriptions/listen') return request;
  const expiry = AbortSignal.timeout(Math.min(Math.max(0, expiresAtMs - Date.now()), 2 ** 31 - 1));
  // Without the body: it was read and parsed already (the SDK is given it parsed).
  return new Request(request.url, { method: request.method, headers: request.headers, signal: AbortSignal.any([request.signal, expiry]) });
}
