import { Hono } from 'hono';
import type { Authenticate } from '../auth/authenticator.js';
import { SandpoolError } from '../errors.js';

/** The scope an operator's token carries to use /admin. */
export const ADMIN_SCOPE = 'sandpool:admin';

/**
 * Operators' calls. With AUTH_SECRET they need a bearer JWT (the usual rules)
 * whose `scope` includes `sandpool:admin`; without it (development, loopback
 * only) they are open. nginx keeps /admin/ to internal addresses as well.
 */
export function createAdminRoutes(options: { authenticate: Authenticate; secured: boolean; wipeWorkspace(userId: string): Promise<void>; onAuthFailed?(): void }): Hono {
  const app = new Hono();

  app.use('/admin/*', async (c, next) => {
    if (!options.secured) return next();
    const refuse = (err: unknown): never => {
      options.onAuthFailed?.();
      throw err;
    };
    const token = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!token) refuse(new SandpoolError('UNAUTHORIZED', `an Authorization: Bearer token with scope ${ADMIN_SCOPE} is required`));
    const identity = await options.authenticate({ token }).catch(refuse);
    if (!identity.scopes.includes(ADMIN_SCOPE)) refuse(new SandpoolError('UNAUTHORIZED', `this token has no ${ADMIN_SCOPE} scope`));
    return next();
  });

  // Deletes a user's files: their saved snapshot and their live sandbox (privacy requests, cleanup).
  app.delete('/admin/workspaces/:userId', async (c) => {
    const userId = c.req.param('userId');
    await options.wipeWorkspace(userId);
    return c.json({ wiped: true, userId });
  });
  return app;
}
