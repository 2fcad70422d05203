import { SignJWT } from 'jose';
import { OPERATOR_SCOPE } from './operator-guard.js';

/** Signs an operator token (HS256, scope sandpool:operator) with OPERATOR_SECRET: for scripts, tests and Prometheus. */
export function signOperatorToken(options: { secret: string; subject?: string; ttlS?: number; nowMs?: number }): Promise<string> {
  const nowS = Math.floor((options.nowMs ?? Date.now()) / 1000);
  return new SignJWT({ scope: OPERATOR_SCOPE })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.subject ?? 'operator')
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + (options.ttlS ?? 3_600))
    .sign(new TextEncoder().encode(options.secret));
}
