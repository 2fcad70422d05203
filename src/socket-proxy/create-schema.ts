/**
 * The one container-create body the socket proxy accepts: a sandpool sandbox
 * (docs/socket-proxy.md lists it field by field). A body is read strictly
 * (strict-json.ts), checked against this schema, and what is forwarded to the
 * engine is serialized here from the accepted values, never the client's
 * bytes: whatever a body says beyond the schema cannot reach the engine.
 */
import { APP_LABEL_VALUE, LABELS } from '../runtime/types.js';
import { SANDBOX_CONFIG, SANDBOX_HOST_CONFIG, SANDBOX_TMPFS_MODES, sandboxTmpfsOptions, type SandboxTmpfsPath } from '../runtime/sandbox-hardening.js';
import { PolicyRefusal } from './refusal.js';
import type { JsonNode } from './strict-json.js';

/** Bounds on what one sandbox may ask for (the proxy's PROXY_MAX_* variables). */
export interface CreateLimits {
  maxMemoryBytes: number;
  maxNanoCpus: number;
  maxPids: number;
  maxWorkspaceBytes: number;
  maxTmpBytes: number;
  maxShmBytes: number;
  maxNofile: number;
}

/** What an accepted body asked for: every value checked, everything else fixed. */
export interface SandboxCreate {
  /** The image as the body names it (a name or an id): the proxy resolves it. */
  image: string;
  /** The body's `name` (dockerode repeats the query's name in the body); the engine reads the query's. */
  name: string | undefined;
  uid: number;
  gid: number;
  labels: ReadonlyArray<readonly [string, string]>;
  stdio: Readonly<Record<(typeof STDIO_FIELDS)[number], boolean>>;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  shmBytes: number;
  workspaceBytes: number;
  tmpBytes: number;
  nofileSoft: number;
  nofileHard: number;
}

/** The engine refuses less than 6 MiB of memory. */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
/** The engine refuses less than 0.01 CPU. */
const MIN_NANO_CPUS = 10_000_000;
/** The largest uid/gid accepted (Linux ids are 32-bit; -1 is "none"). */
export const MAX_ID = 2_147_483_647;
export const MAX_LABELS = 32;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
/** Printable ASCII only, bounded. */
const LABEL_VALUE = /^[\x20-\x7e]{0,256}$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;
/** A name[:tag][@digest] of the registry grammar, a full image id, or an id prefix. */
const IMAGE_REFERENCE = (() => {
  const component = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
  const domain = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?/)?';
  const name = `${domain}${component}(?:/${component})*`;
  return new RegExp(`^(?:${name}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?|sha256:[a-f0-9]{64}|[a-f0-9]{12,64})$`);
})();

const STDIO_FIELDS = ['AttachStdin', 'AttachStdout', 'AttachStderr', 'OpenStdin', 'StdinOnce', 'Tty'] as const;

/** Every field a body may have; true = required. Nothing else is accepted. */
const TOP_FIELDS = new Map<string, boolean>([
  ['name', false],
  ['Image', true],
  ['User', true],
  ['Labels', true],
  ['WorkingDir', true],
  ...STDIO_FIELDS.map((f): [string, boolean] => [f, false]),
  ['NetworkDisabled', true],
  ['HostConfig', true],
]);

const HOST_FIELDS = new Map<string, boolean>([
  ['NetworkMode', true],
  ['CapDrop', true],
  ['SecurityOpt', true],
  ['ReadonlyRootfs', true],
  ['Tmpfs', true],
  ['Memory', true],
  ['MemorySwap', true],
  ['NanoCpus', true],
  ['PidsLimit', true],
  ['ShmSize', true],
  ['Ulimits', true],
  ['AutoRemove', true],
  ['LogConfig', true],
]);

const ULIMIT_FIELDS = new Map<string, boolean>([
  ['Name', true],
  ['Soft', true],
  ['Hard', true],
]);

const TMPFS_PATHS = new Map<string, boolean>(Object.keys(SANDBOX_TMPFS_MODES).map((p): [string, boolean] => [p, true]));

function refuse(message: string): never {
  throw new PolicyRefusal(message, 403);
}

function describe(node: JsonNode): string {
  return node.kind === 'object' || node.kind === 'array' ? `an ${node.kind}` : node.kind === 'null' ? 'null' : `a ${node.kind}`;
}

