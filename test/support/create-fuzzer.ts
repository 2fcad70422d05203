/**
 * Container-create bodies for fuzzing the socket proxy, derived from the
 * app's own body by seeded mutations. Each body is raw JSON text (so it can
 * hold what JSON.stringify never writes: a key twice, an escaped key, broken
 * syntax) and comes with the verdict the proxy owes it: a body that carries
 * only benign changes (other limits within the bounds, another valid uid,
 * another name of an allowed image, more labels, key order, whitespace) must
 * be accepted; any other change must be refused. This is written apart from
 * src/socket-proxy on purpose: it is the oracle, not a copy of the code.
 */

/** A JSON value as it will be written: objects keep duplicate keys and the text of each key. */
export type Raw = { t: 'obj'; entries: RawEntry[] } | { t: 'arr'; items: Raw[] } | { t: 'lit'; text: string };
export interface RawEntry {
  key: string;
  /** The key as written, quotes included; JSON.stringify(key) when unset. */
  keyText?: string;
  value: Raw;
}

export function raw(value: unknown): Raw {
  if (Array.isArray(value)) return { t: 'arr', items: value.map(raw) };
  if (value !== null && typeof value === 'object') return { t: 'obj', entries: Object.entries(value).map(([key, v]) => ({ key, value: raw(v) })) };
  return { t: 'lit', text: JSON.stringify(value) };
}

function clone(node: Raw): Raw {
  if (node.t === 'obj') return { t: 'obj', entries: node.entries.map((e) => ({ ...e, value: clone(e.value) })) };
  if (node.t === 'arr') return { t: 'arr', items: node.items.map(clone) };
  return { ...node };
}

interface Style {
  colon: string;
  comma: string;
  indent: string | undefined;
  newline: string;
}

export function emit(node: Raw, style: Style = { colon: ':', comma: ',', indent: undefined, newline: '' }, depth = 0): string {
  const pad = (d: number): string => (style.indent === undefined ? '' : style.newline + style.indent.repeat(d));
  if (node.t === 'lit') return node.text;
  if (node.t === 'arr') {
    if (node.items.length === 0) return '[]';
    return `[${node.items.map((i) => pad(depth + 1) + emit(i, style, depth + 1)).join(style.comma)}${pad(depth)}]`;
  }
  if (node.entries.length === 0) return '{}';
  return `{${node.entries.map((e) => `${pad(depth + 1)}${e.keyText ?? JSON.stringify(e.key)}${style.colon}${emit(e.value, style, depth + 1)}`).join(style.comma)}${pad(depth)}}`;
}

/** A small, fast, seedable PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(readonly next: () => number) {}
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const a = items[i] as T;
      items[i] = items[j] as T;
      items[j] = a;
    }
    return items;
  }
}

/** What the proxy under test allows (its PROXY_MAX_* in engine units) and the images to use. */
export interface FuzzContext {
  bounds: { memory: number; nanoCpus: number; pids: number; workspace: number; tmp: number; shm: number; nofile: number };
  /** Names and ids that resolve to an allowed image. */
  allowedImages: readonly string[];
  /** Names and ids of images the proxy must refuse (present on the engine or not). */
  otherImages: readonly string[];
  /** The label every body carries so the test finds what the engine created. */
  mark: readonly [string, string];
  /** Container names are this prefix plus a number. */
  namePrefix: string;
}

export interface FuzzCase {
  index: number;
  text: string;
  /** The create's query string ('' or name=...). */
  query: string;
  mutations: string[];
  expectAccepted: boolean;
}

const MIB = 1024 * 1024;

interface Params {
  image: string;
  uid: number;
  gid: number | undefined;
  labels: Array<[string, string]>;
  stdio: Array<[string, boolean]>;
  memory: number;
  nanoCpus: number;
  pids: number;
  shm: number;
  workspace: number;
  tmp: number;
  nofileSoft: number;
  nofileHard: number;
}

function tmpfsText(mode: string, size: number, uid: number, gid: number): string {
  return `rw,nosuid,nodev,noexec,size=${size},uid=${uid},gid=${gid},mode=${mode}`;
}

