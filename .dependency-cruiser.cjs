/**
 * sandpool's import rules, checked by dependency-cruiser (`npx depcruise src
 * test scripts`; the unit tier runs it: test/unit/dependency-rules.test.ts).
 *
 * The layer rule (README, "Architecture"): layers are listed top to bottom,
 * and a module imports only from its own layer or the ones above it, types
 * included, so nothing reaches back up. Within a layer any direction is
 * allowed; circles are forbidden everywhere.
 *
 * A folder added to src/ must be given a layer here: a module that no layer
 * claims fails the check as soon as it imports or is imported.
 */

/** @type {ReadonlyArray<{ name: string, paths: readonly string[] }>} each path a regular expression over the module's path */
const LAYERS = [
  // The wire contract as types, the provider-neutral conversation, the error base, helpers: nothing of sandpool's parts.
  { name: 'wire and model', paths: ['^src/protocol/', '^src/model/', '^src/util/', '^src/errors\\.ts$', '^src/logger\\.ts$'] },
  // One schema of every environment variable, and the plans (PLANS_FILE) it reads.
  { name: 'settings', paths: ['^src/config/', '^src/plans/'] },
  // Containers, MCP over their stdio, the warm pool, the users' files across sandboxes.
  { name: 'sandboxes', paths: ['^src/runtime/', '^src/mcp/', '^src/pool/', '^src/workspace/'] },
  // What replicas share: slots, conversations, ownership, the replica records, liveness, the heartbeat, the quota counters.
  { name: 'shared state', paths: ['^src/state/', '^src/cluster/', '^src/quota/'] },
  // The agent loop and the model providers; it declares the ToolRunner and Approver it needs.
  { name: 'agent', paths: ['^src/agent/'] },
  // Users, their requests, their presence and their sandbox.
  { name: 'chat', paths: ['^src/chat/'] },
  // Clients and operators: Socket.IO, /mcp, HTTP, tokens, metrics, the orphan sweep, the socket proxy.
  {
    name: 'edges',
    paths: ['^src/auth/', '^src/realtime/', '^src/mcp-gateway/', '^src/http/', '^src/orphans/', '^src/metrics/', '^src/socket-proxy/'],
  },
  // The composition root and the CLI: they know everything and decide nothing.
  { name: 'wiring', paths: ['^src/app/', '^src/main\\.ts$'] },
];

/** One rule per layer: nothing in it imports from a layer below it. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => {
  const below = LAYERS.slice(i + 1);
  return {
    name: `layer-${layer.name.replace(/\s+/g, '-')}`,
    comment: `${layer.name} imports only from its own layer or above it (README, Architecture); not from ${below.map((l) => l.name).join(', ')}`,
    severity: 'error',
    from: { path: layer.paths },
    to: { path: below.flatMap((l) => l.paths) },
  };
});

const ALL_LAYER_PATHS = LAYERS.flatMap((l) => l.paths);

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A circle makes two modules one: neither can be understood, tested or replaced without the other. Move the shared part below both.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'layer-unassigned-importer',
      comment: 'Every src/ module belongs to a layer (LAYERS above): give this one its place before it imports anything.',
      severity: 'error',
      from: { path: '^src/', pathNot: ALL_LAYER_PATHS },
      to: {},
    },
    {
      name: 'layer-unassigned-imported',
      comment: 'Every src/ module belongs to a layer (LAYERS above): give this one its place before anything imports it.',
      severity: 'error',
      from: {},
      to: { path: '^src/', pathNot: ALL_LAYER_PATHS },
    },
    {
      name: 'src-not-to-tests-or-scripts',
      comment: 'The product never depends on its tests, benchmarks or tools.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|scripts|bench|load-tests)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that does not resolve is a broken build waiting to happen (or a module the checker cannot see).',
      severity: 'error',
      from: {},
      // The sandbox image's agent is .mts, which the swc parser does not read: its compiled .mjs is what tests import.
      to: { couldNotResolve: true, pathNot: '^(\\.\\./)+pool/agent/[a-z-]+\\.mjs$' },
    },
    {
      name: 'src-not-to-dev-dependencies',
      comment: 'What the product imports must be installed in production (npm ci --omit=dev): a dependency, not a devDependency.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    // Types included: a type-only import binds two modules as much as a value import.
    tsPreCompilationDeps: true,
    // TypeScript 7 has no JavaScript API for dependency-cruiser's tsc parser: swc parses instead.
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