function memberPath(path: string, key: string): string {
  const plain = /^[A-Za-z][A-Za-z0-9]*$/.test(key);
  if (path === '') return plain ? key : JSON.stringify(key);
  return plain ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** The members of an object whose keys are exactly those of `spec` (true = required). */
function fieldsOf(node: JsonNode, path: string, spec: ReadonlyMap<string, boolean>): Map<string, JsonNode> {
  if (node.kind !== 'object') refuse(`${path || 'the body'} must be an object (got ${describe(node)})`);
  const out = new Map<string, JsonNode>();
  for (const { key, value } of node.entries) {
    if (!spec.has(key)) refuse(`${memberPath(path, key)} is not a field the proxy accepts (${path || 'the body'} may have only ${[...spec.keys()].join(', ')})`);
    if (out.has(key)) refuse(`${memberPath(path, key)} is written twice`);
    out.set(key, value);
  }
  for (const [key, required] of spec) {
    if (required && !out.has(key)) refuse(`${memberPath(path, key)} is required`);
  }
  return out;
}

function str(node: JsonNode | undefined, path: string): string {
  if (node?.kind !== 'string') refuse(`${path} must be a string${node ? ` (got ${describe(node)})` : ''}`);
  return node.value;
}

function bool(node: JsonNode | undefined, path: string): boolean {
  if (node?.kind !== 'boolean') refuse(`${path} must be true or false${node ? ` (got ${describe(node)})` : ''}`);
  return node.value;
}

/** A whole number written as one (no fraction, no exponent), within [min, max]. */
function int(node: JsonNode | undefined, path: string, min: number, max: number, why: string): number {
  if (node?.kind !== 'number' || !node.integer || !Number.isSafeInteger(node.value)) refuse(`${path} must be a whole number${node ? ` (got ${describe(node)})` : ''}`);
  if (node.value < min || node.value > max) refuse(`${path} must be between ${min} and ${max} (${why}; got ${node.value})`);
  return node.value;
}

/** Whether a node is exactly this plain value (strings, numbers, booleans, arrays, objects of them). */
function isExactly(node: JsonNode, expected: unknown): boolean {
  if (typeof expected === 'string') return node.kind === 'string' && node.value === expected;
  if (typeof expected === 'boolean') return node.kind === 'boolean' && node.value === expected;
  if (typeof expected === 'number') return node.kind === 'number' && node.value === expected;
  if (Array.isArray(expected)) return node.kind === 'array' && node.items.length === expected.length && node.items.every((item, i) => isExactly(item, expected[i]));
  if (typeof expected === 'object' && expected !== null) {
    const keys = Object.keys(expected);
    return (
      node.kind === 'object' &&
      node.entries.length === keys.length &&
      node.entries.every(({ key, value }) => Object.hasOwn(expected, key) && isExactly(value, (expected as Record<string, unknown>)[key]))
    );
  }
  return false;
}

function fixed(node: JsonNode | undefined, path: string, expected: unknown, why: string): void {
  if (node === undefined || !isExactly(node, expected)) refuse(`${path} must be exactly ${JSON.stringify(expected)} (${why})`);
}

/**
 * A uid or gid: decimal digits only, no sign, no space, no leading zero,
 * 1..MAX_ID. Parsed digit by digit to an integer; "0", "00", "+0", " 0",
 * "0x0", "-1", "1e3" and numbers past MAX_ID are undefined.
 */
export function parseId(text: string): number | undefined {
  if (text.length === 0 || text.length > 10 || text[0] === '0') return undefined;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return undefined;
    n = n * 10 + digit;
  }
  return n >= 1 && n <= MAX_ID ? n : undefined;
}

