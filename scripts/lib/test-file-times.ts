/**
 * A node:test reporter: wall time per test file, slowest first, to see where
 * `npm test`'s time goes (scripts/test.sh writes it to test-output/). Node 20
 * reports no event per file, so a file's time runs from its first event to
 * its last; files run one after another within a lane, so that is its time.
 */
interface RunnerEvent {
  type: string;
  data?: { file?: string; nesting?: number; details?: { passed?: boolean } };
}

export default async function* fileTimes(source: AsyncIterable<RunnerEvent>): AsyncGenerator<string> {
  const spans = new Map<string, { firstMs: number; lastMs: number; tests: number; failed: number }>();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    const span = spans.get(file) ?? { firstMs: now, lastMs: now, tests: 0, failed: 0 };
    span.lastMs = now;
    if (event.type === 'test:pass' || event.type === 'test:fail') {
      span.tests++;
      if (event.type === 'test:fail') span.failed++;
    }
    spans.set(file, span);
  }
  const rows = [...spans].map(([file, s]) => ({ file: file.replace(/^.*\/dist\//, 'dist/'), seconds: (s.lastMs - s.firstMs) / 1000, tests: s.tests, failed: s.failed }));
  rows.sort((a, b) => b.seconds - a.seconds);
  const total = rows.reduce((sum, r) => sum + r.seconds, 0);
  yield `seconds  results  file (wall time from first to last event; total ${total.toFixed(0)} s)\n`;
  for (const r of rows) yield `${r.seconds.toFixed(1).padStart(7)}  ${String(r.tests).padStart(7)}${r.failed ? ` (${r.failed} failed)` : ''}  ${r.file}\n`;
}
