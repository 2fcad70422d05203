/** JWTs for tests: HS256 by default, every claim overridable (or dropped with undefined). */
import { SignJWT, type JWTPayload } from 'jose';
import { signOperatorToken } from '../../src/auth/operator-token.js';

export const TEST_SECRET = 'a-test-secret-of-at-least-32-bytes!!';

export async function makeToken(
  claims: Record<string, unknown> & { sub?: string | undefined; exp?: number | undefined } = {},
  options: { secret?: string; alg?: string } = {},
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { sub: 'alice', exp: nowS + 600, iat: nowS };
  for (const [k, v] of Object.entries(claims)) {
    if (v === undefined) delete payload[k];
    else payload[k] = v;
  }
  return new SignJWT(payload).setProtectedHeader({ alg: options.alg ?? 'HS256' }).sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** An unsigned token (alg "none"), as an attacker would send one. */
export function unsignedToken(claims: Record<string, unknown>): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

/** OPERATOR_SECRET of the test replicas that set AUTH_SECRET. */
export const TEST_OPERATOR_SECRET = 'a-test-operator-secret-of-32-bytes!';

/** Authorization for /stats/*, /metrics and /admin/* of a replica with TEST_OPERATOR_SECRET. */
export async function operatorHeaders(secret = TEST_OPERATOR_SECRET): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await signOperatorToken({ secret })}` };
}
