/**
 * Runs test files with Node's runner in the order given, `--concurrency` at a
 * time, reporting with the spec reporter to stdout and each file's wall time
 * (test-file-times.ts) to `--times`. Exit 1 if any test failed.
 *
 * Why not `node --test`: its command line sorts the files by name, and
 * scripts/test.sh needs the longest files to start first (they would
 * otherwise end the run alone). `run({ files })` keeps the order.
 *
 *   node dist/scripts/lib/run-tests.js --concurrency 3 --times out.txt [--test-name-pattern RE]... FILE...
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import fileTimes from './test-file-times.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string', default: '1' },
    times: { type: 'string' },
    'test-name-pattern': { type: 'string', multiple: true },
  },
});
const concurrency = Number(values.concurrency);
if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a whole number of files, got ${values.concurrency}`);
if (positionals.length === 0) throw new Error('no test files given');

const patterns = values['test-name-pattern'];
const events = run({
  files: positionals.map((f) => path.resolve(f)),
  concurrency,
  ...(patterns ? { testNamePatterns: patterns } : {}),
});

// One source, two reporters: each gets every event.
const toSpec = new PassThrough({ objectMode: true });
const toTimes = new PassThrough({ objectMode: true });
const reporters = [pipeline(toSpec, new spec(), process.stdout, { end: false })];
if (values.times) reporters.push(pipeline(toTimes, fileTimes, createWriteStream(values.times)));
else toTimes.resume();
let failed = false;
events.on('data', (event: { type: string }) => {
  if (event.type === 'test:fail') failed = true;
  toSpec.write(event);
  toTimes.write(event);
});
events.on('end', () => {
  toSpec.end();
  toTimes.end();
});
await Promise.all(reporters);
process.exitCode = failed ? 1 : 0;
