/**
 * The generated regions of docs/protocol.md (the rest of that file is
 * written by hand): the Socket.IO events with their payload types (read from
 * src/protocol/events.ts), the payload declarations, the error codes
 * (src/protocol/errors.ts, with each code's HTTP status), and the contract's
 * environment names and npm scripts, each checked against what this version
 * reads and has. `npm run docs:generate` writes them; test/unit/docs.test.ts
 * fails when the committed file is stale.
 *
 * The CONTRACT_* lists are copied from the wire contract (../shared/protocol.md,
 * outside the repository): what clients and acceptance checks rely on.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { ENV_VARIABLES } from '../../../src/config/config.js';
import { variablesOf } from '../../../src/config/env-var.js';
import { schema } from '../../../src/config/schema.js';
import { HTTP_STATUS } from '../../../src/http/http-app.js';
import { ERROR_CODES, type ErrorCode } from '../../../src/protocol/errors.js';
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents } from '../../../src/protocol/events.js';
import { table } from './markdown.js';
import { declarationsOf, eventsOf, readSource, referencedDeclarations, type EventSignature } from './protocol-source.js';

type Origin = 'contract' | 'extension';
interface Described {
  origin: Origin;
  meaning: string;
}

/** Client to server. A Record over the map's keys: a new event does not compile until it is described here. */
const CLIENT_EVENTS: Readonly<Record<keyof ClientToServerEvents, Described>> = {
  message: {
    origin: 'contract',
    meaning: 'Starts a request. The ack comes as soon as the request is accepted (`requestId`, `sessionId`) or refused (`error`); never silence.',
  },
  'tool:approval': { origin: 'contract', meaning: 'Approves or denies a pending tool call of this user, from any of the user\'s sockets. Another user\'s call id gets `UNKNOWN_CALL`.' },
  'workspace:wipe': { origin: 'extension', meaning: 'Deletes the user\'s files: their saved snapshot and the sandbox they hold. The next tool call starts empty.' },
};

/** Server to client: sent to every socket of the user, on any replica. */
const SERVER_EVENTS: Readonly<Record<keyof ServerToClientEvents, Described>> = {
  session: { origin: 'extension', meaning: 'Sent on connect: the session, replica, agent, tools, limits, and the tool calls still waiting (so a late tab can show them).' },
  'tool:request': { origin: 'contract', meaning: 'A tool call waiting for the user\'s approval.' },
  'tool:result': { origin: 'contract', meaning: 'A tool call\'s outcome. `approval` (extension) says whether it was approved, denied or timed out.' },
  'message:delta': { origin: 'contract', meaning: 'Streams the text the model writes, across steps (a `tool:request` separates steps).' },
  'message:done': { origin: 'contract', meaning: 'The final answer of a request. The request stops counting as in flight.' },
  'message:accepted': { origin: 'extension', meaning: 'A message of this user was accepted (other tabs show it).' },
  'tool:decided': { origin: 'extension', meaning: 'A tool call was decided (other tabs lock their buttons before the result).' },
  'tool:progress': {
    origin: 'extension',
    meaning: 'Between `tool:request` and `tool:result` of an approved call: the sandbox\'s server reported progress (`progress`, `total?`, `message?`, its MCP progress notifications).',
  },
  'tool:log': { origin: 'extension', meaning: 'Between `tool:request` and `tool:result` of an approved call: a log message of the sandbox\'s server (`level`, `logger?`, `data`).' },
  'request:error': {
    origin: 'contract',
    meaning: 'A request failed after it was accepted. `requestId` is null for the refusal of a message sent without an ack callback.',
  },
  'auth:expired': { origin: 'contract', meaning: 'The socket\'s token expired. The server disconnects the socket next; reconnect with a fresh token.' },
};

/** Replica to replica, over the Socket.IO Redis adapter: never seen by clients. */
const INTER_SERVER_EVENTS: Readonly<Record<keyof InterServerEvents, string>> = {
  'sandpool:message': 'A message forwarded to the replica that holds the user\'s sandbox; only the target answers the ack.',
  'sandpool:approval': 'An approval forwarded to the replica where the call waits.',
  'sandpool:tool': 'A tool call to run in the user\'s sandbox on the replica that holds it.',
  'sandpool:tool-notice': 'What the sandbox\'s server said (progress, log messages) while a forwarded tool call ran, back to the replica that asked.',
  'sandpool:tool-reply': 'The outcome of a forwarded tool call, back to the replica that asked.',
  'sandpool:release': 'The user\'s last MCP session elsewhere ended: release the sandbox if nothing here holds it.',
  'sandpool:wipe': 'The user wiped their workspace: the holder drops their sandbox, acked when done.',
};

