import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthenticator, type AuthSettings } from '../../src/auth/authenticator.js';
import { createOriginPolicy } from '../../src/auth/origins.js';
import { SandpoolError } from '../../src/errors.js';
import { createPlanCatalog } from '../../src/plans/plans.js';
import { TEST_SECRET, makeToken, unsignedToken } from '../support/tokens.js';

const settings = (over: Partial<AuthSettings> = {}): AuthSettings => ({ secret: TEST_SECRET, issuer: undefined, audience: undefined, clockToleranceMs: 5_000, ...over });

async function refused(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof SandpoolError);
    assert.equal(err.code, 'UNAUTHORIZED');
    return err.message;
  }
  assert.fail('the token was accepted');
}

describe('token rules (AUTH_SECRET set)', () => {
  it('accepts an HS256 token with sub and exp; the user is its sub and it lasts until exp', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const identity = await createAuthenticator(settings())({ token: await makeToken({ sub: 'alice', exp }) });
    assert.deepEqual(identity, { userId: 'alice', expiresAtMs: exp * 1000, scopes: [], plan: 'free' });
  });

  it('reads the token\'s space-separated scope (the operators\' sandpool:admin)', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const identity = await createAuthenticator(settings())({ token: await makeToken({ sub: 'ops', exp, scope: 'read sandpool:admin' }) });
    assert.deepEqual(identity.scopes, ['read', 'sandpool:admin']);
  });

  it('refuses a token without exp or without sub', async () => {
    const auth = createAuthenticator(settings());
    assert.match(await refused(auth({ token: await makeToken({ exp: undefined }) })), /no "exp" claim/);
    assert.match(await refused(auth({ token: await makeToken({ sub: undefined }) })), /no "sub" claim/);
  });

  it('refuses an expired token, beyond the clock tolerance only', async () => {
    const auth = createAuthenticator(settings({ clockToleranceMs: 5_000 }));
    const nowS = Math.floor(Date.now() / 1000);
    assert.match(await refused(auth({ token: await makeToken({ exp: nowS - 30 }) })), /expired/);
    assert.equal((await auth({ token: await makeToken({ exp: nowS - 2 }) })).userId, 'alice', 'within the tolerance');
  });

  it('checks iss and aud when AUTH_ISSUER / AUTH_AUDIENCE are set, and only then', async () => {
    const strict = createAuthenticator(settings({ issuer: 'https://id.example', audience: 'sandpool' }));
    assert.equal((await strict({ token: await makeToken({ iss: 'https://id.example', aud: 'sandpool' }) })).userId, 'alice');
    assert.match(await refused(strict({ token: await makeToken({ iss: 'https://evil.example', aud: 'sandpool' }) })), /"iss"/);
    assert.match(await refused(strict({ token: await makeToken({ iss: 'https://id.example', aud: 'other-app' }) })), /"aud"/);
    assert.match(await refused(strict({ token: await makeToken({}) })), /"iss"/);
    const lax = createAuthenticator(settings());
    assert.equal((await lax({ token: await makeToken({ iss: 'anyone', aud: 'anything' }) })).userId, 'alice');
  });

  it('pins HS256: HS512 with the same secret, an unsigned token and a wrong signature are refused', async () => {
    const auth = createAuthenticator(settings());
    assert.match(await refused(auth({ token: await makeToken({}, { alg: 'HS512' }) })), /HS256/);
    assert.match(await refused(auth({ token: unsignedToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 }) })), /HS256|not a valid/);
    assert.match(await refused(auth({ token: await makeToken({}, { secret: 'another-secret-of-at-least-32-bytes' }) })), /signature/);
  });

  it('refuses a missing token, a bare userId, and a sub that is not a usable user id', async () => {
    const auth = createAuthenticator(settings());
    assert.match(await refused(auth({})), /token \(JWT\) is required/);
    assert.match(await refused(auth({ userId: 'alice' })), /token \(JWT\) is required/);
    assert.match(await refused(auth({ token: await makeToken({ sub: 'has spaces/and slashes' }) })), /usable user id/);
  });

  it('never echoes the token in its answer', async () => {
    const token = await makeToken({ exp: undefined });
    assert.equal((await refused(createAuthenticator(settings())({ token }))).includes(token), false);
  });
});

