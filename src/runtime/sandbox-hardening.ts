/**
 * The settings every Docker sandbox is created with, whatever its limits: one
 * source for the Docker runtime (which sends them) and the socket proxy
 * (which accepts only them, and writes them itself into what it forwards).
 */

/** Container settings, fixed. */
export const SANDBOX_CONFIG = {
  WorkingDir: '/workspace',
  NetworkDisabled: true,
} as const;

/** Host settings, fixed: no network, no capabilities, no privilege gain, read-only root, no log kept by the engine. */
export const SANDBOX_HOST_CONFIG = {
  NetworkMode: 'none',
  CapDrop: ['ALL'],
  // The engine's default seccomp and AppArmor profiles apply: nothing here may name another.
  SecurityOpt: ['no-new-privileges'],
  ReadonlyRootfs: true,
  AutoRemove: false,
  LogConfig: { Type: 'none', Config: {} },
} as const;

/**
 * The two writable places of a sandbox (its root is read-only): tmpfs mounts
 * of a bounded size, owned by the sandbox's user, from which nothing runs
 * (noexec: the workspace holds the user's files, never programs), with no
 * set-uid programs or device files.
 */
export const SANDBOX_TMPFS_MODES = { '/workspace': '0700', '/tmp': '1777' } as const;

export type SandboxTmpfsPath = keyof typeof SANDBOX_TMPFS_MODES;

/** A tmpfs mount's option string, exactly as the runtime writes it and the proxy accepts it. */
export function sandboxTmpfsOptions(path: SandboxTmpfsPath, sizeBytes: number, uid: number | string, gid: number | string): string {
  return `rw,nosuid,nodev,noexec,size=${sizeBytes},uid=${uid},gid=${gid},mode=${SANDBOX_TMPFS_MODES[path]}`;
}
