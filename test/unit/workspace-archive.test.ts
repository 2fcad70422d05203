import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { BadArchiveError, WorkspaceTooLargeError, archiveCompression, createStreamingUnpack, packWorkspace, unpackWorkspace } from '../../pool/agent/workspace-archive.mjs';

const run = promisify(execFile);
const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'sandpool-wsa-'));
const LONG = `${'deep/'.repeat(30)}a-file-with-a-long-name.txt`;

function fill(root: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'notes.txt': Buffer.from('hello\n'),
    'src/main.ts': Buffer.from('export const x = 1;\n'),
    'bin/blob.dat': randomBytes(100_000),
    [LONG]: Buffer.from('far down'),
    'unicode-ü.md': Buffer.from('äöü'),
  };
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), data);
  }
  mkdirSync(path.join(root, 'empty/dir'), { recursive: true });
  return files;
}

describe('workspace archive (inside the sandbox)', () => {
  it('packs and unpacks every file byte for byte, long names and empty directories included', async () => {
    const from = tmp();
    const files = fill(from);
    const packed = await packWorkspace(from, 10 * 1024 * 1024);
    assert.equal(packed.files, 5);
    assert.equal(packed.sizeBytes, Object.values(files).reduce((n, b) => n + b.length, 0));
    const to = tmp();
    assert.deepEqual(await unpackWorkspace(to, packed.archive, 10 * 1024 * 1024), { files: 5, sizeBytes: packed.sizeBytes });
    for (const [name, data] of Object.entries(files)) assert.ok(readFileSync(path.join(to, name)).equals(data), name);
    assert.ok(existsSync(path.join(to, 'empty/dir')));
  });

  it('writes a tar GNU tar reads, and reads one GNU tar writes', async () => {
    const from = tmp();
    fill(from);
    const archive = path.join(tmp(), 'ours.tgz');
    writeFileSync(archive, (await packWorkspace(from, 10 * 1024 * 1024)).archive);
    const { stdout } = await run('tar', ['-tzf', archive]);
    assert.ok(stdout.split('\n').includes(LONG), stdout);
    const theirs = path.join(tmp(), 'theirs.tgz');
    await run('tar', ['--format=pax', '-czf', theirs, '-C', from, '.']);
    const to = tmp();
    const result = await unpackWorkspace(to, readFileSync(theirs), 10 * 1024 * 1024);
    assert.equal(result.files, 5);
    assert.equal(readFileSync(path.join(to, LONG), 'utf8'), 'far down');
  });

  it('refuses a workspace over the limit, saying how big it is', async () => {
    const from = tmp();
    writeFileSync(path.join(from, 'big'), randomBytes(2000));
    await assert.rejects(packWorkspace(from, 1000), (err: unknown) => err instanceof WorkspaceTooLargeError && err.sizeBytes === 2000 && err.maxBytes === 1000);
  });

  it('never writes outside the workspace: absolute names and .. are refused', async () => {
    const outside = tmp();
    for (const evil of [`../${path.basename(outside)}/pwned`, '/etc/pwned', 'a/../../pwned']) {
      const tar = Buffer.concat([tarHeader(evil, 5), Buffer.from('owned'), Buffer.alloc(507), Buffer.alloc(1024)]);
      const root = path.join(tmp(), 'ws');
      mkdirSync(root);
      await assert.rejects(unpackWorkspace(root, gzipSync(tar), 1024 * 1024), BadArchiveError, evil);
    }
    assert.equal(existsSync(path.join(outside, 'pwned')), false);
  });

  it('unpacks an archive that arrives in parts of any size, and says so when one part was lost', async () => {
    const from = tmp();
    const files = fill(from);
    const { archive } = await packWorkspace(from, 10 * 1024 * 1024);
    const unpack = createStreamingUnpack(10 * 1024 * 1024);
    for (let offset = 0, size = 1; offset < archive.length; offset += size, size = size * 3 + 1) unpack.push(archive.subarray(offset, offset + size));
    const to = tmp();
    assert.equal((await unpack.finish(to)).files, 5);
    for (const [name, data] of Object.entries(files)) assert.ok(readFileSync(path.join(to, name)).equals(data), name);
    const gap = createStreamingUnpack(10 * 1024 * 1024);
    gap.push(archive.subarray(0, 1000));
    gap.push(archive.subarray(2000));
    await assert.rejects(gap.finish(tmp()), BadArchiveError);
  });

  it('reads a zstd archive (the image\'s format) where this Node has zstd, and otherwise says it cannot', async () => {
    // ustar with z.txt = "zstd!", compressed by the zstd CLI.
    const zstdTar = Buffer.from('KLUv/QRodQIAgoMLEMDrXpWign/XlUQkieutBqcOZ1XzIpR+J7Nq2QdG/bhb77DkOJIzuTP1XraiBQsgUC8yDvcFvkhIAXhnGA0w/L05DeYJgwbYThAOeQBr2w==', 'base64');
    const to = tmp();
    if (archiveCompression === 'zstd') {
      assert.deepEqual(await unpackWorkspace(to, zstdTar, 1024), { files: 1, sizeBytes: 5 });
      assert.equal(readFileSync(path.join(to, 'z.txt'), 'utf8'), 'zstd!');
    } else {
      await assert.rejects(unpackWorkspace(to, zstdTar, 1024), (err: unknown) => err instanceof BadArchiveError && err.message.includes('cannot read zstd'));
    }
  });

  it('says a damaged archive is damaged', async () => {
    await assert.rejects(unpackWorkspace(tmp(), Buffer.from('not gzip at all'), 1024), BadArchiveError);
    const cut = gzipSync(Buffer.concat([tarHeader('f', 4096), Buffer.alloc(100)]));
    await assert.rejects(unpackWorkspace(tmp(), cut, 1024 * 1024), /cut short/);
  });
});

/** A minimal ustar header for hand-made (hostile) archives. */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0`, 148);
  return h;
}