describe('the plan claim', () => {
  const plans = createPlanCatalog({ plans: { gold: { callsPerHour: 5, callsPerDay: null, callsPerMonth: null }, tin: { callsPerHour: 1, callsPerDay: 1, callsPerMonth: 1 } }, defaultPlan: 'tin', maxInFlight: 5, workspaceMaxBytes: 4096 });

  it('names the user\'s plan; a token without one gets DEFAULT_PLAN', async () => {
    const auth = createAuthenticator(settings(), plans);
    assert.equal((await auth({ token: await makeToken({ plan: 'gold' }) })).plan, 'gold');
    assert.equal((await auth({ token: await makeToken({}) })).plan, 'tin');
  });

  it('refuses a token naming a plan this server does not have (UNAUTHORIZED, listing the plans), or a plan that is not a string', async () => {
    const auth = createAuthenticator(settings(), plans);
    assert.match(await refused(auth({ token: await makeToken({ plan: 'platinum' }) })), /"plan" claim "platinum" is not a plan of this server \(gold, tin\)/);
    assert.match(await refused(auth({ token: await makeToken({ plan: 7 }) })), /"plan" claim 7 is not a plan/);
  });

  it('lets the development identity name its plan, checked the same way', async () => {
    const auth = createAuthenticator(settings({ secret: undefined }), plans);
    assert.equal((await auth({ userId: 'dev', plan: 'gold' })).plan, 'gold');
    assert.equal((await auth({ userId: 'dev' })).plan, 'tin');
    assert.match(await refused(auth({ userId: 'dev', plan: 'nope' })), /plan "nope" is not a plan of this server/);
  });

  it('knows the built-in plans when given none', async () => {
    const auth = createAuthenticator(settings());
    assert.equal((await auth({ token: await makeToken({ plan: 'enterprise' }) })).plan, 'enterprise');
    assert.match(await refused(auth({ token: await makeToken({ plan: 'gold' }) })), /free, basic, premium, enterprise/);
  });
});

describe('development identity (no AUTH_SECRET)', () => {
  it('takes a well-formed userId as is, with no expiry, and refuses anything else', async () => {
    const auth = createAuthenticator(settings({ secret: undefined }));
    assert.deepEqual(await auth({ userId: 'bob@example' }), { userId: 'bob@example', expiresAtMs: undefined, scopes: [], plan: 'free' });
    assert.match(await refused(auth({})), /userId is required/);
    assert.match(await refused(auth({ userId: '../etc' })), /userId is required/);
  });
});

describe('origin policy', () => {
  const h = (host: string, extra: Record<string, string> = {}) => ({ host, ...extra });
  it('allows no Origin, the server\'s own (as nginx forwards Host and scheme), and ALLOWED_ORIGINS only', () => {
    const policy = createOriginPolicy(['https://app.example']);
    assert.equal(policy.allows(undefined, h('sandpool.local:3000'), false), true, 'non-browser client');
    assert.equal(policy.allows('http://sandpool.local:3000', h('sandpool.local:3000'), false), true);
    assert.equal(policy.allows('https://sandpool.example', h('sandpool.example', { 'x-forwarded-proto': 'https' }), false), true);
    assert.equal(policy.allows('https://app.example', h('sandpool.local:3000'), false), true);
    assert.equal(policy.allows('https://evil.example', h('sandpool.local:3000'), false), false);
    assert.equal(policy.allows('http://sandpool.local', h('sandpool.local:3000'), false), false, 'another port is another origin');
    assert.equal(policy.allows('https://sandpool.local:3000', h('sandpool.local:3000'), false), false, 'another scheme is another origin');
  });
});