/** The app's body (docker-runtime.ts sandboxCreateOptions) for these values, in its field order. */
function bodyOf(p: Params): Record<string, unknown> {
  const gid = p.gid ?? p.uid;
  return {
    Image: p.image,
    Labels: Object.fromEntries(p.labels),
    User: p.gid === undefined ? String(p.uid) : `${p.uid}:${p.gid}`,
    WorkingDir: '/workspace',
    NetworkDisabled: true,
    ...Object.fromEntries(p.stdio),
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      AutoRemove: false,
      LogConfig: { Type: 'none', Config: {} },
      Tmpfs: { '/workspace': tmpfsText('0700', p.workspace, p.uid, gid), '/tmp': tmpfsText('1777', p.tmp, p.uid, gid) },
      Memory: p.memory,
      MemorySwap: p.memory,
      NanoCpus: p.nanoCpus,
      PidsLimit: p.pids,
      ShmSize: p.shm,
      Ulimits: [{ Name: 'nofile', Soft: p.nofileSoft, Hard: p.nofileHard }],
    },
  };
}

// ---------- the tree: finding objects and values ----------

interface ObjectAt {
  path: string;
  node: Extract<Raw, { t: 'obj' }>;
}

function objectsOf(node: Raw, path = ''): ObjectAt[] {
  if (node.t === 'obj') return [{ path, node }, ...node.entries.flatMap((e) => objectsOf(e.value, `${path}/${e.key}`))];
  if (node.t === 'arr') return node.items.flatMap((item, i) => objectsOf(item, `${path}[${i}]`));
  return [];
}

interface Slot {
  path: string;
  get(): Raw;
  set(value: Raw): void;
}

function slotsOf(node: Raw, path = ''): Slot[] {
  if (node.t === 'obj') {
    return node.entries.flatMap((e) => [{ path: `${path}/${e.key}`, get: () => e.value, set: (v: Raw) => (e.value = v) }, ...slotsOf(e.value, `${path}/${e.key}`)]);
  }
  if (node.t === 'arr') {
    return node.items.flatMap((item, i) => [{ path: `${path}[${i}]`, get: () => node.items[i] as Raw, set: (v: Raw) => (node.items[i] = v) }, ...slotsOf(item, `${path}[${i}]`)]);
  }
  return [];
}

function member(node: Raw, key: string): Raw | undefined {
  return node.t === 'obj' ? node.entries.find((e) => e.key === key)?.value : undefined;
}

/** The HostConfig object; a detached one when an earlier change removed or replaced it (the body is refused already). */
function hostOf(tree: Raw): Extract<Raw, { t: 'obj' }> {
  const host = member(tree, 'HostConfig');
  return host?.t === 'obj' ? host : { t: 'obj', entries: [] };
}

function setMember(node: Extract<Raw, { t: 'obj' }>, key: string, value: Raw): void {
  const entry = node.entries.find((e) => e.key === key);
  if (entry) entry.value = value;
  else node.entries.push({ key, value });
}

function removeMember(node: Extract<Raw, { t: 'obj' }>, key: string): void {
  node.entries = node.entries.filter((e) => e.key !== key);
}

function insertAt(rng: Rng, node: Extract<Raw, { t: 'obj' }>, entry: RawEntry): void {
  node.entries.splice(rng.int(0, node.entries.length), 0, entry);
}

