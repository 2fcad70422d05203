/**
 * The operations kit (ops/), checked with the real tools and no stack:
 * promtool (config, rules, the rules' unit tests), amtool (Alertmanager's
 * config), every dashboard query parsed by promtool, and the monitoring
 * compose file accepted by docker-compose 1.29 and by `docker stack deploy`
 * of Docker 20.10. Live data: test/deploy/monitoring.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { execFileAsync } from '../support/helpers.js';

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

/** The directory of promtool and amtool (scripts/lib/prom-tools.sh gets them), or why not. */
async function promTools(): Promise<string | Error> {
  try {
    return (await execFileAsync('bash', ['scripts/lib/prom-tools.sh'], { timeout: 120_000 })).stdout.trim();
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

const read = (file: string): string => readFileSync(file, 'utf8');
const alertNames = (): string[] => [...read('ops/prometheus/alerts.yml').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1] ?? '');
const dashboardPanels = (): Panel[] => (JSON.parse(read('ops/grafana/sandpool.json')) as { panels: Panel[] }).panels;

describe('the operations kit (ops/)', () => {
  let tools = '';
  before(async () => {
    const found = await promTools();
    if (found instanceof Error) throw new Error(`promtool/amtool unavailable (scripts/setup.sh gets them): ${found.message}`);
    tools = found;
  });
  const promtool = (args: string[], cwd = 'ops/prometheus') => execFileAsync(path.join(tools, 'promtool'), args, { cwd, timeout: 60_000 });

  it('promtool check config: prometheus.yml with its rule file, and the operator token file it reads', async () => {
    assert.match((await promtool(['check', 'config', '--syntax-only', 'prometheus.yml'])).stdout, /SUCCESS/);
    // The full check wants the credentials file to exist: a copy pointing at one here.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-prom-'));
    cpSync('ops/prometheus', dir, { recursive: true });
    writeFileSync(path.join(dir, 'operator.jwt'), 'token');
    const config = read(path.join(dir, 'prometheus.yml'));
    assert.match(config, /credentials_file: \/run\/sandpool-ops\/operator\.jwt/);
    writeFileSync(path.join(dir, 'prometheus.yml'), config.replace('/run/sandpool-ops/operator.jwt', path.join(dir, 'operator.jwt')));
    const { stdout } = await promtool(['check', 'config', 'prometheus.yml'], dir);
    assert.match(stdout, /SUCCESS: 1 rule files found/);
    assert.match(stdout, new RegExp(`SUCCESS: ${alertNames().length} rules found`));
  });

  it('promtool check rules, and promtool test rules: every rule fires in a case and stays quiet in another', async () => {
    assert.match((await promtool(['check', 'rules', 'alerts.yml'])).stdout, /SUCCESS: 20 rules found/);
    const tested = await promtool(['test', 'rules', 'alerts.test.yml']);
    assert.match(tested.stdout, /SUCCESS/);
    const tests = read('ops/prometheus/alerts.test.yml');
    const cases = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)].map((m) => ({ alert: m[1] ?? '', fires: m[2] === undefined }));
    for (const alert of alertNames()) {
      assert.ok(cases.some((c) => c.alert === alert && c.fires), `${alert} never fires in alerts.test.yml`);
      assert.ok(cases.some((c) => c.alert === alert && !c.fires), `${alert} has no case where it must not fire`);
    }
  });

  it('every alert has a severity, a summary, a runbook and a runbook_url into docs/operations.md', () => {
    const rules = read('ops/prometheus/alerts.yml').split(/^\s+- alert: /m).slice(1);
    assert.equal(rules.length, alertNames().length);
    const docs = existsSync('docs/operations.md') ? read('docs/operations.md') : '';
    for (const rule of rules) {
      const name = rule.split('\n')[0] ?? '';
      assert.match(rule, /severity: (critical|warning|info)/, name);
      assert.match(rule, /summary: '.+'/, name);
      assert.match(rule, /runbook: '.{40,}'/, name);
      assert.match(rule, new RegExp(`runbook_url: 'docs/operations\\.md#${name.toLowerCase()}'`), name);
      assert.match(docs, new RegExp(`^#### ${name}$`, 'm'), `docs/operations.md has no section for ${name}`);
    }
  });

  it('amtool check-config: Alertmanager sends to the webhook receiver', async () => {
    const { stdout } = await execFileAsync(path.join(tools, 'amtool'), ['check-config', 'ops/alertmanager/alertmanager.yml']);
    assert.match(stdout, /SUCCESS/);
    assert.match(read('ops/alertmanager/alertmanager.yml'), /url: http:\/\/alert-webhook:9095\/alerts/);
  });

  it('the dashboard: every panel\'s query is valid PromQL, and every key metric has a panel', async () => {
    const panels = dashboardPanels();
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.equal(exprs.filter((e) => typeof e !== 'string' || e.trim() === '').length, 0, 'a panel without a query');
    // promtool parses PromQL in rule files: one recording rule per query.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-dash-'));
    const rules = ['groups:', '  - name: dashboard', '    rules:', ...exprs.flatMap((e, i) => [`      - record: dashboard:query_${i}`, `        expr: ${JSON.stringify(e)}`])];
    writeFileSync(path.join(dir, 'dashboard.rules.yml'), `${rules.join('\n')}\n`);
    assert.match((await promtool(['check', 'rules', 'dashboard.rules.yml'], dir)).stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    const all = exprs.join('\n');
    for (const metric of [
      'sandpool_pool_active / sandpool_pool_max',
      'sum(sandpool_pool_active) / sum(sandpool_pool_max)',
      'sandpool_pool_idle',
      'sandpool_pool_min',
      'code="TOO_MANY_REQUESTS"',
      'code="QUOTA_EXCEEDED"',
      'sandpool_quota_warnings_total',
      'redis_memory_used_bytes',
      'redis_memory_max_bytes',
      'nginx_connections_active',
      'sandpool_http_request_duration_seconds_bucket',
      'sandpool_request_duration_seconds_bucket',
      'sandpool_mcp_call_seconds_bucket',
      'status="5xx"',
      'outcome="error"',
      'sandpool_auth_failures_total',
      'sandpool_quota_limiter_failures_total',
    ]) {
      assert.ok(all.includes(metric), `no panel shows ${metric}`);
    }
  });

  it('no query groups by a user: labels are replicas, plans, windows, codes, edges and routes only', () => {
    const everything = [read('ops/prometheus/alerts.yml'), read('ops/grafana/sandpool.json')].join('\n');
    assert.doesNotMatch(everything, /\b(user|userId|sub)\b\s*[=!~,)]/);
  });
});