/** Every code this version sends. A Record over ErrorCode: a new code does not compile until it is described. */
const ERRORS: Readonly<Record<ErrorCode, Described>> = {
  UNAUTHORIZED: { origin: 'contract', meaning: 'No token, a bad or expired token, a refused origin, or a user token on an operator endpoint.' },
  BAD_REQUEST: { origin: 'contract', meaning: 'Wrong types, empty text, a malformed approval, an unknown event, a bad query.' },
  PAYLOAD_TOO_LARGE: { origin: 'contract', meaning: 'A message over `MAX_MESSAGE_BYTES`, or an `/mcp` body over `MCP_MAX_BODY_BYTES`.' },
  TOO_MANY_REQUESTS: {
    origin: 'contract',
    meaning: 'More than `MAX_REQUESTS_PER_USER` requests in flight, more than `MAX_SOCKETS_PER_USER` sockets, more than `SOCKET_EVENTS_PER_SECOND` events, or every replica full.',
  },
  UNKNOWN_CALL: { origin: 'contract', meaning: 'No such pending call for this user, including a call that belongs to another user.' },
  POOL_EXHAUSTED: { origin: 'contract', meaning: 'No sandbox within `POOL_ACQUIRE_TIMEOUT_MS`, or more than `POOL_MAX_WAITING_CLIENTS` waiting. Send again later.' },
  SANDBOX_FAILED: { origin: 'contract', meaning: 'A sandbox failed to start or stopped working. Send again to continue in a fresh one; quote the log id to an operator.' },
  LLM_FAILED: { origin: 'contract', meaning: 'The model provider failed or timed out.' },
  NOT_FOUND: { origin: 'extension', meaning: 'HTTP only: no such route, or an MCP session that ended or is not yours.' },
  SHUTTING_DOWN: { origin: 'extension', meaning: 'The replica is stopping. Reconnect and send again.' },
  CANCELLED: { origin: 'extension', meaning: 'A request ended because its user left (every tab disconnected for `SESSION_DISCONNECT_GRACE_MS`).' },
  FORBIDDEN: { origin: 'extension', meaning: 'HTTP 403: a request addressed to a host not in `ALLOWED_HOSTS` (or `PUBLIC_URL`\'s), or an `/mcp` request from a foreign `Origin`.' },
  INTERNAL: { origin: 'contract', meaning: 'Anything else, for example shared state (Redis) unreachable. The message carries a log id.' },
};

/** Contract codes this version may not send yet, with the contract's meaning. */
const CONTRACT_ONLY_ERRORS: Readonly<Record<string, string>> = {
  QUOTA_EXCEEDED: 'A plan\'s window is full; `error` also carries `plan`, `window`, `limit` and `retryAfterSeconds` (see Plans and quotas).',
};

/** The contract's error codes, in its order. */
export const CONTRACT_ERROR_CODES: readonly string[] = [
  'UNAUTHORIZED',
  'BAD_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'QUOTA_EXCEEDED',
  'TOO_MANY_REQUESTS',
  'UNKNOWN_CALL',
  'POOL_EXHAUSTED',
  'SANDBOX_FAILED',
  'LLM_FAILED',
  'INTERNAL',
];

/** The contract's environment names (fixed names; defaults are sandpool's). */
export const CONTRACT_ENV_NAMES: readonly string[] = [
  'PORT', 'REPLICA_ID', 'ENABLE_CONTAINER_POOL', 'POOL_RUNTIME', 'POOL_IMAGE', 'POOL_MIN_SIZE', 'POOL_MAX_SIZE', 'POOL_IDLE_TIMEOUT_MS',
  'POOL_ACQUIRE_TIMEOUT_MS', 'MAX_REQUESTS_PER_USER', 'SESSION_IDLE_TIMEOUT_MS', 'TOOL_APPROVAL_TIMEOUT_MS', 'MAX_MESSAGE_BYTES', 'REDIS_URL',
  'AUTH_SECRET', 'LLM_PROVIDER', 'GEMINI_API_KEY', 'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'ANTHROPIC_API_KEY', 'LLM_MODEL', 'LOG_LEVEL', 'HOST',
  'HEARTBEAT_INTERVAL_MS', 'SESSION_DISCONNECT_GRACE_MS', 'AUTH_ISSUER', 'AUTH_AUDIENCE', 'ALLOWED_ORIGINS', 'MAX_SOCKETS_PER_USER',
  'WORKSPACE_STORE', 'WORKSPACE_DIR', 'WORKSPACE_MAX_BYTES', 'WORKSPACE_TTL_S', 'OPERATOR_SECRET', 'ALLOWED_HOSTS', 'PUBLIC_URL',
  'AUTH_MAX_TOKEN_LIFETIME_S', 'PLANS_FILE', 'DEFAULT_PLAN', 'PARK_MAX', 'PARK_TTL_S',
];