function caseVariant(rng: Rng, key: string): string | undefined {
  if (!/[A-Za-z]/.test(key)) return undefined;
  const forms = [key.toLowerCase(), key.toUpperCase(), key.replace(/^./, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()))];
  for (let tries = 0; tries < 5; tries++) {
    forms.push([...key].map((c) => (rng.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join(''));
  }
  const different = forms.filter((f) => f !== key);
  return different.length === 0 ? undefined : rng.pick(different);
}

const DANGEROUS_HOST: ReadonlyArray<[string, unknown]> = [
  ['Privileged', true],
  ['Privileged', false],
  ['Binds', ['/:/host']],
  ['Binds', ['/var/run/docker.sock:/var/run/docker.sock']],
  ['Mounts', [{ Type: 'bind', Source: '/', Target: '/host' }]],
  ['CapAdd', ['SYS_ADMIN']],
  ['CapAdd', ['ALL']],
  ['CapDrop', []],
  ['CapDrop', ['NET_RAW']],
  ['SecurityOpt', ['seccomp=unconfined']],
  ['SecurityOpt', ['no-new-privileges', 'seccomp=unconfined']],
  ['SecurityOpt', ['no-new-privileges', 'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}']],
  ['SecurityOpt', ['no-new-privileges', 'apparmor=unconfined']],
  ['SecurityOpt', ['no-new-privileges', 'label=disable']],
  ['SecurityOpt', ['no-new-privileges:true']],
  ['SecurityOpt', ['no-new-privileges:false']],
  ['SecurityOpt', []],
  ['MaskedPaths', []],
  ['ReadonlyPaths', []],
  ['Devices', [{ PathOnHost: '/dev/mem', PathInContainer: '/dev/mem', CgroupPermissions: 'rwm' }]],
  ['DeviceCgroupRules', ['a *:* rwm']],
  ['NetworkMode', 'host'],
  ['NetworkMode', 'bridge'],
  ['NetworkMode', 'container:x'],
  ['PidMode', 'host'],
  ['IpcMode', 'host'],
  ['UTSMode', 'host'],
  ['UsernsMode', 'host'],
  ['CgroupnsMode', 'host'],
  ['Sysctls', { 'kernel.core_pattern': '|/bin/sh' }],
  ['Runtime', 'runc'],
  ['OomKillDisable', true],
  ['CgroupParent', '/'],
  ['ReadonlyRootfs', false],
  ['LogConfig', { Type: 'json-file', Config: {} }],
  ['AutoRemove', true],
  ['PortBindings', { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '2222' }] }],
  ['PublishAllPorts', true],
  ['ExtraHosts', ['a:1.2.3.4']],
  ['Dns', ['1.1.1.1']],
  ['VolumesFrom', ['x']],
  ['Links', ['x:y']],
  ['Init', true],
  ['GroupAdd', ['0']],
  ['Tmpfs', { '/workspace': 'rw,size=67108864', '/tmp': 'rw,nosuid,nodev,exec,size=16777216,mode=1777' }],
  ['Tmpfs', { '/workspace': 'rw,nosuid,nodev,noexec,size=67108864,uid=65532,gid=65532,mode=0700', '/tmp': 'rw,nosuid,nodev,noexec,size=16777216,uid=65532,gid=65532,mode=1777', '/etc': 'rw' }],
  ['Tmpfs', { '/workspace': 'rw,nosuid,nodev,noexec,size=67108864,uid=65532,gid=65532,mode=0700,exec', '/tmp': 'rw,nosuid,nodev,noexec,size=16777216,uid=65532,gid=65532,mode=1777' }],
  ['Tmpfs', { '/workspace': 'rw,nosuid,nodev,noexec,size=64m,uid=65532,gid=65532,mode=0700', '/tmp': 'rw,nosuid,nodev,noexec,size=16777216,uid=65532,gid=65532,mode=1777' }],
  ['Ulimits', [{ Name: 'nofile', Soft: 1024, Hard: 1024 }, { Name: 'nproc', Soft: 100000, Hard: 100000 }]],
  ['Ulimits', [{ Name: 'nproc', Soft: 1024, Hard: 1024 }]],
  ['Ulimits', []],
  ['KernelMemory', 1],
  ['CpuShares', 1024],
  ['OomScoreAdj', -1000],
  ['Isolation', 'default'],
  ['ConsoleSize', [0, 0]],
  ['RestartPolicy', { Name: 'always' }],
];

const DANGEROUS_TOP: ReadonlyArray<[string, unknown]> = [
  ['Entrypoint', ['/bin/sh']],
  ['Entrypoint', []],
  ['Entrypoint', '/bin/sh'],
  ['Cmd', ['-c', 'id']],
  ['Cmd', []],
  ['Env', ['NODE_OPTIONS=--require /workspace/x.js']],
  ['Volumes', { '/data': {} }],
  ['Healthcheck', { Test: ['CMD', 'true'] }],
  ['ExposedPorts', { '22/tcp': {} }],
  ['Hostname', 'x'],
  ['StopSignal', 'SIGKILL'],
  ['Shell', ['/bin/sh']],
  ['NetworkDisabled', false],
  ['WorkingDir', '/'],
  ['WorkingDir', '/workspace/'],
  ['NetworkingConfig', { EndpointsConfig: { bridge: {} } }],
  // The engine reads HostConfig's fields at the top level too (its deprecated embedded HostConfig).
  ['Privileged', true],
  ['Binds', ['/:/host']],
  ['CapAdd', ['SYS_ADMIN']],
  ['Memory', 0],
  ['Config', { Image: 'x' }],
];

const REQUIRED_HOST = ['NetworkMode', 'CapDrop', 'SecurityOpt', 'ReadonlyRootfs', 'Tmpfs', 'Memory', 'MemorySwap', 'NanoCpus', 'PidsLimit', 'ShmSize', 'Ulimits', 'AutoRemove', 'LogConfig'];

