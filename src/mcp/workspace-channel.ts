import { randomUUID } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { SandboxGoneError } from '../errors.js';
import type { StreamTransport } from './stream-transport.js';

/**
 * A sandbox's workspace, packed and unpacked in band over its MCP connection
 * (`sandpool/workspace/*`, answered by the sandbox agent of sandpool's image;
 * other images do not offer it). Snapshots travel as base64 in chunks well
 * under the transport's 10 MiB line limit; restores as raw bytes after one
 * request line where the agent offers it (`raw`: a quarter fewer bytes
 * through the engine's attach stream, and no encoding on either side), as
 * base64 chunks otherwise.
 */
export interface WorkspaceChannel {
  /** The workspace as a compressed tar (zstd or gzip: opaque here), or how big it is when it holds more than maxBytes. */
  snapshot(maxBytes: number, timeoutMs: number): Promise<{ archive: Buffer; files: number; sizeBytes: number } | { tooLarge: { sizeBytes: number; maxBytes: number } }>;
  /** Unpacks a snapshot's archive into the (fresh) workspace. Rejects with WorkspaceRestoreError for an archive it refuses. */
  restore(archive: Buffer, maxBytes: number, timeoutMs: number): Promise<{ files: number; sizeBytes: number }>;
}

/**
 * The sandbox sent more than a snapshot of the allowed size can be: a
 * compromised or broken server. It is removed (the channel's onViolation) and
 * treated as gone; the user's last good snapshot stays.
 */
export class SandboxLimitError extends SandboxGoneError {
  constructor(detail: string) {
    super('your sandbox sent more data than a snapshot may hold, so it was removed; your last saved files come back in a fresh sandbox with your next call', { detail });
    this.name = 'SandboxLimitError';
  }
}

/**
 * The most a snapshot of `maxBytes` of files may take on the wire: a tar's
 * headers and padding plus an incompressible archive's overhead stay well
 * within twice the content and a MiB. Anything beyond is refused, whatever
 * the sandbox claims.
 */
export function snapshotWireLimits(maxBytes: number): { archiveBytes: number; chars: number; chunks: number } {
  const archiveBytes = maxBytes * 2 + 1_048_576;
  const chars = Math.ceil(archiveBytes / 3) * 4;
  return { archiveBytes, chars, chunks: Math.ceil(chars / CHUNK_CHARS) };
}

/** The sandbox refused an archive (damaged, or unsafe). */
export class WorkspaceRestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkspaceRestoreError';
  }
}

const CHUNK_CHARS = 4 * 1024 * 1024;
const Snapshot = z.object({ files: z.number(), sizeBytes: z.number(), archiveBytes: z.number(), chunks: z.number(), token: z.string(), data: z.string() });
const Chunk = z.object({ data: z.string() });
const Received = z.object({ received: z.number() });
const Restored = z.object({ files: z.number(), sizeBytes: z.number() });
const WORKSPACE_CAPABILITY = 'sandpool/workspace';
const TOO_LARGE = -32010;
const BAD_ARCHIVE = -32011;

function codeOf(err: unknown): number | undefined {
  return typeof (err as { code?: unknown })?.code === 'number' ? (err as { code: number }).code : undefined;
}

/**
 * The channel, when the sandbox's server offers it (version 1). `onViolation`
 * is called (with what the sandbox did) when it sends more than a snapshot may
 * hold: the caller removes the sandbox.
 */
export function workspaceChannelOf(client: Client, transport: Pick<StreamTransport, 'attachPayload'>, onViolation: (detail: string) => void): WorkspaceChannel | undefined {
  const offered = client.getServerCapabilities()?.experimental?.[WORKSPACE_CAPABILITY] as { version?: unknown; raw?: unknown } | undefined;
  if (offered?.version !== 1) return undefined;
  const raw = offered.raw === true;

  async function restoreRaw(archive: Buffer, maxBytes: number, timeoutMs: number): Promise<z.infer<typeof Restored>> {
    const payload = randomUUID();
    const forget = transport.attachPayload(payload, archive);
    try {
      return await client.request({ method: 'sandpool/workspace/restore-raw', params: { payload, bytes: archive.length, maxBytes } }, Restored, { timeout: timeoutMs });
    } finally {
      forget();
    }
  }

  async function restoreInChunks(archive: Buffer, maxBytes: number, timeoutMs: number): Promise<z.infer<typeof Restored>> {
    const data = archive.toString('base64');
    let offset = 0;
    let index = 0;
    for (; offset + CHUNK_CHARS < data.length; offset += CHUNK_CHARS) {
      await client.request({ method: 'sandpool/workspace/restore', params: { data: data.slice(offset, offset + CHUNK_CHARS), more: true, maxBytes, index: index++ } }, Received, { timeout: timeoutMs });
    }
    return client.request({ method: 'sandpool/workspace/restore', params: { data: data.slice(offset), more: false, maxBytes, index } }, Restored, { timeout: timeoutMs });
  }

  return {
    async snapshot(maxBytes, timeoutMs) {
      let first: z.infer<typeof Snapshot>;
      try {
        first = await client.request({ method: 'sandpool/workspace/snapshot', params: { maxBytes, chunkBytes: CHUNK_CHARS } }, Snapshot, { timeout: timeoutMs });
      } catch (err) {
        const data = (err as { data?: { sizeBytes?: unknown } }).data;
        if (codeOf(err) === TOO_LARGE && typeof data?.sizeBytes === 'number') return { tooLarge: { sizeBytes: data.sizeBytes, maxBytes } };
        throw err;
      }
      const limits = snapshotWireLimits(maxBytes);
      const violation = (what: string): never => {
        const detail = `the sandbox's snapshot ${what} (a snapshot of at most ${maxBytes} bytes of files takes at most ${limits.archiveBytes} bytes, ${limits.chunks} chunks of ${CHUNK_CHARS} characters)`;
        onViolation(detail);
        throw new SandboxLimitError(detail);
      };
      if (!Number.isSafeInteger(first.chunks) || first.chunks < 1 || first.chunks > limits.chunks) violation(`claimed ${first.chunks} chunks`);
      if (!Number.isSafeInteger(first.archiveBytes) || first.archiveBytes < 0 || first.archiveBytes > limits.archiveBytes) violation(`claimed ${first.archiveBytes} bytes`);
      const parts = [first.data];
      let chars = first.data.length;
      for (let index = 1; index < first.chunks; index++) {
        if (chars > limits.chars) break;
        const { data } = await client.request({ method: 'sandpool/workspace/snapshot-chunk', params: { token: first.token, index } }, Chunk, { timeout: timeoutMs });
        if (data.length > CHUNK_CHARS) violation(`sent a chunk of ${data.length} characters`);
        parts.push(data);
        chars += data.length;
      }
      if (first.data.length > CHUNK_CHARS || chars > limits.chars) violation(`sent ${chars} characters`);
      const archive = Buffer.from(parts.join(''), 'base64');
      if (archive.length !== first.archiveBytes) violation(`sent ${archive.length} bytes where it announced ${first.archiveBytes}`);
      return { archive, files: first.files, sizeBytes: first.sizeBytes };
    },
    async restore(archive, maxBytes, timeoutMs) {
      try {
        return await (raw ? restoreRaw : restoreInChunks)(archive, maxBytes, timeoutMs);
      } catch (err) {
        if (codeOf(err) === BAD_ARCHIVE) throw new WorkspaceRestoreError(err instanceof Error ? err.message : String(err));
        throw err;
      }
    },
  };
}
