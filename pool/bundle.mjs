// Bundles the sandbox's entry point, the agent (agent/sandbox-agent.mts: the
// workspace snapshots, answered in band) with the official MCP filesystem
// server (its own code, unchanged), into one CommonJS file, /out/server.cjs,
// that can also be the entry of a V8 startup snapshot. Runs at image build
// time, in the build stage.
//
// Why: unbundled, the server loads as hundreds of separate modules, and that
// module loading is most of a sandbox start's CPU. One file parses once; a
// snapshot of it skips even that.
//
// The server's entry (dist/index.js) is an ES module that runs at top level
// (with top-level await): a snapshot must load the code without running it.
// So its top-level body is wrapped, as written, in `async function main()`:
// its imports stay imports, nothing else changes. The build fails loudly if
// the pinned version's entry stops having that shape.
//
// Usage: node bundle.mjs OUT_DIR [ENTRY_PATH_AT_RUN_TIME]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const outDir = path.resolve(process.argv[2] ?? 'out');
// The bundle's path inside the image: what the server sees as argv[1] when it runs from the snapshot.
const runtimePath = process.argv[3] ?? '/opt/sandbox/server.cjs';
const require = createRequire(import.meta.url);
const entryPath = require.resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
// TypeScript: esbuild strips the types (the same file the process runtime runs compiled by tsc).
const agentPath = fileURLToPath(new URL('./agent/sandbox-agent.mts', import.meta.url));

/** The entry's leading import declarations, and the body after them. */
export function splitEntry(source) {
  const text = source.replace(/^#!.*\n/, '');
  const importDecl = /\s*(?:\/\/[^\n]*\n\s*)*import\s[\s\S]*?from\s*(["'])[^"'\n]+\1;?[ \t]*\n/y;
  let offset = 0;
  const imports = [];
  for (;;) {
    importDecl.lastIndex = offset;
    const m = importDecl.exec(text);
    if (!m) break;
    imports.push(m[0]);
    offset = importDecl.lastIndex;
  }
  const body = text.slice(offset);
  if (imports.length === 0) throw new Error(`${entryPath}: no leading import declarations found`);
  if (/^\s*(import|export)\s/m.test(body)) throw new Error(`${entryPath}: import/export after the leading imports; the wrapper cannot defer this entry`);
  return { imports: imports.join(''), body };
}

const deferEntry = {
  name: 'defer-server-entry',
  setup(b) {
    b.onLoad({ filter: /server-filesystem[\\/]dist[\\/]index\.js$/ }, (args) => {
      const { imports, body } = splitEntry(readFileSync(args.path, 'utf8'));
      return { contents: `${imports}\nexport async function main() {\n${body}\n}\n`, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

// zod exports 40-odd error-message locales as one namespace (z.locales), so
// the bundle kept all of them: a third of its bytes, parsed into every
// snapshot and deserialized at every start. Nothing in the server or the SDK
// reads z.locales; zod itself imports English directly for its default
// messages. Only English is kept.
const englishOnlyZod = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

// The bundle's own entry: run now, or, while a snapshot is built, once the
// snapshot is deserialized. While it is built, a warm-up first sends one
// initialize, tools/list and tools/call through the SDK's own McpServer (an
// in-memory transport, a throwaway tool): the functions those paths run are
// then compiled, and the snapshot keeps their bytecode, so a sandbox does not
// compile them again at every start. The warm-up server is closed and
// collected before the snapshot is taken; the filesystem server itself only
// runs, as published, from the snapshot's main.
const launcher = `
import v8 from 'node:v8';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { main } from ${JSON.stringify(entryPath)};
import { startAgent } from ${JSON.stringify(agentPath)};

async function warmUp() {
  const server = new McpServer({ name: 'warm-up', version: '0' });
  const schema = {
    path: z.string(),
    count: z.number().optional().describe('a number'),
    items: z.array(z.object({ a: z.string(), b: z.string() })).optional().default([]),
    order: z.enum(['name', 'size']).optional().default('name'),
    dryRun: z.boolean().default(false),
  };
  const tool = { description: 'warm-up', inputSchema: schema, outputSchema: { content: z.string() }, annotations: { readOnlyHint: true } };
  server.registerTool('warm_up', tool, async ({ path }) => ({ content: [{ type: 'text', text: path }], structuredContent: { content: path } }));
  const replies = [];
  let answered;
  const allAnswered = new Promise((resolve) => (answered = resolve));
  const transport = {
    async start() {},
    async send(message) {
      replies.push(message);
      if (replies.length === 3) answered();
    },
    async close() {
      transport.onclose?.();
    },
  };
  await server.connect(transport);
  transport.onmessage({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'warm-up', version: '0' } } });
  await new Promise((resolve) => setImmediate(resolve));
  transport.onmessage({ jsonrpc: '2.0', method: 'notifications/initialized' });
  transport.onmessage({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
  transport.onmessage({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'warm_up', arguments: { path: '/warm-up' } } });
  await allAnswered;
  await server.close();
  const failed = replies.filter((r) => r.error || r.result?.isError);
  if (failed.length > 0) throw new Error('warm-up failed: ' + JSON.stringify(failed));
}

function run() {
  // The agent takes the process's stdio and gives the server its own pipes, then starts it.
  startAgent(() => main()).catch((error) => {
    console.error('Fatal error starting the filesystem server:', error);
    process.exit(1);
  });
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  warmUp().catch((error) => {
    console.error(error);
    process.exit(1);
  });
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    // From a snapshot argv has no script path; the server reads its directories from argv[2] on.
    process.argv.splice(1, 0, ${JSON.stringify(runtimePath)});
    run();
  });
} else {
  run();
}
`;

const result = await build({
  stdin: { contents: launcher, resolveDir: path.dirname(entryPath), sourcefile: 'launcher.mjs', loader: 'js' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: process.env.BUNDLE_MINIFY !== '0',
  legalComments: 'none',
  outfile: path.join(outDir, 'server.cjs'),
  plugins: [deferEntry, englishOnlyZod],
  metafile: true,
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.error(`[bundle] ${inputs} modules -> ${path.join(outDir, 'server.cjs')} (${Math.round(bytes / 1024)} KiB)`);
