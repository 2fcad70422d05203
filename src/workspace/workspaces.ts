import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { SandboxLimitError, WorkspaceRestoreError, type WorkspaceChannel } from '../mcp/workspace-channel.js';
import { WorkspaceCorruptError, createVersionClock, type WorkspaceStore } from './workspace-store.js';

/** What a sandbox offers for its workspace (sandpool's image: the channel; other images: none). */
export interface WorkspaceHolder {
  readonly id: string;
  readonly workspace: WorkspaceChannel | undefined;
}

export type RestoreOutcome =
  | { kind: 'restored'; files: number; sizeBytes: number }
  | { kind: 'none' }
  | { kind: 'unsupported' }
  /** `reason` is for the user: what went wrong, in their words. */
  | { kind: 'failed'; reason: string };

export type SaveOutcome =
  | { kind: 'saved'; files: number; sizeBytes: number; archiveBytes: number }
  | { kind: 'unchanged' }
  | { kind: 'unsupported' }
  | { kind: 'too-large'; sizeBytes: number; maxBytes: number }
  /** The sandbox overran the channel's bounds and was removed; the last good snapshot stays. */
  | { kind: 'rejected'; reason: string }
  | { kind: 'failed'; reason: string };

/** Users' files kept across sandboxes: a snapshot after each change, restored into the next sandbox. */
export interface Workspaces {
  readonly enabled: boolean;
  /** Restores the user's newest snapshot into a fresh sandbox, before it runs the user's first call. */
  restore(userId: string, sandbox: WorkspaceHolder): Promise<RestoreOutcome>;
  /** A call that may have changed files ran in this sandbox. */
  markChanged(sandbox: WorkspaceHolder): void;
  /** Saves a snapshot of the user's sandbox when it changed since the last save; `maxBytes` (the user's plan's workspaceMaxBytes) bounds it instead of WORKSPACE_MAX_BYTES. */
  save(userId: string, sandbox: WorkspaceHolder, maxBytes?: number): Promise<SaveOutcome>;
  /**
   * Forgets the user's snapshot. With the sandbox they hold, first waits for
   * its saves in flight and stops tracking it, so no save lands after the wipe.
   */
  wipe(userId: string, sandbox?: WorkspaceHolder): Promise<void>;
  /** The sandbox is gone: forget what was tracked about it. */
  forget(sandbox: WorkspaceHolder): void;
}

export interface WorkspacesObserver {
  restored(ms: number, archiveBytes: number, outcome: RestoreOutcome['kind']): void;
  saved(ms: number, archiveBytes: number, outcome: SaveOutcome['kind']): void;
}

