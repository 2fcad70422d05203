import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createSpecMaker } from '../../src/pool/sandbox-spec.js';
import { sandboxCreateOptions } from '../../src/runtime/docker-runtime.js';
import { checkSandboxCreate, parseId, parseUser, serializeSandboxCreate, type CreateLimits } from '../../src/socket-proxy/create-schema.js';
import { redactInspect, routeOf, sandboxFilters, upstreamPath, upstreamQuery } from '../../src/socket-proxy/policy.js';
import { PROXY_VARIABLES, createLimitsOf, loadProxySettings } from '../../src/socket-proxy/proxy-config.js';
import { PolicyRefusal } from '../../src/socket-proxy/refusal.js';
import { StrictJsonError, parseStrictJson } from '../../src/socket-proxy/strict-json.js';
import { testConfig } from '../support/helpers.js';

const LIMITS: CreateLimits = createLimitsOf(loadProxySettings({}));
const MIB = 1024 * 1024;

/** The body the app sends (docker-runtime.ts), as dockerode writes it. */
const appBodies = new Map<string, string>();
function appBodyText(overrides: Record<string, string> = {}): string {
  const key = JSON.stringify(overrides);
  const known = appBodies.get(key);
  if (known !== undefined) return known;
  const cfg = testConfig(overrides);
  const spec = createSpecMaker({ pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, poolName: 'unit' })();
  const text = JSON.stringify(sandboxCreateOptions(spec));
  appBodies.set(key, text);
  return text;
}

function appBody(): Record<string, unknown> & { HostConfig: Record<string, unknown>; Labels: Record<string, string> } {
  return JSON.parse(appBodyText()) as Record<string, unknown> & { HostConfig: Record<string, unknown>; Labels: Record<string, string> };
}

/** Parses and checks a body text; the refusal's message, or undefined when accepted. */
function verdictOf(text: string, limits: CreateLimits = LIMITS): string | undefined {
  try {
    checkSandboxCreate(parseStrictJson(text), limits);
    return undefined;
  } catch (err) {
    if (err instanceof PolicyRefusal || err instanceof StrictJsonError) return err.message;
    throw err;
  }
}

function refused(text: string, why: RegExp, limits?: CreateLimits): void {
  const verdict = verdictOf(text, limits);
  assert.ok(verdict !== undefined, `accepted: ${text}`);
  assert.match(verdict, why, text);
}

/** The app's body with HostConfig fields changed (undefined removes one). */
function withHost(change: Record<string, unknown>): string {
  const body = appBody();
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) delete body.HostConfig[k];
    else body.HostConfig[k] = v;
  }
  return JSON.stringify(body);
}

function withTop(change: Record<string, unknown>): string {
  const body: Record<string, unknown> = appBody();
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) delete body[k];
    else body[k] = v;
  }
  return JSON.stringify(body);
}

