import { Hono } from 'hono';

/**
 * Operators' calls. Who may call them is decided before these routes (the
 * operator guard in http-app.ts, as for /stats/* and /metrics).
 */
export function createAdminRoutes(options: { wipeWorkspace(userId: string): Promise<void> }): Hono {
  const app = new Hono();

  // Deletes a user's files: their saved snapshot and their live sandbox (privacy requests, cleanup).
  app.delete('/admin/workspaces/:userId', async (c) => {
    const userId = c.req.param('userId');
    await options.wipeWorkspace(userId);
    return c.json({ wiped: true, userId });
  });
  return app;
}