const UNKNOWN_KEYS = ['Foo', 'foo', 'X-Extra', '', ' ', 'Image2', 'HostConfigs', 'hostconfig_', '__proto__', 'constructor', 'toString', 'Mounts', 'Annotations', 'Platform'];

const BAD_USERS = ['0', '00', '000', '0:0', '+0', ' 0', '0 ', '0x0', '-1', '1e3', '0.0', '65532:0', '0:65532', '065532', '65532:065532', '4294967295', '4294967296', '2147483648', '99999999999', '', ':', '65532:', ':65532', '65532:65532:1', 'root', 'root:root', 'nobody', '65532 ', '\u0661', '\uff16\uff15\uff15\uff13\uff12', '65532\u0000'];

/** The app's defaults: the body the mutations start from. */
function baseParams(ctx: FuzzContext): Params {
  return {
    image: ctx.allowedImages[0] ?? '',
    uid: 65532,
    gid: 65532,
    labels: [
      ['sandpool.app', 'sandpool'],
      ['sandpool.replica', 'fuzz'],
      ['sandpool.pool', 'fuzz'],
      ['sandpool.created', '1700000000000'],
      ['sandpool.owner', 'fuzz-host/1'],
      [ctx.mark[0], ctx.mark[1]],
    ],
    stdio: [
      ['AttachStdin', true],
      ['AttachStdout', true],
      ['AttachStderr', true],
      ['OpenStdin', true],
      ['StdinOnce', false],
      ['Tty', false],
    ],
    memory: 256 * MIB,
    nanoCpus: 1_000_000_000,
    pids: 64,
    shm: MIB,
    workspace: 64 * MIB,
    tmp: 16 * MIB,
    nofileSoft: 1024,
    nofileHard: 1024,
  };
}

type ParamMutation = (p: Params, rng: Rng, ctx: FuzzContext) => void;

/** Changes within what the proxy must accept. */
const BENIGN_PARAMS: ReadonlyArray<[string, ParamMutation]> = [
  ['memory', (p, rng, ctx) => (p.memory = rng.chance(0.2) ? ctx.bounds.memory : rng.int(6 * MIB, ctx.bounds.memory))],
  ['cpus', (p, rng, ctx) => (p.nanoCpus = rng.chance(0.2) ? ctx.bounds.nanoCpus : rng.int(10_000_000, ctx.bounds.nanoCpus))],
  ['pids', (p, rng, ctx) => (p.pids = rng.int(1, ctx.bounds.pids))],
  ['shm', (p, rng, ctx) => (p.shm = rng.int(1, ctx.bounds.shm))],
  [
    'tmpfs-sizes',
    (p, rng, ctx) => {
      p.workspace = rng.int(1, ctx.bounds.workspace);
      p.tmp = rng.chance(0.2) ? ctx.bounds.tmp : rng.int(1, ctx.bounds.tmp);
    },
  ],
  [
    'nofile',
    (p, rng, ctx) => {
      p.nofileHard = rng.int(1, ctx.bounds.nofile);
      p.nofileSoft = rng.int(1, p.nofileHard);
    },
  ],
  [
    'user',
    (p, rng) => {
      p.uid = rng.pick([1, 1000, 4242, 65534, 2147483647, rng.int(1, 2147483647)]);
      p.gid = rng.chance(0.4) ? undefined : rng.pick([1, 100, 65534, 2147483647, rng.int(1, 2147483647)]);
    },
  ],
  ['image-alias', (p, rng, ctx) => (p.image = rng.pick(ctx.allowedImages))],
  [
    'more-labels',
    (p, rng) => {
      // At most 32 labels in all, each key new.
      for (let n = rng.int(0, 32 - p.labels.length); n > 0; n--) {
        const value = Array.from({ length: rng.int(0, 40) }, () => String.fromCharCode(rng.int(0x20, 0x7e))).join('');
        p.labels.push([`fuzz.k${p.labels.length}/${rng.pick(['a', 'B', 'c-d', 'e_f', '9'])}`, value]);
      }
    },
  ],
  [
    'stdio',
    (p, rng) => {
      p.stdio = p.stdio.filter(() => rng.chance(0.7)).map(([k]) => [k, rng.chance(0.5)]);
    },
  ],
];

type TreeMutation = (tree: Raw, rng: Rng, ctx: FuzzContext, p: Params) => string;

