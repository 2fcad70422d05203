import { errors as joseErrors, jwtVerify } from 'jose';
import { SandpoolError } from '../errors.js';
import { DEFAULT_PLANS } from '../plans/plans.js';

const USER_ID = /^[A-Za-z0-9_.@:+-]{1,128}$/;

/** Who a client is, and until when (a token's exp; the development identity never expires). */
export interface Identity {
  userId: string;
  expiresAtMs: number | undefined;
  /** The token's `scope` (space-separated, OAuth style); the development identity has none. */
  scopes: readonly string[];
  /** The user's plan: the token's `plan` claim, else DEFAULT_PLAN; always one this deployment has. */
  plan: string;
}

/** What a client presents: a token (JWT), or, without AUTH_SECRET, a user id. */
export interface Credentials {
  token?: unknown;
  userId?: unknown;
  /** Development identity only (no AUTH_SECRET): the plan to act under; a token's comes from its claim. */
  plan?: unknown;
}

export type Authenticate = (credentials: Credentials) => Promise<Identity>;

export interface AuthSettings {
  secret: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  clockToleranceMs: number;
}

/** Which plans exist, to check a token's `plan` claim against (the plan catalogue). */
export interface KnownPlans {
  readonly names: readonly string[];
  readonly defaultPlan: { readonly name: string };
  get(name: string): unknown;
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
/** The built-in plans (PLANS_FILE unset), default free: for callers that configure none. */
const BUILT_IN_PLANS: KnownPlans = { names: Object.keys(DEFAULT_PLANS), defaultPlan: { name: 'free' }, get: (name) => (Object.hasOwn(DEFAULT_PLANS, name) ? DEFAULT_PLANS[name] : undefined) };

export function createAuthenticator(settings: AuthSettings, plans: KnownPlans = BUILT_IN_PLANS): Authenticate {
  const key = settings.secret === undefined ? undefined : new TextEncoder().encode(settings.secret);
  /**
   * A plan this deployment does not have is refused as UNAUTHORIZED, not
   * served under another plan: the token is not valid here (its issuer and
   * this PLANS_FILE disagree), and the client cannot fix the request itself.
   */
  const planOf = (claim: unknown, source: string): string => {
    if (claim === undefined) return plans.defaultPlan.name;
    if (typeof claim === 'string' && plans.get(claim) !== undefined) return claim;
    throw new SandpoolError('UNAUTHORIZED', `${source} ${JSON.stringify(typeof claim === 'string' ? claim.slice(0, 64) : claim)} is not a plan of this server (${plans.names.join(', ')})`);
  };
  return async ({ token, userId, plan }) => {
    if (key) {
      if (typeof token !== 'string' || token === '') throw new SandpoolError('UNAUTHORIZED', 'a token (JWT) is required');
      let payload: { sub?: unknown; exp?: unknown; scope?: unknown; plan?: unknown };
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
      const tokenPlan = planOf(payload.plan, 'invalid token: its "plan" claim');
      return { userId: payload.sub, expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined, scopes, plan: tokenPlan };
    }
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw new SandpoolError('UNAUTHORIZED', 'a userId is required (1-128 letters, digits or _ . @ : + -); this server has no AUTH_SECRET');
    }
    return { userId, expiresAtMs: undefined, scopes: [], plan: planOf(plan, 'plan') };
  };
}
