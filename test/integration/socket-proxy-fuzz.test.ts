/**
 * Fuzzing the socket proxy against the real engine: seeded mutations of the
 * app's create body (test/support/create-fuzzer.ts) sent as raw bytes
 * through the proxy. Every body the proxy accepts must give a container whose
 * `docker inspect` shows every hardened setting (assertHardened), and the
 * proxy's verdicts must be the fuzzer's: benign changes accepted, every
 * other change refused.
 *
 * Two seeds run: a fixed one and a random one (FUZZ_SEED replaces the random
 * one). Both are printed; replay a failure with FUZZ_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it, type TestContext } from 'node:test';
import { DEFAULT_POOL_IMAGE } from '../../src/config/config.js';
import { createLimitsOf } from '../../src/socket-proxy/proxy-config.js';
import { REFUSED_KINDS, fuzzCases, type FuzzContext } from '../support/create-fuzzer.js';
import { assertHardened, engineGet, hardenedExpectations, type HardenedExpectations } from '../support/hardened.js';
import { execFileAsync } from '../support/helpers.js';
import { rawCall, startSocketProxy, type RunningProxy } from '../support/socket-proxy.js';

const IMAGE = process.env.POOL_IMAGE ?? DEFAULT_POOL_IMAGE;
const FIXED_SEED = 20_251_202;
const RANDOM_SEED = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== '' ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
/** Bodies per seed. */
const BODIES = 500;
/** Benign bodies per seed: each becomes a container (created, never started). */
const MAX_ACCEPTED = 50;
const RUN = `${process.pid}-${Date.now().toString(36)}`;
const MARK = ['sandpool.fuzz', RUN] as const;

/** DELETE ?force on the engine itself (not through the proxy under test). */
function engineRemove(id: string): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ socketPath: '/var/run/docker.sock', method: 'DELETE', path: `/containers/${id}?force=1&v=1` }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', () => resolve());
    req.end();
  });
}

describe('socket proxy fuzz: every create body the proxy accepts is a hardened sandbox', () => {
  let proxy: RunningProxy;
  let expectations: HardenedExpectations;
  let ctx: FuzzContext;
  /** Every container id an accepted create answered with. */
  const created = new Set<string>();
  const otherImage = `sandpool-fuzz-other:${process.pid}`;

  before(async () => {
    console.log(`socket proxy fuzz: seeds ${FIXED_SEED} (fixed) and ${RANDOM_SEED} (random; replay with FUZZ_SEED=${RANDOM_SEED})`);
    proxy = await startSocketProxy({ POOL_IMAGE: IMAGE });
    expectations = await hardenedExpectations(proxy.images, proxy.settings);
    // An image that is on the engine and not allowed: the sandbox image with one more label (another id).
    await execFileAsync('bash', ['-c', `printf 'FROM %s\\n' "$1" | docker build -q --label ${MARK[0]}=${MARK[1]} -t "$2" -`, 'build', IMAGE, otherImage]);
    const otherId = ((await engineGet(`/images/${otherImage}/json`)).body as { Id: string }).Id;
    const id = proxy.images.get(IMAGE) ?? '';
    const limits = createLimitsOf(proxy.settings);
    ctx = {
      bounds: {
        memory: limits.maxMemoryBytes,
        nanoCpus: limits.maxNanoCpus,
        pids: limits.maxPids,
        workspace: limits.maxWorkspaceBytes,
        tmp: limits.maxTmpBytes,
        shm: limits.maxShmBytes,
        nofile: limits.maxNofile,
      },
      allowedImages: [IMAGE, id, id.slice('sha256:'.length), id.slice('sha256:'.length, 'sha256:'.length + 12)],
      otherImages: [otherImage, otherId, otherId.slice('sha256:'.length, 'sha256:'.length + 12)],
      mark: MARK,
      namePrefix: `sandpool-fuzz-${RUN}`,
    };
  });

  after(async () => {
    // Whatever happened: every container this run made, by the ids answered and by its label.
    const { body } = await engineGet(`/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${MARK[0]}=${MARK[1]}`] }))}`);
    for (const c of (body as Array<{ Id: string }> | undefined) ?? []) created.add(c.Id);
    const ids = [...created];
    for (let i = 0; i < ids.length; i += 8) await Promise.all(ids.slice(i, i + 8).map(engineRemove));
    await execFileAsync('docker', ['rmi', otherImage]).catch(() => undefined);
    await proxy?.close();
    const left = await engineGet(`/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${MARK[0]}=${MARK[1]}`] }))}`);
    assert.deepEqual(left.body, [], 'fuzz containers left behind');
  });

  async function runSeed(t: TestContext, seed: number, label: string): Promise<void> {
    t.diagnostic(`seed ${seed} (${label})`);
    const startedAt = Date.now();
    let accepted = 0;
    let refused = 0;
    const tried = new Map<string, number>();
    const statuses = new Map<number, number>();
    for (const c of fuzzCases(seed, BODIES, { ...ctx, namePrefix: `${ctx.namePrefix}-${label}` }, MAX_ACCEPTED)) {
      const where = `seed ${seed} body #${c.index} [${c.mutations.join(' ')}]`;
      for (const m of c.mutations) if (m.startsWith('!')) tried.set(m.slice(1).split(':')[0] ?? '', (tried.get(m.slice(1).split(':')[0] ?? '') ?? 0) + 1);
      const res = await rawCall(proxy.socketPath, 'POST', `/containers/create${c.query === '' ? '' : `?${c.query}`}`, c.text);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 201) {
        accepted++;
        const id = (JSON.parse(res.text) as { Id: string }).Id;
        created.add(id);
        const { body } = await engineGet(`/containers/${id}/json`);
        try {
          assertHardened(body as Record<string, unknown>, expectations);
        } catch (err) {
          throw new Error(`${where}: an accepted body gave a container that is not hardened: ${(err as Error).message}\nbody: ${c.text}`);
        }
        assert.ok(c.expectAccepted, `${where}: accepted, but it carries a change that must be refused\nbody: ${c.text}`);
      } else {
        refused++;
        assert.ok(res.status === 400 || res.status === 403, `${where}: answered ${res.status} (a refusal is 400 or 403): ${res.text}\nbody: ${c.text}`);
        assert.match(res.text, /sandpool socket proxy: /, where);
        assert.ok(!c.expectAccepted, `${where}: refused a benign body: ${res.text}\nbody: ${c.text}`);
      }
    }
    const summary = `seed ${seed} (${label}): ${BODIES} bodies, ${accepted} accepted (containers created and inspected), ${refused} refused; statuses ${JSON.stringify(Object.fromEntries(statuses))}; refused changes tried ${JSON.stringify(Object.fromEntries(tried))}; ${Date.now() - startedAt} ms`;
    t.diagnostic(summary);
    console.log(summary);
    // A generator that accepts nothing (or refuses nothing) proves nothing.
    assert.ok(accepted >= MAX_ACCEPTED / 2, `only ${accepted} bodies accepted`);
    assert.ok(refused >= BODIES / 2, `only ${refused} bodies refused`);
    for (const kind of REFUSED_KINDS) assert.ok((tried.get(kind) ?? 0) >= 3, `the change ${kind} was tried ${tried.get(kind) ?? 0} times`);
  }

  it(`seed ${FIXED_SEED} (fixed): ${BODIES} bodies`, (t) => runSeed(t, FIXED_SEED, 'fixed'));
  it(`seed ${RANDOM_SEED} (random, or FUZZ_SEED): ${BODIES} bodies`, (t) => runSeed(t, RANDOM_SEED, 'random'));
});