function anyEntry(rng: Rng, tree: Raw, filter: (o: ObjectAt, e: RawEntry) => boolean = () => true): { at: ObjectAt; entry: RawEntry } {
  const candidates = objectsOf(tree).flatMap((at) => at.node.entries.filter((e) => filter(at, e)).map((entry) => ({ at, entry })));
  return rng.pick(candidates);
}

function typeChanged(rng: Rng, node: Raw): Raw {
  if (node.t === 'obj') return rng.pick<Raw>([{ t: 'arr', items: [node] }, raw(null), raw('{}'), raw(1)]);
  if (node.t === 'arr') return rng.pick<Raw>([raw(Object.fromEntries(node.items.map((v, i) => [String(i), JSON.parse(emit(v)) as unknown]))), raw(null), raw(emit(node)), raw(true)]);
  const value = JSON.parse(node.text) as unknown;
  if (typeof value === 'string') return rng.pick<Raw>([raw([value]), raw(null), raw(Number(value) || 7), raw({ value }), raw(true)]);
  if (typeof value === 'number') return rng.pick<Raw>([raw(String(value)), raw(null), raw([value]), { t: 'lit', text: `${value}.0` }, { t: 'lit', text: `${value}e0` }, raw(value + 0.5), raw(true)]);
  if (typeof value === 'boolean') return rng.pick<Raw>([raw(String(value)), raw(value ? 1 : 0), raw(null), raw([value])]);
  return raw('null');
}

function escapeSomeOf(rng: Rng, key: string): string {
  const chars = [...key];
  const i = rng.int(0, chars.length - 1);
  const hex = (c: string): string => [...c].map((u) => `\\u${(u.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`).join('');
  if (rng.chance(0.3)) return `"${chars.map(hex).join('')}"`;
  if (rng.chance(0.2) && chars[i] === '/') return `"${chars.map((c, j) => (j === i ? '\\/' : c)).join('')}"`;
  return `"${chars.map((c, j) => (j === i ? hex(c) : c.replace(/["\\]/g, '\\$&'))).join('')}"`;
}

