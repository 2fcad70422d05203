/** The load suites: which Artillery scenario each run plays, with what overrides, against replicas with what environment. */

export interface Run {
  name: string;
  scenario: string;
  /** Artillery config overrides (phases, variables). */
  overrides: Record<string, unknown>;
  /** Extra environment for the replicas. */
  env: Record<string, string>;
  /** Extra pass/fail checks on the Artillery counters. */
  check?: (counters: Record<string, number>) => string | undefined;
  /** A step of a ceiling search: what is being raised, and to what. */
  step?: { search: StepSearch; level: number };
}

export type StepSearch =
  | 'concurrent users held 5 min'
  | 'seed-flow arrivals per second'
  | 'returning-user arrivals per second, parking on'
  | 'returning-user arrivals per second, parking off';

const exactBackpressure = (c: Record<string, number>): string | undefined => {
  const accepted = c['sandpool.backpressure.accepted'] ?? 0;
  const refused = c['sandpool.refused.TOO_MANY_REQUESTS'] ?? 0;
  const users = c['vusers.completed'] ?? 0;
  if (users === 0) return 'no user completed';
  if (accepted !== users * 5 || refused !== users * 5) return `expected 5 accepted + 5 refused per user, got ${accepted} + ${refused} for ${users} users`;
  return undefined;
};

/** quotas.yml: per plan, exactly `limit` accepted and 2 refused per user (QUOTA_EXCEEDED), nothing else refused or wrong. */
const QUOTA_PLANS: Record<string, number> = { tiny: 3, small: 5, medium: 8 };
const exactQuotas = (c: Record<string, number>): string | undefined => {
  const problems: string[] = [];
  let users = 0;
  for (const [plan, limit] of Object.entries(QUOTA_PLANS)) {
    const n = c[`sandpool.quota.${plan}.users`] ?? 0;
    users += n;
    const accepted = c[`sandpool.quota.${plan}.accepted`] ?? 0;
    const refused = c[`sandpool.quota.${plan}.refused`] ?? 0;
    if (accepted !== n * limit || refused !== n * 2) problems.push(`${plan}: ${n} users, expected ${n * limit} accepted + ${n * 2} refused, got ${accepted} + ${refused}`);
  }
  if (users === 0) problems.push('no user ran');
  const wrong = Object.entries(c).filter(([k, v]) => k.startsWith('sandpool.quota.wrong.') && v > 0);
  if (wrong.length > 0) problems.push(`contract broken: ${wrong.map(([k, v]) => `${k.slice('sandpool.quota.wrong.'.length)} x${v}`).join(', ')}`);
  const otherRefusals = Object.entries(c).filter(([k, v]) => k.startsWith('sandpool.refused.') && k !== 'sandpool.refused.QUOTA_EXCEEDED' && v > 0);
  if (otherRefusals.length > 0) problems.push(`other refusals: ${otherRefusals.map(([k, v]) => `${k} x${v}`).join(', ')}`);
  return problems.length > 0 ? problems.join('; ') : undefined;
};

const phases = (duration: number, arrivalRate: number, name: string): Array<Record<string, unknown>> => [{ duration, arrivalRate, name }];

