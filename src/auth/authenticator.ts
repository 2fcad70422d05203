import { SandpoolError } from '../errors.js';
import { createTokenVerifier, type TokenRules } from './token-verifier.js';

const USER_ID = /^[A-Za-z0-9_.@:+-]{1,128}$/;

/** Who a client is, and until when (a token's exp; the development identity never expires). */
export interface Identity {
  userId: string;
  expiresAtMs: number | undefined;
  /** The token's `scope` (space-separated, OAuth style); the development identity has none. */
  scopes: readonly string[];
}

/** What a client presents: a token (JWT), or, without AUTH_SECRET, a user id. */
export interface Credentials {
  token?: unknown;
  userId?: unknown;
}

export type Authenticate = (credentials: Credentials) => Promise<Identity>;

export interface AuthSettings extends Omit<TokenRules, 'secret'> {
  secret: string | undefined;
}

/**
 * With AUTH_SECRET: the token must pass the token rules (token-verifier.ts)
 * with AUTH_SECRET as the key; its `sub` is the user. Without (development):
 * the user id is taken as is; the server then listens on loopback only (see config).
 */
export function createAuthenticator(settings: AuthSettings): Authenticate {
  const { secret } = settings;
  const verify = secret === undefined ? undefined : createTokenVerifier({ ...settings, secret });
  return async ({ token, userId }) => {
    if (verify) {
      const verified = await verify(token);
      return { userId: verified.sub, expiresAtMs: verified.expiresAtMs, scopes: verified.scopes };
    }
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw new SandpoolError('UNAUTHORIZED', 'a userId is required (1-128 letters, digits or _ . @ : + -); this server has no AUTH_SECRET');
    }
    return { userId, expiresAtMs: undefined, scopes: [] };
  };
}