/** Changes the proxy must refuse, each tagged with what it did. */
const REFUSED: ReadonlyArray<[string, TreeMutation]> = [
  [
    'case-rename',
    (tree, rng) => {
      // In Labels only the sandbox label: another label under another case is just another label.
      const { at, entry } = anyEntry(rng, tree, (o, e) => /[A-Za-z]/.test(e.key) && (o.path !== '/Labels' || e.key === 'sandpool.app'));
      const variant = caseVariant(rng, entry.key) ?? entry.key.toUpperCase();
      entry.key = variant;
      return `${at.path}/${variant}`;
    },
  ],
  [
    'case-twin',
    (tree, rng) => {
      const { at, entry } = anyEntry(rng, tree, (_, e) => /[A-Za-z]/.test(e.key));
      const variant = caseVariant(rng, entry.key) ?? entry.key.toUpperCase();
      const danger = at.path === '/HostConfig' ? rng.pick(DANGEROUS_HOST)[1] : undefined;
      insertAt(rng, at.node, { key: variant, value: danger === undefined ? clone(entry.value) : raw(danger) });
      return `${at.path}/${entry.key}+${variant}`;
    },
  ],
  [
    'lower-case-hostconfig-fields',
    (tree, rng) => {
      // The bypass of the first proxy: exact-case fields as required, plus lower-case dangerous ones.
      const host = hostOf(tree);
      const [key, value] = rng.pick(DANGEROUS_HOST);
      const lower = key.toLowerCase();
      insertAt(rng, host, { key: lower, value: raw(value) });
      return lower;
    },
  ],
  [
    'duplicate-key',
    (tree, rng) => {
      const { at, entry } = anyEntry(rng, tree);
      const dangers = at.path === '/HostConfig' ? DANGEROUS_HOST.filter(([k]) => k === entry.key) : [];
      const danger = dangers.length > 0 && rng.chance(0.5) ? raw(rng.pick(dangers)[1]) : clone(entry.value);
      insertAt(rng, at.node, { key: entry.key, value: danger });
      return `${at.path}/${entry.key}`;
    },
  ],
  [
    'escaped-key',
    (tree, rng) => {
      const { at, entry } = anyEntry(rng, tree, (_, e) => e.key.length > 0);
      entry.keyText = escapeSomeOf(rng, entry.key);
      return `${at.path}/${entry.keyText}`;
    },
  ],
  [
    'escaped-new-key',
    (tree, rng) => {
      const [key, value] = rng.pick(DANGEROUS_HOST);
      insertAt(rng, hostOf(tree), { key, keyText: escapeSomeOf(rng, key), value: raw(value) });
      return key;
    },
  ],
  [
    'unicode-fold-key',
    (tree, rng) => {
      // Go folds U+017F to s and U+212A to k.
      const { at, entry } = anyEntry(rng, tree, (_, e) => /[sSkK]/.test(e.key));
      const folded = entry.key.replace(/[sSkK]/, (c) => (c.toLowerCase() === 's' ? '\u017f' : '\u212a'));
      if (rng.chance(0.5)) entry.key = folded;
      else insertAt(rng, at.node, { key: folded, value: clone(entry.value) });
      return `${at.path}/${folded}`;
    },
  ],
  [
    'uid-edge',
    (tree, rng) => {
      const user = rng.pick(BAD_USERS);
      if (tree.t === 'obj') setMember(tree, 'User', raw(user));
      return JSON.stringify(user);
    },
  ],
  [
    'type-change',
    (tree, rng) => {
      const slot = rng.pick(slotsOf(tree));
      slot.set(typeChanged(rng, slot.get()));
      return slot.path;
    },
  ],
  [
    'array-for-object',
    (tree, rng) => {
      const slots = slotsOf(tree).filter((s) => s.get().t === 'obj');
      if (slots.length === 0 && tree.t === 'obj') {
        tree.entries.push({ key: 'Foo', value: raw([{}]) });
        return 'Foo';
      }
      const slot = rng.pick(slots);
      slot.set({ t: 'arr', items: [slot.get()] });
      return slot.path;
    },
  ],
  [
    'nesting',
    (tree, rng) => {
      const host = hostOf(tree);
      const choice = rng.int(0, 3);
      if (choice === 0) insertAt(rng, host, { key: 'HostConfig', value: raw({ Privileged: true, Binds: ['/:/host'] }) });
      if (choice === 1 && tree.t === 'obj') insertAt(rng, tree, { key: 'Config', value: clone(tree) });
      if (choice === 2) {
        const labels = member(tree, 'Labels');
        if (labels?.t === 'obj') insertAt(rng, labels, { key: 'nested', value: raw({ HostConfig: { Privileged: true } }) });
      }
      if (choice === 3) {
        const ulimits = member(host, 'Ulimits');
        if (ulimits?.t === 'arr') ulimits.items.push({ t: 'arr', items: [raw({ Name: 'nproc', Soft: 1, Hard: 1 })] });
      }
      return String(choice);
    },
  ],
  [
    'unknown-key',
    (tree, rng) => {
      // Not in Labels: any other label is a label.
      const at = rng.pick(objectsOf(tree).filter((o) => o.path !== '/Labels'));
      const key = rng.pick(UNKNOWN_KEYS);
      insertAt(rng, at.node, { key, value: raw(rng.pick([1, 'x', true, null, [], {}])) });
      return `${at.path}/${key}`;
    },
  ],
  [
    'dangerous-host',
    (tree, rng) => {
      const [key, value] = rng.pick(DANGEROUS_HOST);
      setMember(hostOf(tree), key, raw(value));
      return key;
    },
  ],
  [
    'dangerous-top',
    (tree, rng) => {
      const [key, value] = rng.pick(DANGEROUS_TOP);
      if (tree.t === 'obj') setMember(tree, key, raw(value));
      return key;
    },
  ],
  [
    'out-of-bounds',
    (tree, rng, ctx, p) => {
      const host = hostOf(tree);
      const gid = p.gid ?? p.uid;
      const cases: Array<[string, () => void]> = [
        ['memory', () => (setMember(host, 'Memory', raw(ctx.bounds.memory + 1)), setMember(host, 'MemorySwap', raw(ctx.bounds.memory + 1)))],
        ['memory-huge', () => (setMember(host, 'Memory', raw(2 ** 53)), setMember(host, 'MemorySwap', raw(2 ** 53)))],
        ['memory-tiny', () => (setMember(host, 'Memory', raw(MIB)), setMember(host, 'MemorySwap', raw(MIB)))],
        ['memory-0', () => (setMember(host, 'Memory', raw(0)), setMember(host, 'MemorySwap', raw(0)))],
        ['swap', () => setMember(host, 'MemorySwap', raw(p.memory + 1))],
        ['swap-unlimited', () => setMember(host, 'MemorySwap', raw(-1))],
        ['swap-0', () => setMember(host, 'MemorySwap', raw(0))],
        ['pids', () => setMember(host, 'PidsLimit', raw(ctx.bounds.pids + 1))],
        ['pids-0', () => setMember(host, 'PidsLimit', raw(0))],
        ['pids-unlimited', () => setMember(host, 'PidsLimit', raw(-1))],
        ['cpus', () => setMember(host, 'NanoCpus', raw(ctx.bounds.nanoCpus + 1))],
        ['cpus-0', () => setMember(host, 'NanoCpus', raw(0))],
        ['shm', () => setMember(host, 'ShmSize', raw(ctx.bounds.shm + 1))],
        ['shm-0', () => setMember(host, 'ShmSize', raw(0))],
        ['workspace', () => setMember(host, 'Tmpfs', raw({ '/workspace': tmpfsText('0700', ctx.bounds.workspace + 1, p.uid, gid), '/tmp': tmpfsText('1777', p.tmp, p.uid, gid) }))],
        ['tmp', () => setMember(host, 'Tmpfs', raw({ '/workspace': tmpfsText('0700', p.workspace, p.uid, gid), '/tmp': tmpfsText('1777', ctx.bounds.tmp + 1, p.uid, gid) }))],
        ['tmpfs-owner', () => setMember(host, 'Tmpfs', raw({ '/workspace': tmpfsText('0700', p.workspace, 0, 0), '/tmp': tmpfsText('1777', p.tmp, p.uid, gid) }))],
        ['tmpfs-mode', () => setMember(host, 'Tmpfs', raw({ '/workspace': tmpfsText('0777', p.workspace, p.uid, gid), '/tmp': tmpfsText('1777', p.tmp, p.uid, gid) }))],
        ['nofile', () => setMember(host, 'Ulimits', raw([{ Name: 'nofile', Soft: ctx.bounds.nofile + 1, Hard: ctx.bounds.nofile + 1 }]))],
        ['nofile-soft', () => setMember(host, 'Ulimits', raw([{ Name: 'nofile', Soft: p.nofileHard + 1, Hard: p.nofileHard }]))],
        ['nofile-0', () => setMember(host, 'Ulimits', raw([{ Name: 'nofile', Soft: 0, Hard: 0 }]))],
      ];
      const [name, apply] = rng.pick(cases);
      apply();
      return name;
    },
  ],
  [
    'missing-field',
    (tree, rng) => {
      const host = hostOf(tree);
      const choice = rng.int(0, 3);
      if (choice === 0 && tree.t === 'obj') {
        const key = rng.pick(['Image', 'User', 'Labels', 'WorkingDir', 'NetworkDisabled', 'HostConfig']);
        removeMember(tree, key);
        return key;
      }
      if (choice === 1) {
        const key = rng.pick(REQUIRED_HOST);
        removeMember(host, key);
        return `HostConfig/${key}`;
      }
      if (choice === 2) {
        const tmpfs = member(host, 'Tmpfs');
        if (tmpfs?.t === 'obj') removeMember(tmpfs, rng.pick(['/workspace', '/tmp']));
        return 'Tmpfs path';
      }
      const labels = member(tree, 'Labels');
      if (labels?.t === 'obj') removeMember(labels, 'sandpool.app');
      return 'sandpool.app label';
    },
  ],
  [
    'other-image',
    (tree, rng, ctx) => {
      const image = rng.pick([...ctx.otherImages, 'busybox:latest', 'sandpool-no-such-image:1', '', 'UPPER/case', '../x', 'a b', 'sandpool-sandbox:latest?x=1', `sha256:${'0'.repeat(64)}`]);
      if (tree.t === 'obj') setMember(tree, 'Image', raw(image));
      return image;
    },
  ],
  [
    'bad-label',
    (tree, rng) => {
      const labels = member(tree, 'Labels');
      if (labels?.t !== 'obj') return 'none';
      const choice = rng.int(0, 5);
      if (choice === 0) for (let i = 0; i < 33; i++) labels.entries.push({ key: `many.${i}`, value: raw('x') });
      if (choice === 1) labels.entries.push({ key: rng.pick(['_x', '-x', '.x', 'a b', 'é', 'a\u0000', 'x'.repeat(129)]), value: raw('x') });
      if (choice === 2) labels.entries.push({ key: 'fuzz.v', value: raw(rng.pick(['é', 'a\nb', '\u0000', 'x'.repeat(257), '\u2028'])) });
      if (choice === 3) setMember(labels, 'sandpool.app', raw(rng.pick(['Sandpool', 'sandpool ', '', 'other'])));
      if (choice === 4) labels.entries.push({ key: 'fuzz.n', value: raw(rng.pick([1, true, null, ['x'], { a: 'b' }])) });
      if (choice === 5) labels.entries.push({ key: '__proto__', value: raw('x') });
      return String(choice);
    },
  ],
];