/** The contract's npm scripts (fixed names). */
export const CONTRACT_SCRIPTS: readonly string[] = [
  'start', 'test', 'build', 'bench:pool', 'bench:chat', 'cluster', 'load:smoke', 'load:capacity', 'load:soak', 'test:unit', 'images',
  'swarm:up', 'swarm:down', 'lab:up', 'lab:down', 'bench:mcp', 'bench:resume',
];

/** The MCP protocol versions the contract names for /mcp. */
export const CONTRACT_MCP_VERSIONS: readonly string[] = ['2026-07-28', '2025-11-25'];

const code = (text: string): string => `\`${text}\``;
const originOf = (origin: Origin): string => (origin === 'contract' ? 'contract' : 'extension');

/** Checks that the source's event map and the descriptions name the same events. */
function described<T>(mapName: string, events: readonly EventSignature[], descriptions: Readonly<Record<string, T>>): Array<{ event: EventSignature; about: T }> {
  const inSource = events.map((e) => e.name).sort();
  const inDescriptions = Object.keys(descriptions).sort();
  if (JSON.stringify(inSource) !== JSON.stringify(inDescriptions)) {
    throw new Error(`${mapName}: the source declares ${inSource.join(', ')} but the generator describes ${inDescriptions.join(', ')}`);
  }
  return events.map((event) => ({ event, about: descriptions[event.name] as T }));
}

export interface ProtocolInputs {
  /** The project's root (to read src/protocol and package.json). */
  root: string;
}

/** Region "events": the Socket.IO events and the payload types they use. */
export function renderEvents({ root }: ProtocolInputs): string {
  const eventsSource = readSource(root, 'src/protocol/events.ts');
  const errorsSource = readSource(root, 'src/protocol/errors.ts');
  const client = described('ClientToServerEvents', eventsOf(eventsSource, 'ClientToServerEvents'), CLIENT_EVENTS);
  const server = described('ServerToClientEvents', eventsOf(eventsSource, 'ServerToClientEvents'), SERVER_EVENTS);
  const inter = described('InterServerEvents', eventsOf(eventsSource, 'InterServerEvents'), INTER_SERVER_EVENTS);
  const declarations = [...declarationsOf(eventsSource), ...declarationsOf(errorsSource)];
  const roots = [...client, ...server].flatMap(({ event }) => [event.payload, event.ack ?? '']);
  const types = referencedDeclarations(declarations, roots);
  return [
    '### Client to server',
    '',
    ...table(
      ['Event', 'Payload', 'Ack', 'Origin', 'Meaning'],
      client.map(({ event, about }) => [code(event.name), code(event.payload), event.ack ? code(event.ack) : '–', originOf(about.origin), about.meaning]),
    ),
    '',
    '### Server to client',
    '',
    ...table(['Event', 'Payload', 'Origin', 'Meaning'], server.map(({ event, about }) => [code(event.name), code(event.payload), originOf(about.origin), about.meaning])),
    '',
    '### Payload types',
    '',
    'As declared in `src/protocol/events.ts` and `src/protocol/errors.ts` (clients in TypeScript can import these files):',
    '',
    '```ts',
    types.map((t) => t.text).join('\n\n'),
    '```',
    '',
    '`ErrorCode` is one of the codes under [Errors](#errors).',
    '',
    '### Replica to replica',
    '',
    'Over the Socket.IO Redis adapter, between replicas only; clients never see these.',
    '',
    ...table(['Event', 'Payload', 'Ack', 'Meaning'], inter.map(({ event, about }) => [code(event.name), code(event.payload), event.ack ? code(event.ack) : '–', about])),
  ].join('\n');
}