describe('socket proxy: strict JSON reading', () => {
  it('keeps every key of every object, in order', () => {
    const node = parseStrictJson('{"a":1,"b":[true,null,"x"],"c":{"d":-2.5e3}}');
    assert.equal(node.kind, 'object');
    assert.deepEqual(node.kind === 'object' ? node.entries.map((e) => e.key) : [], ['a', 'b', 'c']);
  });

  it('refuses a key written twice, at any depth (JSON.parse would keep the last)', () => {
    assert.throws(() => parseStrictJson('{"User":"65532","User":"0"}'), /"User" is written twice/);
    assert.throws(() => parseStrictJson('{"HostConfig":{"Memory":1,"Memory":2}}'), /HostConfig\.Memory: the key "Memory" is written twice/);
    assert.throws(() => parseStrictJson('{"a":[{"x":1,"x":1}]}'), /a\[0\]\.x/);
  });

  it('refuses keys equal when case is ignored (the engine matches fields ignoring case, the last one wins)', () => {
    assert.throws(() => parseStrictJson('{"HostConfig":{"Privileged":false,"privileged":true}}'), /differ only in case/);
    assert.throws(() => parseStrictJson('{"Binds":[],"BINDS":["/:/host"]}'), /differ only in case/);
    // Go folds Unicode look-alikes too: U+017F is "s", U+212A is "k".
    assert.throws(() => parseStrictJson('{"SecurityOpt":[],"\u017fecurityOpt":["seccomp=unconfined"]}'), /differ only in case/);
    assert.throws(() => parseStrictJson('{"k":1,"\u212a":2}'), /differ only in case/);
  });

  it('refuses keys written with escapes (\\u0050rivileged is Privileged to the engine)', () => {
    assert.throws(() => parseStrictJson('{"\\u0050rivileged":true}'), /written with an escape/);
    assert.throws(() => parseStrictJson('{"Labels":{"a\\/b":"x"}}'), /written with an escape/);
    // In values, escapes are ordinary JSON.
    const node = parseStrictJson('{"a":"\\u0041\\n"}');
    assert.deepEqual(node.kind === 'object' ? node.entries[0]?.value : undefined, { kind: 'string', value: 'A\n' });
  });

  it('refuses what is not RFC 8259 JSON', () => {
    for (const text of ['', '{', '{"a":1,}', '[1,]', '{a:1}', "{'a':1}", '{"a":01}', '{"a":NaN}', '{"a":1} x', '\ufeff{}', '{"a":1}/*c*/', '{"a":"\u0001"}', '{"a":+1}', '{"a":.5}', '{"a":"\\x41"}', '{"a":tru}']) {
      assert.throws(() => parseStrictJson(text), StrictJsonError, JSON.stringify(text));
    }
  });

  it('refuses nesting deeper than its bound', () => {
    assert.throws(() => parseStrictJson(`${'['.repeat(17)}${']'.repeat(17)}`), /nested deeper than 16/);
    assert.doesNotThrow(() => parseStrictJson(`${'['.repeat(16)}${']'.repeat(16)}`));
  });

  it('marks numbers written as whole numbers', () => {
    const values = ['1', '1.0', '1e3', '-0'].map((t) => parseStrictJson(t));
    assert.deepEqual(values.map((v) => (v.kind === 'number' ? v.integer : undefined)), [true, false, false, true]);
  });
});

describe('socket proxy: uid and gid', () => {
  it('accepts canonical non-zero decimal ids only, parsed as integers', () => {
    assert.equal(parseId('1'), 1);
    assert.equal(parseId('65532'), 65532);
    assert.equal(parseId('2147483647'), 2147483647);
    for (const text of ['0', '00', '000', '+0', ' 0', '0 ', '0x0', '-1', '1e3', '065532', '2147483648', '4294967295', '99999999999', '', '1.0', '１', 'root', '0b1']) {
      assert.equal(parseId(text), undefined, JSON.stringify(text));
    }
  });

  it('reads uid or uid:gid, a lone uid being its own gid; root and group 0 refused', () => {
    assert.deepEqual(parseUser('65532'), { uid: 65532, gid: 65532 });
    assert.deepEqual(parseUser('1000:2000'), { uid: 1000, gid: 2000 });
    for (const text of ['0:0', '0', '65532:0', '0:65532', '65532:', ':65532', '65532:65532:1', 'root', 'nobody', '65532:00']) {
      assert.equal(parseUser(text), undefined, text);
    }
  });
});

