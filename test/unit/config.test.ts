import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnProcess } from '../../scripts/lib/start-process.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('has sane defaults, including the seed\'s pool variables', () => {
    const c = loadConfig({});
    assert.equal(c.server.port, 3000);
    assert.equal(c.pool.enabled, true);
    assert.equal(c.pool.runtime, 'auto');
    assert.equal(c.pool.image, 'sandpool-sandbox:latest');
    assert.equal(c.pool.minSize, 5);
    assert.equal(c.pool.maxSize, 50);
    assert.equal(c.pool.idleTimeoutMs, 900_000);
    assert.ok(c.pool.acquireTimeoutMs > 0);
    assert.ok(c.pool.maxWaitingClients > 0);
    assert.match(c.server.replicaId, /^[A-Za-z0-9_.-]+$/);
  });

  it('parses the seed\'s values and booleans', () => {
    const c = loadConfig({ ENABLE_CONTAINER_POOL: 'false', POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '100', POOL_IDLE_TIMEOUT_MS: '900000' });
    assert.equal(c.pool.enabled, false);
    assert.equal(c.pool.minSize, 10);
    assert.equal(c.pool.maxSize, 100);
    assert.equal(loadConfig({ ENABLE_CONTAINER_POOL: 'TRUE' }).pool.enabled, true);
  });

  it('lists every bad variable in one error', () => {
    const problems = problemsOf({ POOL_MIN_SIZE: '-1', POOL_MAX_SIZE: 'lots', PORT: '70000', POOL_RUNTIME: 'kubernetes', ENABLE_CONTAINER_POOL: 'maybe' });
    const names = problems.map((p) => p.split(':')[0]).sort();
    assert.deepEqual(names, ['ENABLE_CONTAINER_POOL', 'POOL_MAX_SIZE', 'POOL_MIN_SIZE', 'POOL_RUNTIME', 'PORT']);
    assert.ok(problems.some((p) => /POOL_MIN_SIZE: must be >= 0 \(got "-1"\)/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /POOL_MAX_SIZE: must be a whole number/.test(p)), problems.join('\n'));
  });

  it('lists bad values and broken rules across variables together', () => {
    // Regression: a value that did not parse hid every cross-field problem.
    const problems = problemsOf({ POOL_MIN_SIZE: '60', SANDBOX_CPUS: 'fast' });
    assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['POOL_MIN_SIZE', 'SANDBOX_CPUS']);
    assert.ok(problems.includes('POOL_MIN_SIZE: must be <= POOL_MAX_SIZE (got 60 > 50)'), problems.join('\n'));
    const many = problemsOf({ NODE_ENV: 'production', POOL_RUNTIME: 'process', PORT: 'http', POOL_COMMAND: '[1,2', LLM_PROVIDER: 'gemini' });
    assert.deepEqual(many.map((p) => p.split(':')[0]).sort(), ['AUTH_SECRET', 'GEMINI_API_KEY', 'POOL_COMMAND', 'POOL_RUNTIME', 'PORT']);
  });

  it('checks no rule against a variable that is itself invalid', () => {
    // POOL_MAX_SIZE=lots must not also claim POOL_MIN_SIZE exceeds the default max.
    assert.deepEqual(problemsOf({ POOL_MIN_SIZE: '60', POOL_MAX_SIZE: 'lots' }).map((p) => p.split(':')[0]), ['POOL_MAX_SIZE']);
    assert.deepEqual(problemsOf({ NODE_ENV: 'staging', POOL_RUNTIME: 'process' }).map((p) => p.split(':')[0]), ['NODE_ENV']);
  });

  it('refuses POOL_MIN_SIZE above POOL_MAX_SIZE', () => {
    assert.deepEqual(problemsOf({ POOL_MIN_SIZE: '20', POOL_MAX_SIZE: '10' }), ['POOL_MIN_SIZE: must be <= POOL_MAX_SIZE (got 20 > 10)']);
  });

  it('refuses the unisolated process runtime in production', () => {
    const [problem] = problemsOf({ NODE_ENV: 'production', POOL_RUNTIME: 'process' });
    assert.match(problem ?? '', /POOL_RUNTIME: .*refused when NODE_ENV=production/);
  });

  it('accepts POOL_COMMAND as JSON or words, and rejects a bad JSON one', () => {
    assert.deepEqual(loadConfig({ POOL_COMMAND: '["node","/srv/server.js","/workspace"]' }).pool.command, ['node', '/srv/server.js', '/workspace']);
    assert.deepEqual(loadConfig({ POOL_COMMAND: 'mcp-server --root /workspace' }).pool.command, ['mcp-server', '--root', '/workspace']);
    assert.match(problemsOf({ POOL_COMMAND: '[1,2' })[0] ?? '', /POOL_COMMAND: must be a JSON array/);
  });

  it('treats blank values as unset', () => {
    assert.equal(loadConfig({ POOL_MIN_SIZE: '', PORT: '  ' }).pool.minSize, 5);
  });

  it('makes `npm start` exit non-zero listing every bad variable', async () => {
    const main = spawnProcess({
      command: process.execPath,
      args: ['dist/src/main.js'],
      env: { PATH: process.env.PATH, POOL_MIN_SIZE: '-1', POOL_MAX_SIZE: 'x', SANDBOX_CPUS: 'fast' },
    });
    const { code } = await main.exited;
    const stderr = main.output('stderr');
    assert.equal(code, 2);
    for (const name of ['POOL_MIN_SIZE', 'POOL_MAX_SIZE', 'SANDBOX_CPUS']) assert.match(stderr, new RegExp(`- ${name}: `));
    assert.match(stderr, /Invalid configuration \(3 problems\)/);
  });
});

