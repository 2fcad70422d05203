/**
 * A node:test reporter: wall time per test file, slowest first, to see where
 * `npm test`'s time goes (scripts/test.sh writes it to test-output/). The
 * runner enqueues every file at the start; a file's own run goes from its
 * dequeue (the event named after the file) to its complete.
 */
interface RunnerEvent {
  type: string;
  data?: { file?: string; name?: string; nesting?: number };
}

export default async function* fileTimes(source: AsyncIterable<RunnerEvent>): AsyncGenerator<string> {
  // Tests declared in a shared module (a contract suite) carry that module's name: they have no run of their own.
  const spans = new Map<string, { firstMs: number; lastMs: number; tests: number; failed: number; own: boolean }>();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    const span = spans.get(file) ?? { firstMs: now, lastMs: now, tests: 0, failed: 0, own: false };
    const ofFile = event.data?.name === file;
    if (ofFile && event.type === 'test:dequeue') {
      span.firstMs = now;
      span.own = true;
    }
    if (ofFile && event.type === 'test:complete') span.lastMs = now;
    if (event.type === 'test:pass' || event.type === 'test:fail') {
      span.tests++;
      if (event.type === 'test:fail') span.failed++;
    }
    spans.set(file, span);
  }
  const rows = [...spans].filter(([, s]) => s.own).map(([file, s]) => ({ file: file.replace(/^.*\/dist\//, 'dist/'), seconds: (s.lastMs - s.firstMs) / 1000, tests: s.tests, failed: s.failed }));
  rows.sort((a, b) => b.seconds - a.seconds);
  const total = rows.reduce((sum, r) => sum + r.seconds, 0);
  yield `seconds  results  file (wall time of each file's run; total ${total.toFixed(0)} s)\n`;
  for (const r of rows) yield `${r.seconds.toFixed(1).padStart(7)}  ${String(r.tests).padStart(7)}${r.failed ? ` (${r.failed} failed)` : ''}  ${r.file}\n`;
}
