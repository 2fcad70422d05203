import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT, ResultsPathError, SCRATCH_RESULTS, TRACKED_RESULTS, benchResultFile, resultsDir } from '../../scripts/lib/results-path.js';

/** Whether git ignores a path (by the rules only: the file need not exist). */
function ignored(relative: string): boolean {
  try {
    execFileSync('git', ['check-ignore', '--quiet', '--no-index', relative], { cwd: PROJECT_ROOT, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('where benchmarks and load runs write', () => {
  it('by default into a git-ignored folder, so a run leaves git status clean', () => {
    assert.equal(benchResultFile('pool.json', { out: undefined, save: false }), path.join(PROJECT_ROOT, SCRATCH_RESULTS.bench, 'pool.json'));
    assert.equal(resultsDir('load', { out: undefined, save: false }), path.join(PROJECT_ROOT, SCRATCH_RESULTS.load));
    for (const dir of Object.values(SCRATCH_RESULTS)) assert.ok(ignored(`${dir}/x.json`), `${dir} is not git-ignored`);
  });

  it('with --save into the tracked folder the documents link to', () => {
    assert.equal(benchResultFile('pool.json', { out: undefined, save: true }), path.join(PROJECT_ROOT, 'bench/results/pool.json'));
    assert.equal(resultsDir('load', { out: undefined, save: true }), path.join(PROJECT_ROOT, 'load-tests/results'));
    for (const dir of Object.values(TRACKED_RESULTS)) assert.ok(!ignored(`${dir}/x.json`), `${dir} is git-ignored`);
  });

  it('with --out where it says, and refuses --out with --save', () => {
    assert.equal(benchResultFile('pool.json', { out: 'elsewhere/p.json', save: false }), path.resolve('elsewhere/p.json'));
    assert.throws(() => benchResultFile('pool.json', { out: 'x.json', save: true }), ResultsPathError);
    assert.throws(() => resultsDir('load', { out: 'dir', save: true }), ResultsPathError);
  });
});