/** Text-level breakage: no longer RFC 8259 JSON, or not one JSON value. */
const SYNTAX: ReadonlyArray<[string, (text: string, rng: Rng) => string]> = [
  ['trailing-comma', (t) => t.replace(/\}$/, ',}')],
  ['comment', (t) => t.replace(/^\{/, '{/* x */')],
  ['bom', (t) => `\ufeff${t}`],
  ['single-quotes', (t) => t.replace('"Image"', "'Image'")],
  ['truncated', (t, rng) => t.slice(0, rng.int(1, t.length - 1))],
  ['two-values', (t) => `${t}${t}`],
  ['nan', (t) => t.replace(/"PidsLimit"\s*:\s*\d+/, '"PidsLimit":NaN')],
  ['leading-zero', (t) => t.replace(/"PidsLimit"\s*:\s*(\d+)/, '"PidsLimit":0$1')],
  ['unquoted-key', (t) => t.replace('"User"', 'User')],
  ['control-char', (t) => t.replace('"sandpool"', '"sand\tpool"')],
  ['nul', (t) => `${t}\u0000`],
  ['form-feed-space', (t) => t.replace('{', '{\f')],
];

function randomStyle(rng: Rng): Style {
  return rng.pick<Style>([
    { colon: ':', comma: ',', indent: undefined, newline: '' },
    { colon: ': ', comma: ', ', indent: undefined, newline: '' },
    { colon: ':', comma: ',', indent: '  ', newline: '\n' },
    { colon: ' : ', comma: ' ,', indent: '\t', newline: '\r\n' },
  ]);
}

