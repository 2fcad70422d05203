import { jwtVerify } from 'jose';
import { SandpoolError } from '../errors.js';

const USER_ID = /^[A-Za-z0-9_.@:+-]{1,128}$/;

/** Resolves who a connecting client is, from its Socket.IO handshake `auth`. */
export type Authenticate = (auth: unknown) => Promise<string>;

/**
 * With AUTH_SECRET: `auth.token` must be an HS256 JWT signed with it; the
 * user is its `sub`. Without (development): `auth.userId` is taken as is.
 */
export function createAuthenticator(secret: string | undefined): Authenticate {
  const key = secret === undefined ? undefined : new TextEncoder().encode(secret);
  return async (auth) => {
    const fields = typeof auth === 'object' && auth !== null ? (auth as Record<string, unknown>) : {};
    if (key) {
      const token = fields.token;
      if (typeof token !== 'string' || token === '') throw new SandpoolError('UNAUTHORIZED', 'auth.token (a JWT) is required');
      let sub: unknown;
      try {
        ({ payload: { sub } } = await jwtVerify(token, key, { algorithms: ['HS256'] }));
      } catch (err) {
        throw new SandpoolError('UNAUTHORIZED', `invalid token: ${err instanceof Error ? err.message : 'verification failed'}`);
      }
      if (typeof sub !== 'string' || !USER_ID.test(sub)) throw new SandpoolError('UNAUTHORIZED', 'token has no usable sub claim');
      return sub;
    }
    const userId = fields.userId;
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw new SandpoolError('UNAUTHORIZED', 'auth.userId is required (1-128 letters, digits or _ . @ : + -); this server has no AUTH_SECRET');
    }
    return userId;
  };
}
