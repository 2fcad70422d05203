import { errors as joseErrors, jwtVerify } from 'jose';
import { SandpoolError } from '../errors.js';

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

export interface AuthSettings {
  secret: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  clockToleranceMs: number;
}

/** Says what is wrong with a token in words a client can act on, without echoing it. */
function tokenProblem(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired; get a fresh one and reconnect';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `the token has no "${err.claim}" claim (sub and exp are required)`;
    return `the token's "${err.claim}" claim is not accepted here`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the token must be signed with HS256';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is not valid';
  return 'the token is not a valid JWT';
}

/**
 * With AUTH_SECRET: the token must be an HS256 JWT signed with it, with `sub`
 * (the user) and `exp`, and `iss` / `aud` matching AUTH_ISSUER /
 * AUTH_AUDIENCE when those are set. Without (development): the user id is
 * taken as is; the server then listens on loopback only (see config).
 */
export function createAuthenticator(settings: AuthSettings): Authenticate {
  const key = settings.secret === undefined ? undefined : new TextEncoder().encode(settings.secret);
  return async ({ token, userId }) => {
    if (key) {
      if (typeof token !== 'string' || token === '') throw new SandpoolError('UNAUTHORIZED', 'a token (JWT) is required');
      let payload: { sub?: unknown; exp?: unknown; scope?: unknown };
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
          requiredClaims: ['sub', 'exp'],
          ...(settings.issuer !== undefined ? { issuer: settings.issuer } : {}),
          ...(settings.audience !== undefined ? { audience: settings.audience } : {}),
          clockTolerance: Math.round(settings.clockToleranceMs / 1000),
        }));
      } catch (err) {
        throw new SandpoolError('UNAUTHORIZED', `invalid token: ${tokenProblem(err)}`);
      }
      if (typeof payload.sub !== 'string' || !USER_ID.test(payload.sub)) {
        throw new SandpoolError('UNAUTHORIZED', 'invalid token: its "sub" claim is not a usable user id (1-128 letters, digits or _ . @ : + -)');
      }
      const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
      return { userId: payload.sub, expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined, scopes };
    }
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw new SandpoolError('UNAUTHORIZED', 'a userId is required (1-128 letters, digits or _ . @ : + -); this server has no AUTH_SECRET');
    }
    return { userId, expiresAtMs: undefined, scopes: [] };
  };
}