describe('.env.example', () => {
  it('is generated from the schema: every variable, its meaning and its default (npm run env:example)', async () => {
    const { readFileSync } = await import('node:fs');
    const { renderEnvExample } = await import('../../src/config/env-example.js');
    assert.equal(readFileSync('.env.example', 'utf8'), renderEnvExample(), '.env.example is stale: run npm run env:example');
  });

  it('lists every variable the config reads, and its uncommented values are the defaults', async () => {
    const { readFileSync } = await import('node:fs');
    const { ENV_VARIABLES } = await import('../../src/config/config.js');
    const text = readFileSync('.env.example', 'utf8');
    const documented = new Map<string, string>();
    const defaults = new Map<string, string>();
    for (const line of text.split('\n')) {
      const m = /^(#?)\s*([A-Z][A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (!m?.[2]) continue;
      documented.set(m[2], m[3] ?? '');
      if (m[1] === '') defaults.set(m[2], m[3] ?? '');
    }
    assert.deepEqual([...ENV_VARIABLES].filter((v) => !documented.has(v)), [], 'variables missing from .env.example');
    assert.deepEqual([...documented.keys()].filter((v) => !ENV_VARIABLES.includes(v)), [], '.env.example lists variables the code does not read');
    // Loading the uncommented values changes nothing.
    assert.deepEqual(loadConfig(Object.fromEntries(defaults)), loadConfig({}));
  });
});

describe('config: chat and identity', () => {
  it('refuses production without AUTH_SECRET, and a remote provider without its key', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /AUTH_SECRET: required when NODE_ENV=production/);
    assert.throws(() => loadConfig({ LLM_PROVIDER: 'gemini' }), /GEMINI_API_KEY: required when LLM_PROVIDER=gemini/);
    assert.throws(() => loadConfig({ LLM_PROVIDER: 'anthropic' }), /ANTHROPIC_API_KEY: required/);
    // An OpenAI-compatible local server may run without a key.
    assert.equal(loadConfig({ LLM_PROVIDER: 'openai', OPENAI_BASE_URL: 'http://127.0.0.1:8080/v1' }).llm.provider, 'openai');
  });

  it('never echoes a secret in a config error', () => {
    try {
      loadConfig({ AUTH_SECRET: 'short-secret' });
      assert.fail('accepted a short AUTH_SECRET');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /AUTH_SECRET: must be at least 16 characters/);
      assert.doesNotMatch(err.message, /short-secret/);
    }
  });

  it('defaults MAX_REQUESTS_PER_USER to 5 and LLM_PROVIDER to local', () => {
    const c = loadConfig({});
    assert.equal(c.chat.maxRequestsPerUser, 5);
    assert.equal(c.llm.provider, 'local');
  });
});

