import { errors as joseErrors, jwtVerify } from 'jose';
import { SandpoolError } from '../errors.js';

/** What a verified token says. */
export interface VerifiedToken {
  sub: string;
  expiresAtMs: number;
  /** The token's `scope` (space-separated, OAuth style). */
  scopes: readonly string[];
  /** Every claim, for readers of optional ones (e.g. `plan`). */
  claims: Readonly<Record<string, unknown>>;
}

export interface TokenRules {
  /** The HS256 key. */
  secret: string;
  issuer: string | undefined;
  audience: string | undefined;
  clockToleranceMs: number;
  /** The longest lifetime (exp - iat) accepted, in seconds (AUTH_MAX_TOKEN_LIFETIME_S). */
  maxLifetimeS: number;
}

export type VerifyToken = (token: unknown) => Promise<VerifiedToken>;

const SUBJECT = /^[A-Za-z0-9_.@:+-]{1,128}$/;

/** Says what is wrong with a token in words a client can act on, without echoing it. */
function tokenProblem(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired; get a fresh one and reconnect';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `the token has no "${err.claim}" claim (sub, iat and exp are required)`;
    return `the token's "${err.claim}" claim is not accepted here`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the token must be signed with HS256';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is not valid';
  return 'the token is not a valid JWT';
}

/**
 * The one set of token rules, for users' tokens (AUTH_SECRET) and operators'
 * (OPERATOR_SECRET) alike: HS256 only; `sub`, `iat` and `exp` required;
 * `iss` / `aud` checked when configured; a bounded lifetime (a leaked token
 * is worth at most that long) and no `iat` in the future.
 */
export function createTokenVerifier(rules: TokenRules): VerifyToken {
  const key = new TextEncoder().encode(rules.secret);
  const toleranceS = Math.round(rules.clockToleranceMs / 1000);
  return async (token) => {
    if (typeof token !== 'string' || token === '') throw new SandpoolError('UNAUTHORIZED', 'a token (JWT) is required');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'exp', 'iat'],
        ...(rules.issuer !== undefined ? { issuer: rules.issuer } : {}),
        ...(rules.audience !== undefined ? { audience: rules.audience } : {}),
        clockTolerance: toleranceS,
      }));
    } catch (err) {
      throw new SandpoolError('UNAUTHORIZED', `invalid token: ${tokenProblem(err)}`);
    }
    const { sub, exp, iat } = payload;
    if (typeof sub !== 'string' || !SUBJECT.test(sub)) {
      throw new SandpoolError('UNAUTHORIZED', 'invalid token: its "sub" claim is not a usable id (1-128 letters, digits or _ . @ : + -)');
    }
    if (typeof exp !== 'number' || typeof iat !== 'number') throw new SandpoolError('UNAUTHORIZED', 'invalid token: "exp" and "iat" must be numbers');
    if (iat > Date.now() / 1000 + toleranceS) throw new SandpoolError('UNAUTHORIZED', 'invalid token: it was issued in the future ("iat")');
    if (exp - iat > rules.maxLifetimeS) {
      throw new SandpoolError('UNAUTHORIZED', `invalid token: it lives ${Math.round(exp - iat)} s (exp - iat), longer than the ${rules.maxLifetimeS} s allowed (AUTH_MAX_TOKEN_LIFETIME_S)`);
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    return { sub, expiresAtMs: exp * 1000, scopes, claims: payload };
  };
}