function shuffleKeys(rng: Rng, tree: Raw): void {
  for (const at of objectsOf(tree)) if (rng.chance(0.5)) rng.shuffle(at.node.entries);
}

/**
 * `count` create bodies from `seed`. At most `maxAccepted` of them are
 * benign (must be accepted: each becomes a container); every other one
 * carries at least one change the proxy must refuse.
 */
export function* fuzzCases(seed: number, count: number, ctx: FuzzContext, maxAccepted: number): Generator<FuzzCase> {
  const rng = new Rng(prng(seed));
  let benign = 0;
  for (let index = 0; index < count; index++) {
    const mutations: string[] = [];
    const p = baseParams(ctx);
    for (let n = rng.int(0, 3); n > 0; n--) {
      const [name, mutate] = rng.pick(BENIGN_PARAMS);
      mutate(p, rng, ctx);
      mutations.push(`~${name}`);
    }
    const tree = raw(bodyOf(p));
    const accept = benign < maxAccepted && rng.chance(0.2);
    let syntax: [string, (text: string, rng: Rng) => string] | undefined;
    if (!accept) {
      for (let n = rng.int(1, 3); n > 0; n--) {
        if (rng.chance(0.08)) {
          syntax = rng.pick(SYNTAX);
          mutations.push(`!syntax:${syntax[0]}`);
          continue;
        }
        const [name, mutate] = rng.pick(REFUSED);
        mutations.push(`!${name}:${mutate(tree, rng, ctx, p)}`);
      }
    }
    if (rng.chance(0.5)) {
      shuffleKeys(rng, tree);
      mutations.push('~key-order');
    }
    let query = '';
    if (rng.chance(0.3)) {
      const name = `${ctx.namePrefix}-${seed}-${index}`;
      query = new URLSearchParams({ name }).toString();
      if (tree.t === 'obj' && rng.chance(0.5)) {
        // dockerode repeats the name in the body; a different one there must be refused.
        const mismatch = !accept && rng.chance(0.3);
        insertAt(rng, tree, { key: 'name', value: raw(mismatch ? `${name}-other` : name) });
        mutations.push(mismatch ? '!name-mismatch' : '~name-in-body');
      } else {
        mutations.push('~name');
      }
    }
    let text = emit(tree, randomStyle(rng));
    if (syntax) text = syntax[1](text, rng);
    if (accept) benign++;
    yield { index, text, query, mutations, expectAccepted: accept };
  }
}

/** Every kind of refused change, to check each was tried. */
export const REFUSED_KINDS: readonly string[] = [...REFUSED.map(([name]) => name), 'syntax'];
