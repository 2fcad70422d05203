import { randomBytes } from 'node:crypto';
import { createRequestStateCodec, type ServerContext } from '@modelcontextprotocol/server';

/**
 * The check of a `requestState` a 2026-07-28 client echoes back (the state of
 * a multi-round-trip call, which travels through the client and is its input
 * to forge). sandpool asks clients for nothing mid-call, so it never mints
 * one: every echoed state is refused (JSON-RPC -32602 "Invalid or expired
 * requestState"), forged or replayed alike. The check is the SDK's HMAC codec
 * bound to the user the token names, so the day sandpool does mint state
 * (with a key every replica shares, instead of this per-process one), a
 * state minted for one user is still refused for another.
 */
export function createRequestStateCheck(): (state: string, ctx: ServerContext) => Promise<unknown> {
  const codec = createRequestStateCodec({ key: randomBytes(32), bind: (ctx) => ctx.http?.authInfo?.clientId ?? '' });
  return (state, ctx) => codec.verify(state, ctx);
}
