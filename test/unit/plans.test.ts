import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { DEFAULT_PLANS, PlansFileError, createPlanCatalog, parsePlans } from '../../src/plans/plans.js';

function plansFile(content: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandpool-plans-')), 'plans.json');
  writeFileSync(file, content);
  return file;
}

function problems(text: string): readonly string[] {
  try {
    parsePlans(text);
  } catch (err) {
    assert.ok(err instanceof PlansFileError);
    return err.problems;
  }
  assert.fail('the plans were accepted');
}

describe('plans', () => {
  it('default to the issue\'s table: free, basic, premium, enterprise unlimited; the default plan is free', () => {
    const c = loadConfig({});
    assert.equal(c.plans.defaultPlan, 'free');
    assert.equal(c.plans.quotaFailMode, 'closed');
    assert.deepEqual(c.plans.specs, DEFAULT_PLANS);
    const catalog = createPlanCatalog({ plans: c.plans.specs, defaultPlan: c.plans.defaultPlan, maxInFlight: c.chat.maxRequestsPerUser, workspaceMaxBytes: c.workspace.maxBytes });
    assert.deepEqual(catalog.names, ['free', 'basic', 'premium', 'enterprise']);
    assert.deepEqual(catalog.get('free')?.limits, { hour: 100, day: 1_000, month: 10_000 });
    assert.deepEqual(catalog.get('basic')?.limits, { hour: 500, day: 5_000, month: 50_000 });
    assert.deepEqual(catalog.get('premium')?.limits, { hour: 1_000, day: 10_000, month: 100_000 });
    assert.deepEqual(catalog.get('enterprise')?.limits, { hour: null, day: null, month: null });
    assert.equal(catalog.defaultPlan.name, 'free');
  });

  it('ops/plans.json, the file the compose stack mounts, is the built-in table', () => {
    assert.deepEqual(parsePlans(readFileSync('ops/plans.json', 'utf8')), DEFAULT_PLANS);
  });

  it('read from PLANS_FILE; maxInFlight and workspaceMaxBytes default to MAX_REQUESTS_PER_USER and WORKSPACE_MAX_BYTES', () => {
    const file = plansFile(JSON.stringify({ tiny: { callsPerHour: 3, callsPerDay: 10, callsPerMonth: null, maxInFlight: 2, workspaceMaxBytes: 65_536 }, plain: { callsPerHour: 1, callsPerDay: 1, callsPerMonth: 1 } }));
    const c = loadConfig({ PLANS_FILE: file, DEFAULT_PLAN: 'plain', MAX_REQUESTS_PER_USER: '7', WORKSPACE_MAX_BYTES: '2048' });
    const catalog = createPlanCatalog({ plans: c.plans.specs, defaultPlan: c.plans.defaultPlan, maxInFlight: c.chat.maxRequestsPerUser, workspaceMaxBytes: c.workspace.maxBytes });
    assert.deepEqual(catalog.get('tiny'), { name: 'tiny', limits: { hour: 3, day: 10, month: null }, maxInFlight: 2, workspaceMaxBytes: 65_536 });
    assert.deepEqual(catalog.get('plain'), { name: 'plain', limits: { hour: 1, day: 1, month: 1 }, maxInFlight: 7, workspaceMaxBytes: 2048 });
    assert.equal(catalog.resolve(undefined).name, 'plain');
    assert.equal(catalog.resolve('tiny').name, 'tiny');
    assert.equal(catalog.resolve('gone').name, 'plain', 'a name this replica does not know falls back to the default');
  });

  it('a malformed file: every problem is listed, each with where it is', () => {
    const found = problems(
      JSON.stringify({
        free: { callsPerHour: -1, callsPerDay: 'many', callsPerMonth: 10 },
        basic: { callsPerHour: 1, callsPerDay: 2 },
        'bad name!': { callsPerHour: 1, callsPerDay: 1, callsPerMonth: 1 },
        pro: { callsPerHour: 1, callsPerDay: 1, callsPerMonth: 1, maxInFlight: 0, callsPerWeek: 3 },
      }),
    );
    const text = found.join('\n');
    assert.match(text, /free\.callsPerHour: callsPerHour must be a whole number >= 0, or null for unlimited \(got -1\)/);
    assert.match(text, /free\.callsPerDay: callsPerDay must be a whole number >= 0, or null for unlimited \(got "many"\)/);
    assert.match(text, /basic\.callsPerMonth: callsPerMonth is required/);
    assert.match(text, /bad name!: a plan name must be 1-64 letters/);
    assert.match(text, /pro\.maxInFlight: maxInFlight must be at least 1/);
    assert.match(text, /pro: unknown field\(s\) "callsPerWeek"/);
    assert.ok(found.length >= 6, text);
  });

  it('not JSON, not an object, or no plan at all: one clear problem each', () => {
    assert.match(problems('{ "free": ')[0] ?? '', /^not valid JSON/);
    assert.match(problems('[1, 2]')[0] ?? '', /a JSON object of plans/);
    assert.match(problems('{}')[0] ?? '', /names no plan/);
  });

  it('a bad PLANS_FILE or DEFAULT_PLAN stops start-up, listed with the other bad variables', () => {
    const bad = plansFile('{ "free": { "callsPerHour": 1.5, "callsPerDay": null, "callsPerMonth": null }, "x": { "callsPerHour": 1 } }');
    try {
      loadConfig({ PLANS_FILE: bad, PORT: 'nope' });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const plansProblem = err.problems.find((p) => p.startsWith('PLANS_FILE:')) ?? '';
      assert.match(plansProblem, /3 problems: \(1\) free\.callsPerHour: .*got 1\.5.*; \(2\) x\.callsPerDay: callsPerDay is required.*; \(3\) x\.callsPerMonth/);
      assert.ok(err.problems.some((p) => p.startsWith('PORT:')));
    }
    assert.throws(() => loadConfig({ PLANS_FILE: '/nonexistent/plans.json' }), /PLANS_FILE: cannot be read: ENOENT/);
    assert.throws(() => loadConfig({ DEFAULT_PLAN: 'gold' }), /DEFAULT_PLAN: "gold" is not one of the plans \(free, basic, premium, enterprise\)/);
    const onlyGold = plansFile('{ "gold": { "callsPerHour": null, "callsPerDay": null, "callsPerMonth": null } }');
    assert.throws(() => loadConfig({ PLANS_FILE: onlyGold }), /DEFAULT_PLAN: "free" is not one of the plans \(gold\)/);
    assert.equal(loadConfig({ PLANS_FILE: onlyGold, DEFAULT_PLAN: 'gold' }).plans.defaultPlan, 'gold');
    assert.throws(() => loadConfig({ QUOTA_FAIL_MODE: 'sometimes' }), /QUOTA_FAIL_MODE: must be one of closed, open/);
  });
});
