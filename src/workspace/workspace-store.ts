import { createHash } from 'node:crypto';

/**
 * One snapshot of a user's /workspace: a compressed tar of its files, with the
 * version that orders snapshots (a newer one is never overwritten by an
 * older one) and what it holds.
 */
export interface WorkspaceSnapshot {
  version: number;
  takenAtMs: number;
  /** Files in it, and their bytes before compression. */
  files: number;
  sizeBytes: number;
  /** The compressed tar (zstd or gzip, as the sandbox made it: opaque here). */
  archive: Buffer;
}

/** Where snapshots are kept: `fs` (one replica), `redis` (several), or `none` (off). */
export interface WorkspaceStore {
  readonly kind: 'none' | 'fs' | 'redis';
  /** The user's newest snapshot, or undefined. Throws WorkspaceCorruptError for one that cannot be read back. */
  load(userId: string): Promise<WorkspaceSnapshot | undefined>;
  /** Stores it atomically unless the store already holds a newer (or the same) version: 'stale' then. */
  save(userId: string, snapshot: WorkspaceSnapshot): Promise<'stored' | 'stale'>;
  /** Forgets the user's snapshot (the user's wipe, an operator's). */
  remove(userId: string): Promise<void>;
  close(): Promise<void>;
}

/** A stored snapshot that does not read back as written (a torn or tampered file, a bad checksum). */
export class WorkspaceCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkspaceCorruptError';
  }
}

/** The header stored before the archive, which its checksum protects. */
interface Header {
  version: number;
  takenAtMs: number;
  files: number;
  sizeBytes: number;
  sha256: string;
}

const MAGIC = Buffer.from('SPWS0001');

/** Snapshot -> bytes: magic, header length (u32), header JSON, archive. */
export function encodeSnapshot(s: WorkspaceSnapshot): Buffer {
  const header: Header = { version: s.version, takenAtMs: s.takenAtMs, files: s.files, sizeBytes: s.sizeBytes, sha256: createHash('sha256').update(s.archive).digest('hex') };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, len, json, s.archive]);
}

/** Bytes -> snapshot, checked; throws WorkspaceCorruptError. */
export function decodeSnapshot(bytes: Buffer): WorkspaceSnapshot {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw new WorkspaceCorruptError('not a workspace snapshot (bad magic)');
  const len = bytes.readUInt32BE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (bytes.length < start + len) throw new WorkspaceCorruptError('the snapshot is cut short (header)');
  let header: Header;
  try {
    header = JSON.parse(bytes.subarray(start, start + len).toString('utf8')) as Header;
  } catch {
    throw new WorkspaceCorruptError('the snapshot header is not JSON');
  }
  const archive = bytes.subarray(start + len);
  if (createHash('sha256').update(archive).digest('hex') !== header.sha256) throw new WorkspaceCorruptError('the snapshot does not match its checksum');
  return { version: header.version, takenAtMs: header.takenAtMs, files: header.files, sizeBytes: header.sizeBytes, archive };
}

/** The version of a snapshot taken now: time-ordered, and strictly increasing within this process. */
export function createVersionClock(now: () => number = Date.now): () => number {
  let last = 0;
  return () => {
    last = Math.max(last + 1, now() * 1000);
    return last;
  };
}

/** For a replica with snapshots off (WORKSPACE_STORE=none): nothing is kept, nothing restored. */
export function createNoWorkspaceStore(): WorkspaceStore {
  return {
    kind: 'none',
    load: async () => undefined,
    save: async () => 'stale',
    remove: async () => undefined,
    close: async () => undefined,
  };
}