describe('config: trust', () => {
  it('listens on loopback without AUTH_SECRET, on every interface with it, and warns about a public HOST without one', async () => {
    const { configWarnings } = await import('../../src/config/config.js');
    assert.equal(loadConfig({}).server.host, '127.0.0.1');
    assert.equal(loadConfig({ AUTH_SECRET: 'x'.repeat(32) }).server.host, '0.0.0.0');
    assert.deepEqual(configWarnings(loadConfig({})), []);
    const exposed = loadConfig({ HOST: '0.0.0.0' });
    assert.match(configWarnings(exposed)[0] ?? '', /HOST=0\.0\.0\.0 without AUTH_SECRET: anyone who can reach this port can act as any user/);
    assert.deepEqual(configWarnings(loadConfig({ HOST: '0.0.0.0', AUTH_SECRET: 'x'.repeat(32), OPERATOR_SECRET: 'o'.repeat(32) })), []);
    assert.match(configWarnings(loadConfig({ AUTH_SECRET: 'x'.repeat(32) }))[0] ?? '', /AUTH_SECRET without OPERATOR_SECRET: \/stats\/\*, \/metrics and \/admin\/\* answer 401 to everyone/);
  });

  it('keeps OPERATOR_SECRET apart from AUTH_SECRET, 32 bytes in production', () => {
    assert.deepEqual(problemsOf({ AUTH_SECRET: 'x'.repeat(32), OPERATOR_SECRET: 'x'.repeat(32) }), [
      'OPERATOR_SECRET: must differ from AUTH_SECRET (whoever issues user tokens must not be able to mint operator tokens)',
    ]);
    assert.deepEqual(problemsOf({ NODE_ENV: 'production', AUTH_SECRET: 'x'.repeat(32), OPERATOR_SECRET: 'o'.repeat(20) }), ['OPERATOR_SECRET: must be at least 32 bytes when NODE_ENV=production (got 20)']);
    assert.equal(loadConfig({ AUTH_SECRET: 'x'.repeat(32), OPERATOR_SECRET: 'o'.repeat(32) }).auth.operatorSecret, 'o'.repeat(32));
  });

  it('takes PUBLIC_URL as one origin, ALLOWED_HOSTS as host names, and AUTH_MAX_TOKEN_LIFETIME_S (default one day)', () => {
    const c = loadConfig({ PUBLIC_URL: 'https://sandpool.example', ALLOWED_HOSTS: 'tasks.nginx, Sandpool.Internal ,[fd00::1]' });
    assert.equal(c.auth.publicUrl, 'https://sandpool.example');
    assert.deepEqual(c.auth.allowedHosts, ['tasks.nginx', 'sandpool.internal', '[fd00::1]']);
    assert.equal(loadConfig({}).auth.publicUrl, undefined);
    assert.equal(loadConfig({}).auth.maxLifetimeS, 86_400);
    assert.match(problemsOf({ PUBLIC_URL: 'https://sandpool.example/app' })[0] ?? '', /PUBLIC_URL: .* is not an origin/);
    assert.match(problemsOf({ ALLOWED_HOSTS: 'https://a.example' })[0] ?? '', /ALLOWED_HOSTS: "https:\/\/a\.example" is not a host name/);
    assert.match(problemsOf({ ALLOWED_HOSTS: 'a.example:80' })[0] ?? '', /ALLOWED_HOSTS: "a\.example:80" is not a host name/);
    assert.match(problemsOf({ AUTH_MAX_TOKEN_LIFETIME_S: '10' })[0] ?? '', /AUTH_MAX_TOKEN_LIFETIME_S: must be >= 60/);
  });

  it('needs a secret of 32 bytes in production, and accepts a shorter one in development', () => {
    assert.deepEqual(problemsOf({ NODE_ENV: 'production', AUTH_SECRET: 'x'.repeat(20) }), ['AUTH_SECRET: must be at least 32 bytes when NODE_ENV=production (got 20)']);
    assert.equal(loadConfig({ NODE_ENV: 'production', AUTH_SECRET: 'x'.repeat(32) }).auth.secret?.length, 32);
    assert.equal(loadConfig({ AUTH_SECRET: 'x'.repeat(20) }).auth.secret?.length, 20);
  });

  it('takes ALLOWED_ORIGINS as exact origins and names a bad one', () => {
    assert.deepEqual(loadConfig({ ALLOWED_ORIGINS: 'https://app.example, http://localhost:5173' }).auth.allowedOrigins, ['https://app.example', 'http://localhost:5173']);
    assert.deepEqual(loadConfig({}).auth.allowedOrigins, []);
    assert.match(problemsOf({ ALLOWED_ORIGINS: 'https://app.example/' })[0] ?? '', /ALLOWED_ORIGINS: "https:\/\/app\.example\/" is not an origin/);
    assert.match(problemsOf({ ALLOWED_ORIGINS: 'app.example' })[0] ?? '', /ALLOWED_ORIGINS: "app\.example" is not an origin/);
  });

  it('defaults MAX_SOCKETS_PER_USER to 10 and the clock tolerance to 5 s', () => {
    const c = loadConfig({});
    assert.equal(c.auth.maxSocketsPerUser, 10);
    assert.equal(c.auth.clockToleranceMs, 5_000);
    assert.equal(c.auth.issuer, undefined);
  });
});
