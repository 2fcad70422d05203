/**
 * The MCP types sandpool passes around (tool lists, tool results, log
 * levels), from the SDK's v2 client package: the one place that names it, so
 * the chat, the pool and the wire contract do not depend on an SDK package.
 * In the wire layer: the contract's payloads carry them.
 */
export type { CallToolResult, LoggingLevel, Tool } from '@modelcontextprotocol/client';
