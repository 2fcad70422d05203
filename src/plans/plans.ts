import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { QUOTA_WINDOWS, type QuotaWindow } from '../protocol/errors.js';

export { QUOTA_WINDOWS, type QuotaWindow };

/**
 * One plan as PLANS_FILE states it (the contract's "Plans and quotas"): tool
 * calls per sliding hour, day and month (null = unlimited), and optionally
 * its own in-flight cap and snapshot size (MAX_REQUESTS_PER_USER and
 * WORKSPACE_MAX_BYTES otherwise).
 */
export interface PlanSpec {
  callsPerHour: number | null;
  callsPerDay: number | null;
  callsPerMonth: number | null;
  maxInFlight?: number;
  workspaceMaxBytes?: number;
}

export type PlanSpecs = Readonly<Record<string, PlanSpec>>;

/** The built-in plans (PLANS_FILE unset): the issue's table; enterprise is unlimited. */
export const DEFAULT_PLANS: PlanSpecs = {
  free: { callsPerHour: 100, callsPerDay: 1_000, callsPerMonth: 10_000 },
  basic: { callsPerHour: 500, callsPerDay: 5_000, callsPerMonth: 50_000 },
  premium: { callsPerHour: 1_000, callsPerDay: 10_000, callsPerMonth: 100_000 },
  enterprise: { callsPerHour: null, callsPerDay: null, callsPerMonth: null },
};

/** A plan with every default filled in: what the limiter, the in-flight cap and snapshots apply. */
export interface Plan {
  readonly name: string;
  /** Calls per window; null = unlimited. */
  readonly limits: Readonly<Record<QuotaWindow, number | null>>;
  readonly maxInFlight: number;
  readonly workspaceMaxBytes: number;
}

/** The plans of this deployment, read once at start. */
export interface PlanCatalog {
  readonly defaultPlan: Plan;
  readonly names: readonly string[];
  /** The plan of that name; undefined when this deployment has none. */
  get(name: string): Plan | undefined;
  /** The plan of that name, or DEFAULT_PLAN for none (or a name this replica does not know, as a routed call from a replica with other plans may carry). */
  resolve(name: string | undefined): Plan;
}

export const PLAN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const calls = (field: string): z.ZodType<number | null> =>
  z.custom<number | null>((v) => v === null || (Number.isInteger(v) && (v as number) >= 0), {
    error: (issue) =>
      issue.input === undefined
        ? `${field} is required: a whole number >= 0, or null for unlimited`
        : `${field} must be a whole number >= 0, or null for unlimited (got ${JSON.stringify(issue.input)})`,
  });

const planSchema = z.strictObject(
  {
    callsPerHour: calls('callsPerHour'),
    callsPerDay: calls('callsPerDay'),
    callsPerMonth: calls('callsPerMonth'),
    maxInFlight: z.int({ error: 'maxInFlight must be a whole number from 1 to 1000' }).min(1, 'maxInFlight must be at least 1').max(1000, 'maxInFlight must be at most 1000').optional(),
    workspaceMaxBytes: z
      .int({ error: 'workspaceMaxBytes must be a whole number of bytes' })
      .min(1024, 'workspaceMaxBytes must be at least 1024')
      .max(1_073_741_824, 'workspaceMaxBytes must be at most 1073741824 (1 GiB)')
      .optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : 'a plan must be an object { callsPerHour, callsPerDay, callsPerMonth, maxInFlight?, workspaceMaxBytes? }') },
);

const plansSchema = z
  .record(z.string().regex(PLAN_NAME), planSchema, {
    // Only for the whole file; a key's or a plan's own message stands.
    error: (issue) =>
      issue.code === 'invalid_type'
        ? 'the file must hold a JSON object of plans: { "<plan>": { "callsPerHour", "callsPerDay", "callsPerMonth", ... } }'
        : issue.code === 'invalid_key'
          ? 'a plan name must be 1-64 letters, digits, _ . -'
          : undefined,
  })
  .refine((plans) => Object.keys(plans).length > 0, 'the file names no plan');

/** A plans file that cannot be used, with every problem found in it. */
export class PlansFileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? (problems[0] ?? '') : `${problems.length} problems: ${problems.map((p, i) => `(${i + 1}) ${p}`).join('; ')}`);
    this.name = 'PlansFileError';
  }
}

/** Parses a plans file's text. Throws PlansFileError listing every problem (not only the first). */
export function parsePlans(text: string): PlanSpecs {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PlansFileError([`not valid JSON: ${err instanceof Error ? err.message : String(err)}`]);
  }
  const parsed = plansSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  throw new PlansFileError(parsed.error.issues.map((issue) => (issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ${issue.message}` : issue.message)));
}

/** Reads and parses PLANS_FILE. Throws PlansFileError (an unreadable file is one problem). */
export function readPlansFile(file: string): PlanSpecs {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PlansFileError([`cannot be read: ${err instanceof Error ? err.message : String(err)}`]);
  }
  return parsePlans(text);
}

/** The catalogue over parsed plans, their unset fields filled from the deployment's defaults. */
export function createPlanCatalog(options: { plans: PlanSpecs; defaultPlan: string; maxInFlight: number; workspaceMaxBytes: number }): PlanCatalog {
  const plans = new Map<string, Plan>();
  for (const [name, spec] of Object.entries(options.plans)) {
    plans.set(
      name,
      Object.freeze({
        name,
        limits: Object.freeze({ hour: spec.callsPerHour, day: spec.callsPerDay, month: spec.callsPerMonth }),
        maxInFlight: spec.maxInFlight ?? options.maxInFlight,
        workspaceMaxBytes: spec.workspaceMaxBytes ?? options.workspaceMaxBytes,
      }),
    );
  }
  const defaultPlan = plans.get(options.defaultPlan);
  // loadConfig refuses this already; a caller that skipped it learns here.
  if (!defaultPlan) throw new PlansFileError([`DEFAULT_PLAN ${JSON.stringify(options.defaultPlan)} is not one of the plans (${[...plans.keys()].join(', ')})`]);
  return {
    defaultPlan,
    names: [...plans.keys()],
    get: (name) => plans.get(name),
    resolve: (name) => (name === undefined ? defaultPlan : (plans.get(name) ?? defaultPlan)),
  };
}
