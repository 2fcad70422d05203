import { SandpoolError } from '../errors.js';
import { DEFAULT_PLANS } from '../plans/plans.js';
import { createTokenVerifier, type TokenRules } from './token-verifier.js';

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

export interface AuthSettings extends Omit<TokenRules, 'secret'> {
  secret: string | undefined;
}

/** Which plans exist, to check a token's `plan` claim against (the plan catalogue). */
export interface KnownPlans {
  readonly names: readonly string[];
  readonly defaultPlan: { readonly name: string };
  get(name: string): unknown;
}

/** The built-in plans (PLANS_FILE unset), default free: for callers that configure none. */
const BUILT_IN_PLANS: KnownPlans = { names: Object.keys(DEFAULT_PLANS), defaultPlan: { name: 'free' }, get: (name) => (Object.hasOwn(DEFAULT_PLANS, name) ? DEFAULT_PLANS[name] : undefined) };

/**
 * With AUTH_SECRET: the token must pass the token rules (token-verifier.ts)
 * with AUTH_SECRET as the key; its `sub` is the user, its `plan` (optional)
 * the user's plan. Without (development): the user id is taken as is; the
 * server then listens on loopback only (see config).
 */
export function createAuthenticator(settings: AuthSettings, plans: KnownPlans = BUILT_IN_PLANS): Authenticate {
  const { secret } = settings;
  const verify = secret === undefined ? undefined : createTokenVerifier({ ...settings, secret });
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
    if (verify) {
      const verified = await verify(token);
      return { userId: verified.sub, expiresAtMs: verified.expiresAtMs, scopes: verified.scopes, plan: planOf(verified.claims.plan, 'invalid token: its "plan" claim') };
    }
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw new SandpoolError('UNAUTHORIZED', 'a userId is required (1-128 letters, digits or _ . @ : + -); this server has no AUTH_SECRET');
    }
    return { userId, expiresAtMs: undefined, scopes: [], plan: planOf(plan, 'plan') };
  };
}
