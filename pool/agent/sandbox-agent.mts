/**
 * The sandbox's entry point: the official MCP filesystem server, unchanged,
 * with a thin layer on its stdio that answers sandpool's own requests about
 * the workspace (`sandpool/workspace/*`: snapshot, restore) in band, over the
 * same attached stdio. No exec, no engine call, no second process: a restore
 * into a warm sandbox costs what unpacking costs.
 *
 *   node main.mjs /workspace     (the server's own arguments; the image
 *                                  runs the same code bundled, pool/bundle.mjs)
 *
 * Everything else passes through both ways, byte for byte, except the answer
 * to `initialize`, which gains `capabilities.experimental["sandpool/workspace"]`
 * so that sandpool knows this sandbox can do it (other images cannot).
 */
import { PassThrough } from 'node:stream';
import { BadArchiveError, WorkspaceTooLargeError, createStreamingUnpack, packWorkspace, type StreamingUnpack } from './workspace-archive.mjs';

type Json = Record<string, unknown>;

/** The protocol version sandpool's side checks for in the capability. */
export const WORKSPACE_PROTOCOL_VERSION = 1;
/** JSON-RPC error codes of the workspace methods (their `data.reason` says more). */
export const WORKSPACE_ERROR = { tooLarge: -32010, badArchive: -32011, badRequest: -32602, failed: -32012 } as const;

/** Raw bytes a line announced, to be read before the next line. */
interface RawPayload {
  bytes: number;
  write(chunk: Buffer): void;
  end(): void;
}

/**
 * Line-splits a stream of newline-delimited JSON-RPC, on bytes: linear in
 * the input (each chunk is searched once; a restore may send megabytes), and
 * a line's UTF-8 is decoded whole. A line's handler may announce raw bytes
 * that follow it (a restore without base64): they go to its payload, not to
 * the line splitter.
 */
function frames(stream: NodeJS.ReadableStream, onLine: (line: string) => RawPayload | undefined, onEnd: () => void): void {
  let pending: Buffer[] = [];
  let raw: RawPayload | undefined;
  let rawLeft = 0;
  stream.on('data', (data: Buffer | string) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let offset = 0;
    while (offset < chunk.length) {
      if (raw) {
        const take = Math.min(rawLeft, chunk.length - offset);
        raw.write(chunk.subarray(offset, offset + take));
        offset += take;
        rawLeft -= take;
        if (rawLeft === 0) {
          const done = raw;
          raw = undefined;
          done.end();
        }
        continue;
      }
      const nl = chunk.indexOf(0x0a, offset);
      if (nl === -1) {
        pending.push(chunk.subarray(offset));
        break;
      }
      pending.push(chunk.subarray(offset, nl));
      const line = (pending.length === 1 ? (pending[0] ?? Buffer.alloc(0)) : Buffer.concat(pending)).toString('utf8');
      pending = [];
      offset = nl + 1;
      if (line.trim() === '') continue;
      const payload = onLine(line);
      if (payload && payload.bytes === 0) payload.end();
      else if (payload) {
        raw = payload;
        rawLeft = payload.bytes;
      }
    }
  });
  stream.on('end', onEnd);
}

