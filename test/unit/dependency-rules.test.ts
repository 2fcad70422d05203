import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = process.cwd();
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(ROOT, 'node_modules', '.bin', 'depcruise');

/** Runs the checker with the repository's rules; resolves with its exit code and report (never rejects on violations). */
async function depcruise(cwd: string, targets: readonly string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(DEPCRUISE, ['--config', CONFIG, '--output-type', 'err', ...targets], { cwd, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A throwaway project: a tsconfig and the given source files. */
function fixture(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-depcruise-'));
  fixtures.push(dir);
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}
const fixtures: string[] = [];
after(() => {
  for (const dir of fixtures) rmSync(dir, { recursive: true, force: true });
});

describe('dependency rules (.dependency-cruiser.cjs: no circles, the layer order of the README)', { concurrency: true }, () => {
  it('hold for the repository: src, test and scripts', async () => {
    const { code, output } = await depcruise(ROOT, ['src', 'test', 'scripts']);
    assert.equal(code, 0, output);
    assert.match(output, /no dependency violations found/);
  });

  it('fail on a circle (type-only imports included), an import against the layer order, and a module outside every layer', async () => {
    const dir = fixture({
      // The circle src/pool had: the pool composes the lease book, which imported the pool's observer type.
      'src/pool/container-pool.ts': "import { leaseBook } from './lease-book.js';\nexport interface PoolObserver { destroyed(): void }\nexport const pool = leaseBook;\n",
      'src/pool/lease-book.ts': "import type { PoolObserver } from './container-pool.js';\nexport const leaseBook = (o: PoolObserver): void => o.destroyed();\n",
      // Settings may not know the chat layer, which sits below it.
      'src/config/config.ts': "import { maxSessions } from '../chat/limits.js';\nexport const config = { maxSessions };\n",
      'src/chat/limits.ts': 'export const maxSessions = 10;\n',
      // A new folder nobody gave a layer.
      'src/quotas/plans.ts': "import { errorMessage } from '../errors.js';\nexport const plans = errorMessage;\n",
      'src/errors.ts': 'export const errorMessage = (e: unknown): string => String(e);\n',
    });
    const { code, output } = await depcruise(dir, ['src']);
    assert.notEqual(code, 0, output);
    assert.match(output, /no-circular: src\/pool\/(container-pool|lease-book)\.ts/);
    assert.match(output, /layer-settings: src\/config\/config\.ts → src\/chat\/limits\.ts/);
    assert.match(output, /layer-unassigned-importer: src\/quotas\/plans\.ts/);
  });
});
