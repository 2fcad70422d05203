import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { APP_LABEL_VALUE, LABELS, type SandboxSpec } from '../runtime/types.js';
import type { PoolSettings, SandboxLimits } from './settings.js';

/** `<hostname>/<pid>`: identifies the owning process for the orphan sweep. */
export function ownerLabel(): string {
  return `${os.hostname()}/${process.pid}`;
}

/** Options of createSpecMaker. */
export interface SpecMakerOptions {
  pool: Pick<PoolSettings, 'image' | 'command'>;
  sandbox: SandboxLimits;
  replicaId: string;
  poolName: string;
}

/**
 * What every start of one pool asks the runtime for: the same image and
 * limits, a unique name, and the labels the orphan sweep and `docker ps`
 * filter on.
 */
export function createSpecMaker(options: SpecMakerOptions): () => SandboxSpec {
  const { pool, sandbox: limits, replicaId, poolName } = options;
  const [uid = '65532', gid = uid] = limits.user.split(':');
  const user = `${uid}:${gid}`;
  const owner = ownerLabel();
  let seq = 0;
  return () => {
    seq++;
    return {
      image: pool.image,
      command: pool.command,
      // The sequence keeps names readable in `docker ps`; the random suffix keeps a restarted replica's names from colliding with its orphans.
      name: `sandpool-${replicaId}-${seq}-${randomBytes(3).toString('hex')}`,
      labels: {
        [LABELS.app]: APP_LABEL_VALUE,
        [LABELS.replica]: replicaId,
        [LABELS.pool]: poolName,
        [LABELS.created]: String(Date.now()),
        [LABELS.owner]: owner,
      },
      user,
      memoryBytes: limits.memoryMb * 1024 * 1024,
      nanoCpus: Math.round(limits.cpus * 1e9),
      pidsLimit: limits.pidsLimit,
      workspaceBytes: limits.workspaceMb * 1024 * 1024,
      tmpBytes: limits.tmpMb * 1024 * 1024,
      shmBytes: limits.shmMb * 1024 * 1024,
      nofile: limits.nofile,
    };
  };
}