function parse(line: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

export interface AgentStreams {
  /** What sandpool writes (the container's stdin). */
  input: NodeJS.ReadableStream;
  /** What sandpool reads (the container's stdout). */
  output: NodeJS.WritableStream;
  /** The MCP server's stdin and stdout. */
  serverIn: NodeJS.WritableStream;
  serverOut: NodeJS.ReadableStream;
  root: string;
}

/** Wires the streams: sandpool's requests handled here, the rest to and from the server. */
export function runAgent(s: AgentStreams): void {
  const initializeIds = new Set<unknown>();
  const send = (message: Json): void => void s.output.write(`${JSON.stringify(message)}\n`);
  // A snapshot too big for one message is read in chunks; a restore arrives in
  // chunks, each decoded and decompressed as it comes (base64 is cut only at
  // multiples of 4 characters: a remainder waits for the next chunk).
  let snapshotChunks: { token: string; chunks: string[] } | undefined;
  let restoring: { unpack: StreamingUnpack; carry: string } | undefined;

  async function workspace(method: string, params: Json): Promise<Json> {
    switch (method) {
      case 'sandpool/workspace/snapshot': {
        const maxBytes = Number(params.maxBytes);
        const chunkBytes = Math.max(64 * 1024, Number(params.chunkBytes) || 4 * 1024 * 1024);
        const packed = await packWorkspace(s.root, Number.isFinite(maxBytes) && maxBytes > 0 ? maxBytes : Number.MAX_SAFE_INTEGER);
        const data = packed.archive.toString('base64');
        const chunks: string[] = [];
        for (let i = 0; i < data.length; i += chunkBytes) chunks.push(data.slice(i, i + chunkBytes));
        snapshotChunks = { token: `${Date.now()}-${Math.random().toString(36).slice(2)}`, chunks };
        return { files: packed.files, sizeBytes: packed.sizeBytes, archiveBytes: packed.archive.length, chunks: chunks.length, token: snapshotChunks.token, data: chunks[0] ?? '' };
      }
      case 'sandpool/workspace/snapshot-chunk': {
        const index = Number(params.index);
        if (!snapshotChunks || params.token !== snapshotChunks.token || !Number.isInteger(index) || snapshotChunks.chunks[index] === undefined) {
          throw Object.assign(new Error('no such snapshot chunk'), { code: WORKSPACE_ERROR.badRequest });
        }
        const data = snapshotChunks.chunks[index] ?? '';
        if (index === snapshotChunks.chunks.length - 1) snapshotChunks = undefined;
        return { data };
      }
      case 'sandpool/workspace/restore': {
        if (typeof params.data !== 'string') throw Object.assign(new Error('data (base64) is required'), { code: WORKSPACE_ERROR.badRequest });
        const maxBytes = Number(params.maxBytes);
        // Chunk 0 starts a new restore, whatever an abandoned one left.
        if (params.index === 0) restoring = undefined;
        // maxBytes comes with every chunk from sandpool (with the last one at least): the first one seen bounds the whole restore.
        restoring ??= { unpack: createStreamingUnpack(Number.isFinite(maxBytes) && maxBytes > 0 ? maxBytes : Number.MAX_SAFE_INTEGER), carry: '' };
        const text = restoring.carry + params.data;
        const whole = params.more === true ? text.length - (text.length % 4) : text.length;
        restoring.carry = text.slice(whole);
        restoring.unpack.push(Buffer.from(whole === text.length ? text : text.slice(0, whole), 'base64'));
        if (params.more === true) return { received: whole };
        const { unpack } = restoring;
        restoring = undefined;
        return unpack.finish(s.root) as unknown as Promise<Json>;
      }
      default:
        throw Object.assign(new Error(`unknown method ${method}`), { code: -32601 });
    }
  }

  function answer(id: unknown, work: Promise<Json>): void {
    work.then(
      (result) => send({ jsonrpc: '2.0', id, result }),
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof WorkspaceTooLargeError) {
          send({ jsonrpc: '2.0', id, error: { code: WORKSPACE_ERROR.tooLarge, message, data: { reason: 'too-large', sizeBytes: err.sizeBytes, maxBytes: err.maxBytes } } });
        } else if (err instanceof BadArchiveError) {
          send({ jsonrpc: '2.0', id, error: { code: WORKSPACE_ERROR.badArchive, message, data: { reason: 'bad-archive' } } });
        } else {
          const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : WORKSPACE_ERROR.failed;
          send({ jsonrpc: '2.0', id, error: { code, message, data: { reason: 'failed' } } });
        }
      },
    );
  }

  /** The bytes after a restore-raw line: decompressed as they arrive, unpacked after the last. */
  function rawRestore(id: unknown, params: Json): RawPayload {
    const bytes = Number(params.bytes);
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      // The byte count frames the stream: without it nothing after this line can be read.
      process.stderr.write('sandpool agent: a raw restore without a valid byte count; the stream cannot be read further\n');
      process.exit(70);
    }
    const maxBytes = Number(params.maxBytes);
    const unpack = createStreamingUnpack(Number.isFinite(maxBytes) && maxBytes > 0 ? maxBytes : Number.MAX_SAFE_INTEGER);
    return { bytes, write: (chunk) => unpack.push(chunk), end: () => answer(id, unpack.finish(s.root) as unknown as Promise<Json>) };
  }

  frames(
    s.input,
    (line) => {
      // Only sandpool's own requests and initialize are looked into: a line that
      // names neither (a tool call with megabytes of file content) passes unparsed.
      const message = line.includes('sandpool/') || line.includes('initialize') ? parse(line) : undefined;
      const method = typeof message?.method === 'string' ? message.method : undefined;
      if (message && method === 'sandpool/workspace/restore-raw') {
        return rawRestore(message.id, typeof message.params === 'object' && message.params !== null ? (message.params as Json) : {});
      }
      if (message && method?.startsWith('sandpool/')) {
        const params = typeof message.params === 'object' && message.params !== null ? (message.params as Json) : {};
        answer(message.id, workspace(method, params));
        return undefined;
      }
      if (message && method === 'initialize') initializeIds.add(message.id);
      s.serverIn.write(`${line}\n`);
      return undefined;
    },
    () => s.serverIn.end(),
  );

  frames(
    s.serverOut,
    (line) => {
      const message = initializeIds.size > 0 ? parse(line) : undefined;
      if (message && initializeIds.has(message.id) && typeof message.result === 'object' && message.result !== null) {
        initializeIds.delete(message.id);
        const result = message.result as Json;
        const capabilities = (typeof result.capabilities === 'object' && result.capabilities !== null ? result.capabilities : {}) as Json;
        const experimental = (typeof capabilities.experimental === 'object' && capabilities.experimental !== null ? capabilities.experimental : {}) as Json;
        // raw: restores may come as raw bytes after their request line (restore-raw).
        send({ ...message, result: { ...result, capabilities: { ...capabilities, experimental: { ...experimental, 'sandpool/workspace': { version: WORKSPACE_PROTOCOL_VERSION, raw: true } } } } });
        return undefined;
      }
      s.output.write(`${line}\n`);
      return undefined;
    },
    () => s.output.end(),
  );
}

/**
 * Runs the official server in this process with its stdio replaced by the
 * agent's pipes. The server takes `process.stdin` / `process.stdout` when it
 * starts (the SDK's StdioServerTransport): they are swapped before it is
 * imported, the one place this reaches past the server, and checked right
 * after, so a changed server fails loudly at start instead of talking past us.
 */
export async function startAgent(startServer: () => Promise<unknown>): Promise<void> {
  const input = process.stdin;
  const output = process.stdout;
  const serverIn = new PassThrough();
  const serverOut = new PassThrough();
  Object.defineProperty(process, 'stdin', { value: serverIn, configurable: true });
  Object.defineProperty(process, 'stdout', { value: serverOut, configurable: true });
  if ((process.stdin as unknown) !== serverIn || (process.stdout as unknown) !== serverOut) {
    process.stderr.write('sandpool agent: could not take the server\'s stdio; refusing to start\n');
    process.exit(70);
  }
  runAgent({ input, output, serverIn, serverOut, root: process.argv[2] ?? '/workspace' });
  await startServer();
}