describe('socket proxy: the container-create schema', () => {
  it('accepts exactly what the app sends (docker-runtime.ts sandboxCreateOptions)', () => {
    assert.equal(verdictOf(appBodyText()), undefined);
    // And with other limits within the bounds, and a lone uid.
    assert.equal(verdictOf(appBodyText({ SANDBOX_MEMORY_MB: '128', SANDBOX_CPUS: '0.5', SANDBOX_PIDS_LIMIT: '32', SANDBOX_USER: '4242' })), undefined);
  });

  it('refuses the case-folding bypass: exact-case hardened fields plus lower-case privileged and binds', () => {
    const text = appBodyText().replace('"HostConfig":{', '"HostConfig":{"privileged":true,"binds":["/:/host"],');
    refused(text, /HostConfig\.privileged is not a field the proxy accepts/);
    // With an exact-case twin, the two are ambiguous before they are unknown.
    refused(appBodyText().replace('"HostConfig":{', '"HostConfig":{"Privileged":false,"privileged":true,'), /"Privileged" and "privileged" differ only in case/);
    // Alone (no exact-case twin) they are unknown fields all the same.
    refused(withHost({ privileged: true }), /HostConfig\.privileged is not a field the proxy accepts/);
  });

  it('refuses root and look-alikes of root', () => {
    for (const user of ['0', '00', '0:0', '+0', ' 0', '0x0', '-1', 'root', '65532:0', '99999999999']) {
      const body = appBody();
      body.User = user;
      refused(JSON.stringify(body), /User must be uid or uid:gid/);
    }
  });

  it('refuses everything that reaches beyond the sandbox', () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['privileged', { Privileged: true }, /Privileged is not a field/],
      ['privileged false', { Privileged: false }, /Privileged is not a field/],
      ['host mount', { Binds: ['/:/host'] }, /Binds is not a field/],
      ['mounts', { Mounts: [{ Type: 'bind', Source: '/', Target: '/host' }] }, /Mounts is not a field/],
      ['devices', { Devices: [{ PathOnHost: '/dev/sda' }] }, /Devices is not a field/],
      ['host network', { NetworkMode: 'host' }, /NetworkMode must be exactly "none"/],
      ['host pid', { PidMode: 'host' }, /PidMode is not a field/],
      ['capabilities', { CapAdd: ['SYS_ADMIN'] }, /CapAdd is not a field/],
      ['keeps capabilities', { CapDrop: ['NET_RAW'] }, /CapDrop must be exactly \["ALL"\]/],
      ['seccomp unconfined', { SecurityOpt: ['no-new-privileges', 'seccomp=unconfined'] }, /SecurityOpt must be exactly/],
      ['custom seccomp', { SecurityOpt: ['no-new-privileges', 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'] }, /SecurityOpt must be exactly/],
      ['apparmor', { SecurityOpt: ['no-new-privileges', 'apparmor=unconfined'] }, /SecurityOpt must be exactly/],
      ['no no-new-privileges', { SecurityOpt: [] }, /SecurityOpt must be exactly/],
      ['unmasked /proc', { MaskedPaths: [] }, /MaskedPaths is not a field/],
      ['writable /proc/sys', { ReadonlyPaths: [] }, /ReadonlyPaths is not a field/],
      ['writable root', { ReadonlyRootfs: false }, /ReadonlyRootfs must be exactly true/],
      ['sysctls', { Sysctls: { 'net.ipv4.ip_forward': '1' } }, /Sysctls is not a field/],
      ['runtime', { Runtime: 'runc' }, /Runtime is not a field/],
      ['oom kill', { OomKillDisable: true }, /OomKillDisable is not a field/],
      ['cgroup parent', { CgroupParent: '/' }, /CgroupParent is not a field/],
      ['log driver', { LogConfig: { Type: 'json-file', Config: {} } }, /LogConfig must be exactly/],
      ['auto remove', { AutoRemove: true }, /AutoRemove must be exactly false/],
      ['ports', { PortBindings: { '80/tcp': [{ HostPort: '80' }] } }, /PortBindings is not a field/],
      ['huge memory', { Memory: 64 * 1024 * MIB, MemorySwap: 64 * 1024 * MIB }, /Memory must be between/],
      ['swap', { MemorySwap: -1 }, /MemorySwap must equal/],
      ['no memory', { Memory: undefined }, /HostConfig\.Memory is required/],
      ['no pids limit', { PidsLimit: undefined }, /HostConfig\.PidsLimit is required/],
      ['unlimited pids', { PidsLimit: -1 }, /PidsLimit must be between 1/],
      ['too many cpus', { NanoCpus: 4_000_000_000 }, /NanoCpus must be between/],
      ['default shm', { ShmSize: 0 }, /ShmSize must be between 1/],
      ['nproc ulimit', { Ulimits: [{ Name: 'nofile', Soft: 64, Hard: 64 }, { Name: 'nproc', Soft: 1, Hard: 1 }] }, /exactly one limit/],
      ['huge nofile', { Ulimits: [{ Name: 'nofile', Soft: 1_048_576, Hard: 1_048_576 }] }, /Hard must be between/],
      ['float memory', { Memory: 268435456.5 }, /Memory must be a whole number/],
      ['string memory', { Memory: '268435456' }, /Memory must be a whole number \(got a string\)/],
      ['null memory', { Memory: null }, /Memory must be a whole number \(got null\)/],
    ];
    for (const [name, change, why] of cases) refused(withHost(change), why, LIMITS);
    refused(appBodyText().replace('"Memory":268435456', '"Memory":2.68435456e8'), /Memory must be a whole number/);
    // Found by the fuzz suite: MemorySwap equal in value but not written as a whole number.
    refused(appBodyText().replace('"MemorySwap":268435456', '"MemorySwap":268435456e0'), /MemorySwap must be a whole number/);
  });

  it('takes tmpfs options only in their fixed form, with a bounded size and the user as owner', () => {
    const tmpfs = (appBody().HostConfig.Tmpfs ?? {}) as Record<string, string>;
    const ws = tmpfs['/workspace'] ?? '';
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': ws.replace('noexec,', '') } }), /Tmpfs\["\/workspace"\] must be exactly/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': ws.replace('noexec', 'exec') } }), /must be exactly/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': `${ws},exec` } }), /must be exactly/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': ws.replace(/size=\d+/, 'size=64m') } }), /one size, in bytes/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': ws.replace(/size=\d+/, `size=${1024 * MIB}`) } }), /size must be at most/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/workspace': ws.replace('uid=65532', 'uid=0') } }), /must be exactly/);
    refused(withHost({ Tmpfs: { ...tmpfs, '/etc': 'rw' } }), /Tmpfs\["\/etc"\] is not a field/);
    refused(withHost({ Tmpfs: { '/workspace': ws } }), /Tmpfs\["\/tmp"\] is required/);
    refused(withHost({ Tmpfs: [ws] }), /Tmpfs must be an object \(got an array\)/);
    // The owner follows User: another uid needs its own tmpfs owner.
    const body = appBody();
    body.User = '4242';
    refused(JSON.stringify(body), /must be exactly/);
  });

  it('refuses a command, an unknown field, a missing label, a wrong shape', () => {
    refused(withTop({ Entrypoint: ['/bin/sh'] }), /^Entrypoint is not a field the proxy accepts/);
    refused(withTop({ Cmd: ['-c', 'id'] }), /^Cmd is not a field/);
    refused(withTop({ Env: ['A=B'] }), /^Env is not a field/);
    refused(withTop({ Volumes: { '/data': {} } }), /^Volumes is not a field/);
    // Docker reads HostConfig fields at the top level too when HostConfig is missing.
    refused(withTop({ Privileged: true }), /^Privileged is not a field/);
    refused(withTop({ HostConfig: undefined, Privileged: true }), /^Privileged is not a field/);
    refused(withTop({ Labels: { 'sandpool.replica': 'x' } }), /must include sandpool\.app=sandpool/);
    refused(withTop({ Labels: { 'sandpool.app': 'sandpool', n: 1 } }), /Labels\.n must be a string/);
    refused(withTop({ Labels: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`l${i}`, 'sandpool']).concat([['sandpool.app', 'sandpool']])) }), /at most 32 labels/);
    refused(withTop({ Labels: [['sandpool.app', 'sandpool']] }), /Labels must be an object/);
    refused(withTop({ HostConfig: [appBody().HostConfig] }), /HostConfig must be an object \(got an array\)/);
    refused(withTop({ User: ['65532'] }), /User must be a string/);
    refused(withTop({ NetworkDisabled: false }), /NetworkDisabled must be exactly true/);
    refused(withTop({ WorkingDir: '/' }), /WorkingDir must be exactly "\/workspace"/);
    refused(withTop({ Image: 'sandpool-sandbox:latest/../../x' }), /is not an image name or id/);
    refused(withTop({ Image: 'a b' }), /is not an image name or id/);
    refused(withTop({ Image: undefined }), /Image is required/);
    refused('[]', /the body must be an object/);
  });

  it('serializes only checked values: the fixed settings, the resolved image id, uid:gid', () => {
    const body = appBody();
    body.User = '4242';
    const hc = body.HostConfig;
    const tmpfs = hc.Tmpfs as Record<string, string>;
    hc.Tmpfs = Object.fromEntries(Object.entries(tmpfs).map(([k, v]) => [k, v.replace('uid=65532,gid=65532', 'uid=4242,gid=4242')]));
    const accepted = checkSandboxCreate(parseStrictJson(JSON.stringify(body)), LIMITS);
    const id = `sha256:${'a'.repeat(64)}`;
    const out = JSON.parse(serializeSandboxCreate(accepted, id)) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
    assert.equal(out.Image, id);
    assert.equal(out.User, '4242:4242');
    assert.equal(out.name, undefined, 'the name goes in the query');
    assert.deepEqual(Object.keys(out).sort(), ['AttachStderr', 'AttachStdin', 'AttachStdout', 'HostConfig', 'Image', 'Labels', 'NetworkDisabled', 'OpenStdin', 'StdinOnce', 'Tty', 'User', 'WorkingDir']);
    assert.deepEqual(Object.keys(out.HostConfig).sort(), ['AutoRemove', 'CapDrop', 'LogConfig', 'Memory', 'MemorySwap', 'NanoCpus', 'NetworkMode', 'PidsLimit', 'ReadonlyRootfs', 'SecurityOpt', 'ShmSize', 'Tmpfs', 'Ulimits']);
    assert.deepEqual(out.HostConfig.SecurityOpt, ['no-new-privileges']);
    // What it forwards passes its own check again.
    assert.doesNotThrow(() => checkSandboxCreate(parseStrictJson(serializeSandboxCreate(accepted, id)), LIMITS));
  });

  it('bounds come from the proxy\'s variables', () => {
    const small = createLimitsOf(loadProxySettings({ PROXY_MAX_MEMORY_MB: '128' }));
    refused(appBodyText(), /Memory must be between \d+ and 134217728/, small);
    assert.equal(verdictOf(appBodyText(), createLimitsOf(loadProxySettings({ PROXY_MAX_MEMORY_MB: '512', PROXY_MAX_CPUS: '2' }))), undefined);
  });
});

