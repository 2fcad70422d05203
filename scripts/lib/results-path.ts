/**
 * Where benchmarks and load runs write their results. By default a
 * git-ignored folder (`results/` at the project's root), so a run leaves
 * `git status` clean. With `--save` they write the tracked copy that the
 * documents link to (`bench/results/`, `load-tests/results/`). `--out` names
 * a path of its own, and cannot be combined with `--save`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/scripts/lib/results-path.js: three levels below the project. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export type ResultKind = 'bench' | 'load';

/** Tracked: what SCALABILITY.md links to. */
export const TRACKED_RESULTS: Readonly<Record<ResultKind, string>> = { bench: 'bench/results', load: 'load-tests/results' };

/** Git-ignored (`/results/` in .gitignore): every run's default. */
export const SCRATCH_RESULTS: Readonly<Record<ResultKind, string>> = { bench: 'results/bench', load: 'results/load' };

export class ResultsPathError extends Error {}

export interface ResultsOptions {
  /** --out: a path chosen by the caller (relative to the working directory). */
  out?: string | undefined;
  /** --save: write the tracked copy. */
  save: boolean;
}

/** The folder a run writes into: --out, else the tracked folder with --save, else the scratch folder. */
export function resultsDir(kind: ResultKind, options: ResultsOptions): string {
  if (options.out !== undefined && options.save) throw new ResultsPathError('--out and --save name two places: give one of them');
  if (options.out !== undefined) return path.resolve(options.out);
  return path.join(PROJECT_ROOT, options.save ? TRACKED_RESULTS[kind] : SCRATCH_RESULTS[kind]);
}

/** The file a benchmark writes: --out as given, else `name` in the tracked (--save) or scratch folder. */
export function benchResultFile(name: string, options: ResultsOptions): string {
  if (options.out !== undefined && options.save) throw new ResultsPathError('--out and --save name two places: give one of them');
  if (options.out !== undefined) return path.resolve(options.out);
  return path.join(resultsDir('bench', options), name);
}

/** A path as a reader would type it: relative to the working directory when it lies below it. */
export function shownPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** benchResultFile for a script's command line: a bad combination ends the script with status 2 and says why. */
export function benchResultFileOrExit(script: string, name: string, options: ResultsOptions): string {
  try {
    return benchResultFile(name, options);
  } catch (err) {
    if (!(err instanceof ResultsPathError)) throw err;
    process.stderr.write(`${script}: ${err.message}\n`);
    return process.exit(2);
  }
}

/** Writes a run's result as indented JSON to `file`, making its folder: one copy of what every bench does. */
export function writeResultFile(file: string, result: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
}