/** Region "errors": every code, its HTTP status, and whether this version sends it. */
export function renderErrors(): string {
  const sent = new Set<string>(ERROR_CODES);
  const all = [...ERROR_CODES, ...CONTRACT_ERROR_CODES.filter((c) => !sent.has(c))];
  const rows = all.map((name) => {
    if (sent.has(name)) {
      const about = ERRORS[name as ErrorCode];
      return [code(name), String(HTTP_STATUS[name as ErrorCode]), originOf(about.origin), 'yes', about.meaning];
    }
    return [code(name), '–', 'contract', 'not yet', CONTRACT_ONLY_ERRORS[name] ?? 'see the contract'];
  });
  return table(['Code', 'HTTP status', 'Origin', 'Sent by this version', 'Meaning'], rows).join('\n');
}

/** Region "env": the contract's environment names against the config schema. */
export function renderEnvNames(): string {
  const variables = new Map(variablesOf(schema).map(({ variable }) => [variable.name, variable]));
  const rows = CONTRACT_ENV_NAMES.map((name) => {
    const variable = variables.get(name);
    if (!variable) return [code(name), 'not yet', '–'];
    return [code(name), 'yes', variable.example === undefined ? (variable.defaultDoc ?? 'unset') : code(variable.example)];
  });
  const extensions = ENV_VARIABLES.filter((name) => !CONTRACT_ENV_NAMES.includes(name));
  return [
    ...table(['Name', 'Read by this version', 'Default'], rows),
    '',
    `This version also reads ${extensions.length} more variables (extensions): ${extensions.map(code).join(', ')}.`,
    'Each one is described in [configuration.md](configuration.md).',
  ].join('\n');
}

/** Region "scripts": the contract's npm scripts against package.json. */
export function renderScripts({ root }: ProtocolInputs): string {
  const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const rows = CONTRACT_SCRIPTS.map((name) => [code(`npm ${['start', 'test'].includes(name) ? name : `run ${name}`}`), name in scripts ? 'yes' : 'not yet']);
  const extensions = Object.keys(scripts).filter((name) => !CONTRACT_SCRIPTS.includes(name));
  return [
    ...table(['Script', 'In this version'], rows),
    '',
    `Extensions in this version: ${extensions.map((name) => code(`npm run ${name}`)).join(', ')}.`,
  ].join('\n');
}

/** Region "mcp-versions": what the contract names against what this version's MCP SDK negotiates. */
export function renderMcpVersions(): string {
  const served = new Set<string>(SUPPORTED_PROTOCOL_VERSIONS);
  return [
    ...table(['Contract version', 'Served by this version'], CONTRACT_MCP_VERSIONS.map((v) => [code(v), served.has(v) ? 'yes' : 'not yet'])),
    '',
    `The MCP SDK of this version negotiates ${SUPPORTED_PROTOCOL_VERSIONS.map(code).join(', ')}.`,
  ].join('\n');
}

/** Region "not-yet": every contract name this version lacks, in one list. */
export function renderNotYet({ root }: ProtocolInputs): string {
  const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const served = new Set<string>(SUPPORTED_PROTOCOL_VERSIONS);
  const missing = [
    ...CONTRACT_ENV_NAMES.filter((n) => !ENV_VARIABLES.includes(n)).map((n) => `environment name ${code(n)}`),
    ...CONTRACT_ERROR_CODES.filter((c) => !(ERROR_CODES as readonly string[]).includes(c)).map((c) => `error code ${code(c)}`),
    ...CONTRACT_SCRIPTS.filter((s) => !(s in scripts)).map((s) => `npm script ${code(s)}`),
    ...CONTRACT_MCP_VERSIONS.filter((v) => !served.has(v)).map((v) => `MCP protocol version ${code(v)}`),
  ];
  if (missing.length === 0) return 'Every name of the contract is served by this version.';
  return [`This version does not serve ${missing.length} names of the contract yet:`, '', ...missing.map((m) => `- ${m}`)].join('\n');
}

/** Every generated region of docs/protocol.md, by marker name. */
export function protocolRegions(inputs: ProtocolInputs): Record<string, string> {
  return {
    events: renderEvents(inputs),
    errors: renderErrors(),
    env: renderEnvNames(),
    scripts: renderScripts(inputs),
    'mcp-versions': renderMcpVersions(),
    'not-yet': renderNotYet(inputs),
  };
}