export const SUITES: Record<string, Run[]> = {
  smoke: [
    { name: 'smoke-phase2', scenario: 'phase2.yml', overrides: { config: { phases: phases(10, 2, 'seed flow'), variables: { approvalThinkMs: 200 } } }, env: {} },
    // These two lease no sandbox (connections only; requests refused or finished before a tool runs): one spare per replica instead of
    // the default five, whose starts would only compete for CPU with what they measure (and with whatever shares the machine: npm test).
    { name: 'smoke-connections', scenario: 'connections.yml', overrides: { config: { phases: phases(10, 5, 'ramp'), variables: { idleSeconds: 8 } } }, env: { POOL_MIN_SIZE: '1' } },
    { name: 'smoke-backpressure', scenario: 'backpressure.yml', overrides: { config: { phases: phases(5, 2, 'bursts') } }, env: { POOL_MIN_SIZE: '1' }, check: exactBackpressure },
  ],
  capacity: [
    // Concurrent users: 20 new users/s for 100 s, each held 420 s: all 2000 connected together for 320 s (> 5 minutes).
    { name: 'capacity-connections', scenario: 'connections.yml', overrides: { config: { phases: phases(100, 20, 'ramp to 2000'), variables: { idleSeconds: 420 } } }, env: { POOL_MIN_SIZE: '2' } },
    // Seed flow with the pool: a sustained arrival rate of users that each need their own sandbox.
    { name: 'capacity-phase2-pool', scenario: 'phase2.yml', overrides: { config: { phases: phases(120, 2, 'sustained 2/s'), variables: { approvalThinkMs: 1000 } } }, env: { POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '60' } },
    // The same flow with ENABLE_CONTAINER_POOL=false: the pool's gain as a ratio from one run of each.
    { name: 'capacity-phase2-nopool', scenario: 'phase2.yml', overrides: { config: { phases: phases(120, 2, 'sustained 2/s'), variables: { approvalThinkMs: 1000 } } }, env: { ENABLE_CONTAINER_POOL: 'false', POOL_MAX_SIZE: '60' } },
    { name: 'capacity-backpressure', scenario: 'backpressure.yml', overrides: { config: { phases: phases(60, 2, 'bursts') } }, env: {}, check: exactBackpressure },
  ],
  // Stepped searches for the ceilings: each step is a fresh cluster; the
  // summary (ceiling.md) names the highest step with < 1% errors.
  ceiling: [
    ...[4000, 8000, 12000, 16000].map((users) => ({
      name: `ceiling-connections-${users}`,
      scenario: 'connections.yml',
      overrides: { config: { phases: phases(100, users / 100, `ramp to ${users}`), variables: { idleSeconds: 420 } } },
      env: { POOL_MIN_SIZE: '2' },
      step: { search: 'concurrent users held 5 min' as const, level: users },
    })),
    ...[3, 4, 6, 8, 10].map((rate) => ({
      name: `ceiling-phase2-${rate}`,
      scenario: 'phase2.yml',
      overrides: { config: { phases: phases(120, rate, `sustained ${rate}/s`), variables: { approvalThinkMs: 1000 } } },
      // Live sandboxes ≈ rate × (session + 30 s disconnect grace): a max high enough that starts, not POOL_MAX_SIZE, bound the step.
      env: { POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '150' },
      step: { search: 'seed-flow arrivals per second' as const, level: rate },
    })),
  ],
  // 4 of 5 arrivals are returning users (returning.yml), with their sandboxes
  // parked (PARK_MAX) and without (a new sandbox and the snapshot restored):
  // the highest held rate each way, steps interleaved so both see the same machine.
  returning: [2, 3, 5].flatMap((rate) =>
    (['on', 'off'] as const).map((parking) => ({
      name: `returning-${rate}-park-${parking}`,
      scenario: 'returning.yml',
      overrides: { config: { phases: phases(120, rate, `${rate}/s, 4 of 5 returning`) } },
      env: {
        POOL_MIN_SIZE: '10',
        POOL_MAX_SIZE: '150',
        SESSION_DISCONNECT_GRACE_MS: '3000',
        // Returning users waiting ≈ rate x 0.8 x (return after 8 s - grace 3 s), per replica about half: room for all of them.
        PARK_MAX: parking === 'on' ? '40' : '0',
        // A replica's shutdown removes all it holds, up to 40 parked and the spares: 15 s (the default) was too
        // short here at 3/s (11 left behind). Both ways alike; below the cluster's 30 s before SIGKILL.
        SHUTDOWN_TIMEOUT_MS: '28000',
      },
      step: { search: `returning-user arrivals per second, parking ${parking}` as const, level: rate },
    })),
  ),
  // Spares that follow demand: 2 new users/s, a quiet spell, then 8/s. The
  // pool chart shows spareTarget rising with the rate and the spares that the
  // quiet spell keeps (POOL_DEMAND_WINDOW_MS), ready for the burst.
  stepped: [
    {
      name: 'stepped-phase2',
      scenario: 'phase2.yml',
      overrides: {
        config: {
          phases: [
            { duration: 60, arrivalRate: 2, name: '2/s' },
            { pause: 30, name: 'quiet' },
            { duration: 60, arrivalRate: 8, name: '8/s' },
          ],
          variables: { approvalThinkMs: 1000 },
        },
      },
      env: { POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '150' },
    },
  ],
  // Mixed plans, each user spending its hourly quota and 2 more: refusals exactly at the limits.
  quotas: [
    {
      name: 'quotas-mixed-plans',
      scenario: 'quotas.yml',
      overrides: { config: { phases: phases(30, 2, 'mixed plans') } },
      env: { PLANS_FILE: 'load-tests/quota-plans.json', DEFAULT_PLAN: 'tiny' },
      check: exactQuotas,
    },
  ],
  soak: [
    // 30 minutes of the seed flow at a steady 1 user/s: RSS slope and leaked containers.
    { name: 'soak-phase2', scenario: 'phase2.yml', overrides: { config: { phases: phases(1800, 1, 'soak 30 min'), variables: { approvalThinkMs: 1000 } } }, env: { POOL_MIN_SIZE: '5' } },
  ],
};