describe('the monitoring compose file', () => {
  const files = ['-f', 'docker-compose.scale.yml', '-f', 'docker-compose.monitoring.yml'];

  it('docker-compose 1.29 merges it over the scale stack: Prometheus, Alertmanager, the exporters, the webhook and the token refresher; stub_status on nginx', async () => {
    const noEnvFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandpool-compose-')), 'empty.env');
    writeFileSync(noEnvFile, '');
    const { stdout } = await execFileAsync('docker-compose', ['--env-file', noEnvFile, ...files, 'config']);
    for (const service of ['prometheus:', 'alertmanager:', 'alert-webhook:', 'operator-token:', 'nginx-exporter:', 'redis-exporter:', 'app:', 'nginx:']) {
      assert.match(stdout, new RegExp(`^  ${service}$`, 'm'), `no ${service}`);
    }
    assert.match(stdout, /SANDPOOL_STATUS_LISTEN: .8080./);
    assert.match(stdout, /PLANS_FILE: \/run\/secrets\/plans/);
    assert.match(stdout, /127\.0\.0\.1:9090/, 'Prometheus on loopback unless told otherwise');
    assert.match(stdout, /-nginx\.scrape-uri=http:\/\/nginx:8080\/stub_status/);
  });

  it('docker stack deploy (Docker 20.10) accepts the scale and monitoring files together: no profiles key', async () => {
    const docker2010 = '/usr/bin/docker';
    assert.ok(existsSync(docker2010), 'no Debian docker.io CLI at /usr/bin/docker (scripts/setup.sh installs it)');
    const { stdout: version } = await execFileAsync(docker2010, ['version', '--format', '{{.Client.Version}}'], { env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    // The CLI validates the files before it talks to an engine: pointed at no engine, a valid stack fails only to connect.
    const attempt = await execFileAsync(docker2010, ['stack', 'deploy', '--compose-file', 'docker-compose.scale.yml', '--compose-file', 'docker-compose.monitoring.yml', 'sandpool-validate'], {
      env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' },
    }).then(
      () => ({ stderr: 'deployed?!' }),
      (err: { stderr?: string }) => ({ stderr: err.stderr ?? '' }),
    );
    assert.match(version, /^20\.10\./);
    assert.doesNotMatch(attempt.stderr, /Additional property|is not allowed|invalid/i);
    assert.match(attempt.stderr, /Cannot connect to the Docker daemon at unix:\/\/\/nonexistent\/docker\.sock/);
  });
});