describe('socket proxy: calls, queries, answers', () => {
  it('knows only the calls sandpool makes, and pause/unpause', () => {
    assert.deepEqual(routeOf('POST', '/v1.41/containers/abc/pause'), { kind: 'sandbox', action: 'pause', id: 'abc' });
    assert.deepEqual(routeOf('POST', '/containers/abc/unpause'), { kind: 'sandbox', action: 'unpause', id: 'abc' });
    assert.deepEqual(routeOf('DELETE', '/containers/abc'), { kind: 'sandbox', action: 'remove', id: 'abc' });
    assert.deepEqual(routeOf('GET', '/v1.40/containers/json'), { kind: 'list' });
    for (const [method, path] of [
      ['GET', '/images/json'],
      ['POST', '/containers/abc/exec'],
      ['POST', '/containers/abc/kill'],
      ['POST', '/containers/abc/update'],
      ['GET', '/containers/abc/archive'],
      ['PUT', '/containers/abc/archive'],
      ['POST', '/build'],
      ['GET', '/info'],
      ['POST', '/containers/../images/create'],
      ['POST', '/containers/%2e%2e/start'],
    ] as const) {
      assert.throws(() => routeOf(method, path), /not a call sandpool makes/, `${method} ${path}`);
    }
  });

  it('calls the engine under one API version, with the path it built', () => {
    const route = routeOf('POST', '/v1.24/containers/abc/start');
    assert.equal(upstreamPath(route, upstreamQuery(route, new URLSearchParams('detachKeys=x')), 'f'.repeat(64)), `/v1.41/containers/${'f'.repeat(64)}/start`);
    const remove = routeOf('DELETE', '/containers/abc');
    assert.equal(upstreamPath(remove, upstreamQuery(remove, new URLSearchParams('force=true&v=1&link=1'))), '/v1.41/containers/abc?force=1&v=1');
  });

  it('adds the sandbox label to list and event filters: a client can narrow them, never widen', () => {
    const list = (q: string): unknown => JSON.parse(new URLSearchParams(upstreamQuery({ kind: 'list' }, new URLSearchParams(q))).get('filters') ?? '');
    assert.deepEqual(list('all=1'), { label: ['sandpool.app=sandpool'] });
    assert.deepEqual(list(`filters=${encodeURIComponent('{"label":["sandpool.replica=r1"],"status":["running"]}')}`), { label: ['sandpool.replica=r1', 'sandpool.app=sandpool'], status: ['running'] });
    assert.deepEqual(list(`filters=${encodeURIComponent('{"label":{"a=b":true}}')}`), { label: ['a=b', 'sandpool.app=sandpool'] });
    assert.throws(() => list(`filters=${encodeURIComponent('{"label":[],"Label":["x"]}')}`), /differ only in case/);
    assert.throws(() => list(`filters=${encodeURIComponent('{"ancestor":["x"]}')}`), /"ancestor" is not allowed/);
    assert.throws(() => list('filters=%7B%7D&filters=%7B%7D'), /given 2 times/);
    const events = JSON.parse(new URLSearchParams(upstreamQuery({ kind: 'events' }, new URLSearchParams('since=1700000000'))).get('filters') ?? '') as unknown;
    assert.deepEqual(events, { type: ['container'], label: ['sandpool.app=sandpool'] });
    assert.throws(() => sandboxFilters('{"type":["image"]}', ['type'], { type: ['container'] }), /filters\.type may only be container/);
  });

  it('shows a sandbox without its environment, a replica container its state only, nothing else', () => {
    const sandbox = { Id: 'a', Config: { Env: ['SECRET=1'], Labels: { 'sandpool.app': 'sandpool' } }, State: { Running: true } };
    assert.deepEqual(redactInspect(sandbox), { Id: 'a', Config: { Labels: { 'sandpool.app': 'sandpool' } }, State: { Running: true } });
    const replica = { Id: 'b', Name: '/app-1', Config: { Env: ['AUTH_SECRET=x'], Labels: { 'sandpool.role': 'replica' } }, State: { Status: 'exited', Running: false, Pid: 0 } };
    assert.deepEqual(redactInspect(replica), { Id: 'b', Name: '/app-1', State: { Status: 'exited', Running: false } });
    assert.equal(redactInspect({ Id: 'c', Config: { Env: ['AWS_SECRET=y'], Labels: {} } }), undefined);
  });

  it('docs/socket-proxy.md lists every variable of the proxy with its default', () => {
    const doc = readFileSync(new URL('../../../docs/socket-proxy.md', import.meta.url), 'utf8');
    for (const variable of PROXY_VARIABLES) {
      assert.ok(doc.includes(`| \`${variable.name}\` | \`${variable.example ?? ''}\` |`), `${variable.name} (default ${variable.example ?? ''}) missing from docs/socket-proxy.md`);
    }
  });

  it('reads POOL_IMAGE as a list and reports every bad variable', () => {
    assert.deepEqual(loadProxySettings({ POOL_IMAGE: 'a:1, b@sha256:' + 'c'.repeat(64) }).images, ['a:1', `b@sha256:${'c'.repeat(64)}`]);
    assert.deepEqual(loadProxySettings({}).images, ['sandpool-sandbox:latest']);
    assert.throws(() => loadProxySettings({ POOL_IMAGE: ' , ', PROXY_MAX_PIDS: '0' }), (err: Error) => /POOL_IMAGE/.test(err.message) && /PROXY_MAX_PIDS/.test(err.message));
  });
});