export function createWorkspaces(options: {
  store: WorkspaceStore;
  maxBytes: number;
  /** Bound on one snapshot or restore in the sandbox. */
  timeoutMs: number;
  logger: Logger;
  observer: WorkspacesObserver;
}): Workspaces {
  const { store, maxBytes, timeoutMs, observer } = options;
  const log = options.logger.child({ component: 'Workspaces' });
  const version = createVersionClock();
  /** Sandboxes whose files may have changed since their last saved snapshot. */
  const changed = new Set<string>();
  /** Saves of one sandbox run one after another: a later save always sees the later files. */
  const saving = new Map<string, Promise<SaveOutcome>>();

  if (store.kind === 'none') {
    return {
      enabled: false,
      restore: async () => ({ kind: 'none' }),
      markChanged: () => undefined,
      save: async () => ({ kind: 'unsupported' }),
      wipe: async () => undefined,
      forget: () => undefined,
    };
  }

  async function saveNow(userId: string, sandbox: WorkspaceHolder, limitBytes: number): Promise<SaveOutcome> {
    const channel = sandbox.workspace;
    if (!channel) return { kind: 'unsupported' };
    if (!changed.has(sandbox.id)) return { kind: 'unchanged' };
    // Cleared before packing: a change made while it packs marks it again.
    changed.delete(sandbox.id);
    const started = performance.now();
    let archiveBytes = 0;
    let outcome: SaveOutcome;
    try {
      const packed = await channel.snapshot(limitBytes, timeoutMs);
      if ('tooLarge' in packed) {
        outcome = { kind: 'too-large', ...packed.tooLarge };
      } else {
        archiveBytes = packed.archive.length;
        const stored = await store.save(userId, { version: version(), takenAtMs: Date.now(), files: packed.files, sizeBytes: packed.sizeBytes, archive: packed.archive });
        outcome = stored === 'stored' ? { kind: 'saved', files: packed.files, sizeBytes: packed.sizeBytes, archiveBytes } : { kind: 'unchanged' };
      }
    } catch (err) {
      if (err instanceof SandboxLimitError) {
        log.warn({ user: userId, sandbox: sandbox.id.slice(0, 12), detail: err.detail }, 'a sandbox overran the snapshot bounds');
        outcome = { kind: 'rejected', reason: err.message };
      } else {
        changed.add(sandbox.id);
        log.warn({ user: userId, sandbox: sandbox.id.slice(0, 12), err: errorMessage(err) }, 'could not save a workspace snapshot');
        outcome = { kind: 'failed', reason: 'the snapshot could not be stored right now' };
      }
    }
    if (outcome.kind === 'too-large') changed.add(sandbox.id);
    observer.saved(performance.now() - started, archiveBytes, outcome.kind);
    return outcome;
  }

  return {
    enabled: true,
    async restore(userId, sandbox) {
      const channel = sandbox.workspace;
      if (!channel) return { kind: 'unsupported' };
      const started = performance.now();
      let archiveBytes = 0;
      let outcome: RestoreOutcome;
      try {
        const snapshot = await store.load(userId);
        if (!snapshot) {
          outcome = { kind: 'none' };
        } else {
          archiveBytes = snapshot.archive.length;
          const { files, sizeBytes } = await channel.restore(snapshot.archive, Math.max(maxBytes, snapshot.sizeBytes), timeoutMs);
          outcome = { kind: 'restored', files, sizeBytes };
        }
      } catch (err) {
        const reason =
          err instanceof WorkspaceCorruptError || err instanceof WorkspaceRestoreError
            ? 'your saved files are damaged'
            : 'your saved files could not be read right now';
        log.warn({ user: userId, sandbox: sandbox.id.slice(0, 12), err: errorMessage(err) }, 'could not restore a workspace');
        outcome = { kind: 'failed', reason };
      }
      observer.restored(performance.now() - started, archiveBytes, outcome.kind);
      return outcome;
    },
    markChanged(sandbox) {
      if (sandbox.workspace) changed.add(sandbox.id);
    },
    save(userId, sandbox, limitBytes = maxBytes) {
      const next = (saving.get(sandbox.id) ?? Promise.resolve<SaveOutcome>({ kind: 'unchanged' })).then(() => saveNow(userId, sandbox, limitBytes));
      saving.set(sandbox.id, next);
      void next.finally(() => {
        if (saving.get(sandbox.id) === next) saving.delete(sandbox.id);
      });
      return next;
    },
    async wipe(userId, sandbox) {
      if (sandbox) {
        changed.delete(sandbox.id);
        await saving.get(sandbox.id)?.catch(() => undefined);
      }
      await store.remove(userId);
    },
    forget(sandbox) {
      changed.delete(sandbox.id);
    },
  };
}

/** What the user reads about a save that did not keep their changes. */
export function saveNotice(outcome: SaveOutcome): string | undefined {
  const mib = (n: number): string => (n >= 1_048_576 ? `${(n / 1_048_576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`);
  if (outcome.kind === 'too-large') {
    return `(Your workspace holds ${mib(outcome.sizeBytes)} of files, more than the ${mib(outcome.maxBytes)} a snapshot may keep: this change was not saved, and your last saved files stay as they were. Delete some files to be saved again.)`;
  }
  if (outcome.kind === 'rejected') return `(This change was not saved: ${outcome.reason}.)`;
  if (outcome.kind === 'failed') return `(Your files could not be saved just now (${outcome.reason}); they are still in this sandbox and will be saved with your next change.)`;
  return undefined;
}
