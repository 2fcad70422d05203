import { randomUUID } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { z } from 'zod';
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

/** The channel, when the sandbox's server offers it (version 1). */
export function workspaceChannelOf(client: Client, transport: Pick<StreamTransport, 'attachPayload'>): WorkspaceChannel | undefined {
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
      const parts = [first.data];
      for (let index = 1; index < first.chunks; index++) {
        parts.push((await client.request({ method: 'sandpool/workspace/snapshot-chunk', params: { token: first.token, index } }, Chunk, { timeout: timeoutMs })).data);
      }
      return { archive: Buffer.from(parts.join(''), 'base64'), files: first.files, sizeBytes: first.sizeBytes };
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
