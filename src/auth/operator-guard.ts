import { SandpoolError } from '../errors.js';
import { createTokenVerifier, type TokenRules } from './token-verifier.js';

/** The scope an operator token carries (signed with OPERATOR_SECRET). */
export const OPERATOR_SCOPE = 'sandpool:operator';

/**
 * Who may call the operator endpoints (/stats/*, /metrics, /admin/*). Never
 * decided by a source address: behind a userland proxy or a swarm's routing
 * mesh every client arrives from a private address.
 */
export interface OperatorGuard {
  /** Resolves when the Authorization header carries an operator token; throws UNAUTHORIZED otherwise. */
  check(authorization: string | undefined): Promise<void>;
  /** How the endpoints are guarded, for the start-up log. */
  readonly mode: 'open' | 'token' | 'closed';
}

export interface OperatorGuardSettings extends Omit<TokenRules, 'secret' | 'issuer' | 'audience'> {
  /** AUTH_SECRET: without it (development, loopback only) the endpoints are open. */
  authSecret: string | undefined;
  /** OPERATOR_SECRET: the key of operator tokens, never AUTH_SECRET. */
  operatorSecret: string | undefined;
}

const bearer = (authorization: string | undefined): string | undefined => /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];

export function createOperatorGuard(settings: OperatorGuardSettings): OperatorGuard {
  if (settings.authSecret === undefined) return { mode: 'open', check: () => Promise.resolve() };
  if (settings.operatorSecret === undefined) {
    return {
      mode: 'closed',
      check: () => Promise.reject(new SandpoolError('UNAUTHORIZED', 'operator endpoints are closed on this server: it has no OPERATOR_SECRET to check operator tokens with')),
    };
  }
  // Whoever issues user tokens (AUTH_SECRET) cannot mint these. Operators mint
  // them with OPERATOR_SECRET (npm run operator-token), not the users' identity
  // provider: AUTH_ISSUER / AUTH_AUDIENCE do not apply.
  const verify = createTokenVerifier({
    secret: settings.operatorSecret,
    issuer: undefined,
    audience: undefined,
    clockToleranceMs: settings.clockToleranceMs,
    maxLifetimeS: settings.maxLifetimeS,
  });
  return {
    mode: 'token',
    async check(authorization) {
      const token = bearer(authorization);
      if (!token) throw new SandpoolError('UNAUTHORIZED', `an Authorization: Bearer operator token (signed with OPERATOR_SECRET, scope ${OPERATOR_SCOPE}) is required`);
      const verified = await verify(token).catch((err: unknown) => {
        throw err instanceof SandpoolError ? new SandpoolError('UNAUTHORIZED', `not an operator token: ${err.message}`) : err;
      });
      if (!verified.scopes.includes(OPERATOR_SCOPE)) throw new SandpoolError('UNAUTHORIZED', `this token has no ${OPERATOR_SCOPE} scope`);
    },
  };
}
