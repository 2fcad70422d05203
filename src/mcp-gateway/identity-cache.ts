import type { Authenticate, Identity } from '../auth/authenticator.js';

/**
 * Verified bearer tokens, remembered until they expire: an MCP client sends
 * its token with every request (2026-07-28 has no session to remember it
 * by), and checking a JWT's signature is most of a held call's CPU after the
 * SDK's own (about 0.3 ms). A token is the key, whole: the identity it
 * proved is given again for exactly that token, and only while its `exp` has
 * not passed (past it, the token is verified again, and refused). Refused
 * tokens are not remembered. Bounded: the oldest entry goes first.
 */
export function createIdentityCache(authenticate: Authenticate, options: { maxEntries: number; now?: () => number }): (token: string) => Promise<Identity> {
  const now = options.now ?? Date.now;
  const known = new Map<string, Identity>();
  return async (token) => {
    const hit = known.get(token);
    if (hit && (hit.expiresAtMs === undefined || now() < hit.expiresAtMs)) return hit;
    if (hit) known.delete(token);
    const identity = await authenticate({ token });
    if (known.size >= options.maxEntries) known.delete(known.keys().next().value as string);
    known.set(token, identity);
    return identity;
  };
}
