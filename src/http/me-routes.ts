import { Hono } from 'hono';
import type { Authenticate } from '../auth/authenticator.js';
import { SandpoolError } from '../errors.js';
import type { PlanCatalog } from '../plans/plans.js';
import type { Quota } from '../quota/quota.js';

/**
 * A user's own view: `GET /me/usage` with their token (the /mcp rules: a
 * bearer JWT, or without AUTH_SECRET the user id) answers their plan and,
 * per sliding window, the calls counted, the limit and when the count next
 * goes down (docs/plans-and-quotas.md).
 */
export function createMeRoutes(options: {
  authenticate: Authenticate;
  /** With AUTH_SECRET the bearer token is a JWT; without (development), it is the user id (and ?plan= may name a plan). */
  tokensAreJwts: boolean;
  plans: PlanCatalog;
  quota: Quota;
  onAuthFailed?(): void;
}): Hono {
  const app = new Hono();
  app.get('/me/usage', async (c) => {
    const token = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!token) {
      c.header('www-authenticate', 'Bearer');
      throw new SandpoolError('UNAUTHORIZED', 'an Authorization: Bearer token is required (the token you connect with)');
    }
    let identity: Awaited<ReturnType<Authenticate>>;
    try {
      identity = await options.authenticate(options.tokensAreJwts ? { token } : { userId: token, plan: c.req.query('plan') });
    } catch (err) {
      options.onAuthFailed?.();
      c.header('www-authenticate', 'Bearer error="invalid_token"');
      throw err;
    }
    c.header('cache-control', 'no-store');
    return c.json(await options.quota.usage(identity.userId, options.plans.resolve(identity.plan)));
  });
  return app;
}
