import { ClientCapabilitiesSchema, ImplementationSchema } from '@modelcontextprotocol/core';
import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, SERVER_INFO_META_KEY, isJsonContentType } from '@modelcontextprotocol/server';
import type { CallToolResult } from '../protocol/mcp-types.js';
import { GATEWAY_INFO } from './user-mcp-server.js';

/**
 * The held call's fast path. A 2026-07-28 `tools/call` is the gateway's
 * hot path: a client calling tools in the sandbox it holds. The SDK's
 * stateless entry answers it correctly but expensively for one call: a
 * Request, a server instance, a per-request transport, an AbortController and
 * zod on the request and again on the result, then a Response (about 0.7 ms
 * of CPU). A call that is plainly valid (below) is answered here instead,
 * with the same bytes the SDK would send (a unit test holds the two to it);
 * anything else, every refusal of a malformed request included, goes to the
 * SDK's entry, which answers it itself.
 *
 * Plainly valid means: one JSON-RPC request, `tools/call`, a string name, an
 * object of arguments or none; its `_meta` carries exactly the required
 * envelope (protocol version 2026-07-28, a valid clientInfo and
 * clientCapabilities) and nothing else reserved (no trace context, log level,
 * request state, input responses, progress token: those need the SDK, or a
 * stream); `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` say exactly
 * what the body says; and the body is JSON. The tools/call itself runs in
 * the same code either way (McpTools.call).
 */

export interface PlainToolCall {
  id: string | number;
  name: string;
  arguments: Record<string, unknown>;
}

const MODERN = '2026-07-28';
const RESERVED_PREFIX = 'io.modelcontextprotocol/';
const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const PARAM_KEYS = new Set(['name', 'arguments', '_meta']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Whether a client's identity and capabilities are valid (the spec's
 * schemas, as the SDK checks them), remembered by their JSON: a client sends
 * the same envelope with every request.
 */
export function createEnvelopeCheck(maxEntries = 1024): (clientInfo: unknown, capabilities: unknown) => boolean {
  const known = new Map<string, boolean>();
  return (clientInfo, capabilities) => {
    const key = JSON.stringify([clientInfo, capabilities]);
    let valid = known.get(key);
    if (valid === undefined) {
      valid = ImplementationSchema.safeParse(clientInfo).success && ClientCapabilitiesSchema.safeParse(capabilities).success;
      if (known.size >= maxEntries) known.delete(known.keys().next().value as string);
      known.set(key, valid);
    }
    return valid;
  };
}

/** The request as a plainly valid 2026-07-28 tools/call (see above), or undefined: then the SDK answers it. */
export function plainToolCall(body: unknown, header: (name: string) => string | undefined, envelopeValid: (clientInfo: unknown, capabilities: unknown) => boolean): PlainToolCall | undefined {
  if (!isPlainObject(body) || body.jsonrpc !== '2.0' || body.method !== 'tools/call') return undefined;
  const { id, params } = body;
  if (!(typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id)))) return undefined;
  for (const key of Object.keys(body)) if (!REQUEST_KEYS.has(key)) return undefined;
  if (!isPlainObject(params) || typeof params.name !== 'string') return undefined;
  for (const key of Object.keys(params)) if (!PARAM_KEYS.has(key)) return undefined;
  const args = params.arguments;
  if (args !== undefined && !isPlainObject(args)) return undefined;
  const meta = params._meta;
  if (!isPlainObject(meta) || meta[PROTOCOL_VERSION_META_KEY] !== MODERN) return undefined;
  for (const key of Object.keys(meta)) {
    if (key === 'progressToken') return undefined;
    if (key.startsWith(RESERVED_PREFIX) && key !== PROTOCOL_VERSION_META_KEY && key !== CLIENT_INFO_META_KEY && key !== CLIENT_CAPABILITIES_META_KEY) return undefined;
  }
  if (header('mcp-protocol-version') !== MODERN || header('mcp-method') !== 'tools/call' || header('mcp-name') !== params.name) return undefined;
  if (!isJsonContentType(header('content-type') ?? null)) return undefined;
  if (!envelopeValid(meta[CLIENT_INFO_META_KEY], meta[CLIENT_CAPABILITIES_META_KEY])) return undefined;
  return { id, name: params.name, arguments: args ?? {} };
}

/** A tools/call result as the SDK's 2026-07-28 codec puts it on the wire: `resultType`, and the server's identity in `_meta`. */
export function encodeToolResult(id: string | number, result: CallToolResult): string {
  const resultType = (result as { resultType?: unknown }).resultType;
  if (resultType !== undefined && resultType !== 'complete') {
    // Only a broken or hostile sandbox says anything else (its server speaks 2025-11-25).
    return encodeError(id, -32603, 'the sandbox answered tools/call with a result type other than complete');
  }
  // The SDK's normalization: a result without content gets an empty one.
  const normalized: Record<string, unknown> = result.content === undefined ? { ...result, content: [] } : { ...result };
  normalized.resultType = 'complete';
  const meta = normalized._meta;
  if (meta === undefined) normalized._meta = { [SERVER_INFO_META_KEY]: GATEWAY_INFO };
  else if (isPlainObject(meta) && meta[SERVER_INFO_META_KEY] === undefined) normalized._meta = { ...meta, [SERVER_INFO_META_KEY]: GATEWAY_INFO };
  return JSON.stringify({ result: normalized, jsonrpc: '2.0', id });
}

/** A JSON-RPC error answer, as the SDK's server sends one. */
export function encodeError(id: string | number, code: number, message: string, data?: unknown): string {
  // The 2026-07-28 codec answers -32002 (resource not found) as -32602.
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code: code === -32002 ? -32602 : code, message, ...(data === undefined ? {} : { data }) } });
}
