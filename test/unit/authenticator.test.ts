import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthenticator, type AuthSettings } from '../../src/auth/authenticator.js';
import { createHostGuard, hostName } from '../../src/auth/host-guard.js';
import { createOriginPolicy } from '../../src/auth/origins.js';
import { SandpoolError } from '../../src/errors.js';
import { createPlanCatalog } from '../../src/plans/plans.js';
import { TEST_SECRET, makeToken, unsignedToken } from '../support/tokens.js';

const settings = (over: Partial<AuthSettings> = {}): AuthSettings => ({ secret: TEST_SECRET, issuer: undefined, audience: undefined, clockToleranceMs: 5_000, maxLifetimeS: 86_400, ...over });

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

  it('reads the token\'s space-separated scope', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const identity = await createAuthenticator(settings())({ token: await makeToken({ sub: 'ops', exp, scope: 'read write' }) });
    assert.deepEqual(identity.scopes, ['read', 'write']);
  });

  it('requires iat, refuses one in the future, and bounds the lifetime exp - iat (AUTH_MAX_TOKEN_LIFETIME_S)', async () => {
    const auth = createAuthenticator(settings({ maxLifetimeS: 3_600 }));
    const nowS = Math.floor(Date.now() / 1000);
    assert.match(await refused(auth({ token: await makeToken({ iat: undefined }) })), /no "iat" claim/);
    assert.match(await refused(auth({ token: await makeToken({ iat: nowS + 120, exp: nowS + 600 }) })), /issued in the future/);
    assert.match(await refused(auth({ token: await makeToken({ iat: nowS, exp: nowS + 3_601 }) })), /lives 3601 s .* longer than the 3600 s allowed \(AUTH_MAX_TOKEN_LIFETIME_S\)/);
    assert.equal((await auth({ token: await makeToken({ iat: nowS, exp: nowS + 3_600 }) })).userId, 'alice', 'exactly the bound');
    assert.equal((await auth({ token: await makeToken({ iat: nowS - 3_000, exp: nowS + 600 }) })).userId, 'alice', 'an old token within its bounded life');
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
    assert.match(await refused(auth({ token: await makeToken({ sub: 'has spaces/and slashes' }) })), /usable id/);
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
  it('allows no Origin, ALLOWED_ORIGINS, PUBLIC_URL\'s origin and loopback pages; never compares with the request\'s Host', () => {
    const policy = createOriginPolicy({ allowedOrigins: ['https://app.example'], publicUrl: 'https://sandpool.example' });
    assert.equal(policy.allows(undefined), true, 'non-browser client');
    assert.equal(policy.allows('https://app.example'), true);
    assert.equal(policy.allows('https://sandpool.example'), true);
    assert.equal(policy.allows('http://127.0.0.1:3000'), true, 'a page served from loopback');
    assert.equal(policy.allows('http://localhost:8080'), true);
    assert.equal(policy.allows('http://[::1]:3000'), true);
    assert.equal(policy.allows('https://evil.example'), false);
    assert.equal(policy.allows('http://sandpool.example'), false, 'another scheme is another origin');
    assert.equal(policy.allows('https://sandpool.example:8443'), false, 'another port is another origin');
    assert.equal(policy.allows('http://127.0.0.1.evil.example'), false);
    assert.equal(policy.allows('null'), false);
    assert.equal(policy.allows('http://127.0.0.1:3000/path'), false, 'not an origin');
    assert.deepEqual(policy.allowed, ['https://app.example', 'https://sandpool.example']);
  });
});

describe('host guard (DNS rebinding)', () => {
  it('allows the loopback names, PUBLIC_URL\'s host, ALLOWED_HOSTS and this machine\'s addresses, with any port; nothing else', () => {
    const guard = createHostGuard({ allowedHosts: ['tasks.nginx'], publicUrl: 'https://sandpool.example', ownAddresses: ['10.1.2.3', '[fd00::1]'] });
    for (const host of ['localhost', 'localhost:3000', '127.0.0.1:41000', '[::1]:3000', 'sandpool.example', 'SANDPOOL.example:443', 'sandpool.example.', 'tasks.nginx:80', '10.1.2.3:3000', '[fd00::1]:3000']) {
      assert.equal(guard.allows(host), true, host);
    }
    for (const host of [undefined, '', 'evil.example', 'sandpool.example.evil.example', '127.0.0.2:3000', '10.1.2.4', 'localhost.evil.example', '[::2]:3000']) {
      assert.equal(guard.allows(host), false, String(host));
    }
    assert.deepEqual(guard.names, ['localhost', '127.0.0.1', '[::1]', 'sandpool.example', 'tasks.nginx']);
  });

  it('hostName strips the port, case and a trailing dot, and keeps IPv6 brackets', () => {
    assert.equal(hostName('Example.COM:8080'), 'example.com');
    assert.equal(hostName('[::1]:3000'), '[::1]');
    assert.equal(hostName('example.com.'), 'example.com');
  });
});