/** `uid` or `uid:gid`, both non-zero ids; a lone uid is its own gid (as the app's SANDBOX_USER). */
export function parseUser(text: string): { uid: number; gid: number } | undefined {
  const parts = text.split(':');
  if (parts.length > 2) return undefined;
  const uid = parseId(parts[0] ?? '');
  const gid = parts.length === 2 ? parseId(parts[1] ?? '') : uid;
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

/** A byte count written as canonical decimal digits (what the runtime writes), or undefined. */
function parseBytes(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,15}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function checkTmpfs(node: JsonNode | undefined, path: string, uid: number, gid: number, limits: CreateLimits): { workspaceBytes: number; tmpBytes: number } {
  const mounts = fieldsOf(node ?? { kind: 'null' }, path, TMPFS_PATHS);
  const sizeOf = (mount: SandboxTmpfsPath, max: number): number => {
    const at = memberPath(path, mount);
    const options = str(mounts.get(mount), at);
    const sizes = options.split(',').filter((o) => o.startsWith('size='));
    const size = sizes.length === 1 ? parseBytes((sizes[0] ?? '').slice('size='.length)) : undefined;
    const form = sandboxTmpfsOptions(mount, 0, uid, gid).replace('size=0', 'size=<bytes>');
    if (size === undefined) refuse(`${at} must be exactly "${form}" (one size, in bytes)`);
    if (size > max) refuse(`${at}: size must be at most ${max} bytes (got ${size})`);
    if (options !== sandboxTmpfsOptions(mount, size, uid, gid)) refuse(`${at} must be exactly "${form}" (noexec, nosuid, nodev, owned by the sandbox's user)`);
    return size;
  };
  return { workspaceBytes: sizeOf('/workspace', limits.maxWorkspaceBytes), tmpBytes: sizeOf('/tmp', limits.maxTmpBytes) };
}

function checkLabels(node: JsonNode | undefined, path: string): Array<[string, string]> {
  if (node?.kind !== 'object') refuse(`${path} must be an object of strings${node ? ` (got ${describe(node)})` : ''}`);
  if (node.entries.length > MAX_LABELS) refuse(`${path}: at most ${MAX_LABELS} labels (got ${node.entries.length})`);
  const labels: Array<[string, string]> = [];
  for (const { key, value } of node.entries) {
    const at = memberPath(path, key);
    if (!LABEL_KEY.test(key)) refuse(`${at}: a label key is 1-128 letters, digits, and . _ / - (starting with a letter or digit)`);
    const text = str(value, at);
    if (!LABEL_VALUE.test(text)) refuse(`${at}: a label value is at most 256 printable ASCII characters`);
    labels.push([key, text]);
  }
  if (!labels.some(([k, v]) => k === LABELS.app && v === APP_LABEL_VALUE)) {
    refuse(`${path} must include ${LABELS.app}=${APP_LABEL_VALUE}: only sandboxes may be created`);
  }
  return labels;
}

function checkUlimits(node: JsonNode | undefined, path: string, limits: CreateLimits): { soft: number; hard: number } {
  if (node?.kind !== 'array' || node.items.length !== 1) refuse(`${path} must be exactly one limit: [{"Name":"nofile","Soft":n,"Hard":n}]`);
  const at = `${path}[0]`;
  const limit = fieldsOf(node.items[0] ?? { kind: 'null' }, at, ULIMIT_FIELDS);
  fixed(limit.get('Name'), `${at}.Name`, 'nofile', 'only the open-files limit may be set');
  const hard = int(limit.get('Hard'), `${at}.Hard`, 1, limits.maxNofile, 'PROXY_MAX_NOFILE');
  const soft = int(limit.get('Soft'), `${at}.Soft`, 1, hard, 'at most Hard');
  return { soft, hard };
}

/**
 * Checks a container-create body (already read by parseStrictJson) against
 * the sandbox schema; throws PolicyRefusal (403) saying what is wrong.
 */
export function checkSandboxCreate(body: JsonNode, limits: CreateLimits): SandboxCreate {
  const top = fieldsOf(body, '', TOP_FIELDS);
  const image = str(top.get('Image'), 'Image');
  if (!IMAGE_REFERENCE.test(image) || image.length > 255) refuse(`Image ${JSON.stringify(image)} is not an image name or id`);
  const nameNode = top.get('name');
  const name = nameNode === undefined ? undefined : str(nameNode, 'name');
  if (name !== undefined && !CONTAINER_NAME.test(name)) refuse('name: a container name is 1-200 letters, digits, and _ . - (starting with a letter or digit)');
  const userText = str(top.get('User'), 'User');
  const user = parseUser(userText);
  if (!user) refuse(`User must be uid or uid:gid, each a non-zero decimal number without sign or leading zero (got ${JSON.stringify(userText)}): sandboxes never run as root or in group 0`);
  const labels = checkLabels(top.get('Labels'), 'Labels');
  fixed(top.get('WorkingDir'), 'WorkingDir', SANDBOX_CONFIG.WorkingDir, 'the workspace tmpfs');
  fixed(top.get('NetworkDisabled'), 'NetworkDisabled', SANDBOX_CONFIG.NetworkDisabled, 'sandboxes have no network');
  const stdio = Object.fromEntries(STDIO_FIELDS.map((f) => [f, top.has(f) ? bool(top.get(f), f) : false])) as Record<(typeof STDIO_FIELDS)[number], boolean>;

  const host = fieldsOf(top.get('HostConfig') ?? { kind: 'null' }, 'HostConfig', HOST_FIELDS);
  fixed(host.get('NetworkMode'), 'HostConfig.NetworkMode', SANDBOX_HOST_CONFIG.NetworkMode, 'sandboxes have no network');
  fixed(host.get('CapDrop'), 'HostConfig.CapDrop', SANDBOX_HOST_CONFIG.CapDrop, 'sandboxes drop every capability');
  fixed(host.get('SecurityOpt'), 'HostConfig.SecurityOpt', SANDBOX_HOST_CONFIG.SecurityOpt, "the engine's default seccomp and AppArmor profiles, no other security options");
  fixed(host.get('ReadonlyRootfs'), 'HostConfig.ReadonlyRootfs', SANDBOX_HOST_CONFIG.ReadonlyRootfs, 'a read-only root');
  fixed(host.get('AutoRemove'), 'HostConfig.AutoRemove', SANDBOX_HOST_CONFIG.AutoRemove, 'sandpool removes its sandboxes itself');
  fixed(host.get('LogConfig'), 'HostConfig.LogConfig', SANDBOX_HOST_CONFIG.LogConfig, 'the engine keeps no log of a sandbox');
  const memoryBytes = int(host.get('Memory'), 'HostConfig.Memory', MIN_MEMORY_BYTES, limits.maxMemoryBytes, 'bytes; PROXY_MAX_MEMORY_MB');
  const swap = int(host.get('MemorySwap'), 'HostConfig.MemorySwap', -1, Number.MAX_SAFE_INTEGER, 'bytes');
  if (swap !== memoryBytes) refuse(`HostConfig.MemorySwap must equal HostConfig.Memory (${memoryBytes}): sandboxes get no swap`);
  const nanoCpus = int(host.get('NanoCpus'), 'HostConfig.NanoCpus', MIN_NANO_CPUS, limits.maxNanoCpus, 'billionths of a CPU; PROXY_MAX_CPUS');
  const pidsLimit = int(host.get('PidsLimit'), 'HostConfig.PidsLimit', 1, limits.maxPids, 'PROXY_MAX_PIDS');
  const shmBytes = int(host.get('ShmSize'), 'HostConfig.ShmSize', 1, limits.maxShmBytes, 'bytes; PROXY_MAX_SHM_MB');
  const nofile = checkUlimits(host.get('Ulimits'), 'HostConfig.Ulimits', limits);
  const { workspaceBytes, tmpBytes } = checkTmpfs(host.get('Tmpfs'), 'HostConfig.Tmpfs', user.uid, user.gid, limits);

  return { image, name, uid: user.uid, gid: user.gid, labels, stdio, memoryBytes, nanoCpus, pidsLimit, shmBytes, workspaceBytes, tmpBytes, nofileSoft: nofile.soft, nofileHard: nofile.hard };
}

/**
 * The body the proxy sends to the engine for an accepted create: every field
 * written here, the image as the id it resolved to. Nothing of the client's
 * text is copied but checked values.
 */
export function serializeSandboxCreate(create: SandboxCreate, imageId: string): string {
  const body = {
    Image: imageId,
    User: `${create.uid}:${create.gid}`,
    Labels: Object.fromEntries(create.labels),
    ...SANDBOX_CONFIG,
    ...create.stdio,
    HostConfig: {
      ...SANDBOX_HOST_CONFIG,
      Tmpfs: {
        '/workspace': sandboxTmpfsOptions('/workspace', create.workspaceBytes, create.uid, create.gid),
        '/tmp': sandboxTmpfsOptions('/tmp', create.tmpBytes, create.uid, create.gid),
      },
      Memory: create.memoryBytes,
      MemorySwap: create.memoryBytes,
      NanoCpus: create.nanoCpus,
      PidsLimit: create.pidsLimit,
      ShmSize: create.shmBytes,
      Ulimits: [{ Name: 'nofile', Soft: create.nofileSoft, Hard: create.nofileHard }],
    },
  };
  return JSON.stringify(body);
}
