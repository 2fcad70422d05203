/**
 * The sandbox's /workspace as one gzipped tar and back, inside the sandbox
 * (the root filesystem is read-only and /workspace a tmpfs: the engine's
 * archive API cannot reach it). Node built-ins only: this runs in the
 * sandbox image, bundled with its MCP server.
 *
 * Regular files and directories only (the filesystem server makes nothing
 * else); names are checked on the way in, so an archive can never write
 * outside the root.
 */
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);
const BLOCK = 512;

export class WorkspaceTooLargeError extends Error {
  constructor(readonly sizeBytes: number, readonly maxBytes: number) {
    super(`the workspace holds ${sizeBytes} bytes, more than the ${maxBytes} a snapshot may hold`);
    this.name = 'WorkspaceTooLargeError';
  }
}

export class BadArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadArchiveError';
  }
}

export interface PackedWorkspace {
  archive: Buffer;
  files: number;
  sizeBytes: number;
}

interface Entry {
  name: string;
  type: 'file' | 'dir';
  mode: number;
  mtimeS: number;
  data: Buffer;
}

/** Every file and directory below root, in a stable order, refusing more than maxBytes of file content. */
async function collect(root: string, maxBytes: number): Promise<Entry[]> {
  const entries: Entry[] = [];
  let size = 0;
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const full = path.join(root, relPath);
      const st = await lstat(full);
      if (st.isDirectory()) {
        entries.push({ name: `${relPath}/`, type: 'dir', mode: st.mode & 0o777, mtimeS: Math.floor(st.mtimeMs / 1000), data: Buffer.alloc(0) });
        await walk(relPath);
      } else if (st.isFile()) {
        size += st.size;
        if (size > maxBytes) throw new WorkspaceTooLargeError(size, maxBytes);
        entries.push({ name: relPath, type: 'file', mode: st.mode & 0o777, mtimeS: Math.floor(st.mtimeMs / 1000), data: await readFile(full) });
      }
    }
  }
  await walk('');
  return entries;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, typeflag: string, size: number, mode: number, mtimeS: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii');
  h.write(octal(0, 8), 116, 8, 'ascii');
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(mtimeS, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write(typeflag, 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7), 148, 7, 'ascii');
  return h;
}

function padded(data: Buffer): Buffer[] {
  const rest = data.length % BLOCK;
  return rest === 0 ? [data] : [data, Buffer.alloc(BLOCK - rest)];
}

/** A pax record: "<len> <key>=<value>\n", where len counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** The workspace below `root` as a gzipped tar (pax headers for long names). */
export async function packWorkspace(root: string, maxBytes: number): Promise<PackedWorkspace> {
  const entries = await collect(root, maxBytes);
  const parts: Buffer[] = [];
  let sizeBytes = 0;
  let files = 0;
  for (const e of entries) {
    if (Buffer.byteLength(e.name) > 100) {
      const pax = Buffer.from(paxRecord('path', e.name));
      parts.push(header('PaxHeader', 'x', pax.length, 0o644, e.mtimeS), ...padded(pax));
    }
    parts.push(header(e.name.slice(0, 100), e.type === 'dir' ? '5' : '0', e.data.length, e.mode, e.mtimeS), ...padded(e.data));
    if (e.type === 'file') {
      files++;
      sizeBytes += e.data.length;
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  // Level 1: most of the size gain at a fraction of the time, and the snapshot is on the user's path.
  return { archive: await gzip(Buffer.concat(parts), { level: 1 }), files, sizeBytes };
}

/** A name from an archive as a path below root, or a BadArchiveError: never absolute, never climbing out. */
function safePath(root: string, name: string): string {
  if (name.includes('\0') || name.startsWith('/') || name.split('/').some((part) => part === '..')) {
    throw new BadArchiveError(`refused an entry that would leave the workspace: ${JSON.stringify(name.slice(0, 200))}`);
  }
  const full = path.resolve(root, name);
  if (full !== root && !full.startsWith(`${root}${path.sep}`)) throw new BadArchiveError(`refused an entry outside the workspace: ${JSON.stringify(name.slice(0, 200))}`);
  return full;
}

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? len : end).toString('utf8');
}

/** Unpacks a gzipped tar (as packWorkspace makes) below root; resolves with what it wrote. */
export async function unpackWorkspace(root: string, archive: Buffer, maxBytes: number): Promise<{ files: number; sizeBytes: number }> {
  let tar: Buffer;
  try {
    tar = await gunzip(archive, { maxOutputLength: maxBytes + 64 * 1024 * 1024 });
  } catch (err) {
    throw new BadArchiveError(`the snapshot is not a readable gzip archive (${err instanceof Error ? err.message : String(err)})`);
  }
  let offset = 0;
  let files = 0;
  let sizeBytes = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const h = tar.subarray(offset, offset + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(field(h, 124, 12).trim() || '0', 8);
    const type = field(h, 156, 1) || '0';
    const mode = parseInt(field(h, 100, 8).trim() || '644', 8) & 0o777;
    if (!Number.isFinite(size) || size < 0 || offset + BLOCK + size > tar.length) throw new BadArchiveError('the snapshot is cut short (an entry runs past its end)');
    const data = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      const match = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
      longName = match?.[1];
      continue;
    }
    const name = longName ?? field(h, 0, 100);
    longName = undefined;
    const target = safePath(root, name);
    if (type === '5') {
      await mkdir(target, { recursive: true, mode: mode | 0o700 });
    } else if (type === '0') {
      sizeBytes += size;
      if (sizeBytes > maxBytes) throw new BadArchiveError(`the snapshot holds more than ${maxBytes} bytes`);
      await mkdir(path.dirname(target), { recursive: true });
      // Never setuid/setgid, never executable bits beyond what a workspace file may have.
      await writeFile(target, data, { mode: (mode & 0o777) | 0o600 });
      files++;
    }
    // Anything else (links, devices) is not something a workspace holds: skipped.
  }
  return { files, sizeBytes };
}
