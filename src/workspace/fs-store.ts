import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { WorkspaceCorruptError, decodeSnapshot, encodeSnapshot, type WorkspaceStore } from './workspace-store.js';

/**
 * Snapshots as files under WORKSPACE_DIR, one per user (named by a hash of the
 * user id, so ids never become paths). A save writes a temporary file,
 * fsyncs it and renames it over the old one: a crash leaves the old snapshot
 * or the new one, never a torn one. Saves of one user are serialized here;
 * the fs store is for one replica (several share Redis).
 */
export function createFsWorkspaceStore(options: { dir: string; /** Snapshots unsaved this long are removed (WORKSPACE_TTL_S). */ ttlMs?: number }): WorkspaceStore {
  const queues = new Map<string, Promise<unknown>>();
  const fileOf = (userId: string): string => path.join(options.dir, `${createHash('sha256').update(userId).digest('hex')}.snapshot`);
  let ready: Promise<unknown> | undefined;
  const ensureDir = (): Promise<unknown> => (ready ??= mkdir(options.dir, { recursive: true, mode: 0o700 }));

  /** Runs `work` after the user's previous save or remove. */
  function serial<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const next = (queues.get(userId) ?? Promise.resolve()).then(work, work);
    const settled = next.then(() => undefined, () => undefined);
    queues.set(userId, settled);
    void settled.then(() => {
      if (queues.get(userId) === settled) queues.delete(userId);
    });
    return next;
  }

  async function read(file: string): Promise<Buffer | undefined> {
    try {
      return await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  // Expiry as Redis does it by TTL: a sweep by modification time, now and then.
  async function sweep(): Promise<void> {
    if (options.ttlMs === undefined) return;
    const cutoff = Date.now() - options.ttlMs;
    const names = await readdir(options.dir).catch(() => [] as string[]);
    for (const name of names) {
      const file = path.join(options.dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(file, { force: true }).catch(() => undefined);
    }
  }
  const sweeper = options.ttlMs === undefined ? undefined : setInterval(() => void sweep(), Math.min(options.ttlMs, 3_600_000));
  sweeper?.unref();
  void sweep();

  return {
    kind: 'fs',
    async load(userId) {
      const bytes = await read(fileOf(userId));
      return bytes === undefined ? undefined : decodeSnapshot(bytes);
    },
    save(userId, snapshot) {
      return serial(userId, async () => {
        await ensureDir();
        const file = fileOf(userId);
        const current = await read(file);
        if (current !== undefined) {
          try {
            if (decodeSnapshot(current).version >= snapshot.version) return 'stale' as const;
          } catch (err) {
            // A corrupt file is replaced by a good snapshot.
            if (!(err instanceof WorkspaceCorruptError)) throw err;
          }
        }
        const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
        const handle = await open(tmp, 'w', 0o600);
        try {
          await handle.writeFile(encodeSnapshot(snapshot));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, file);
        return 'stored' as const;
      });
    },
    remove(userId) {
      return serial(userId, () => rm(fileOf(userId), { force: true }));
    },
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...queues.values()]);
    },
  };
}
