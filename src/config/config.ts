import { readFileSync } from 'node:fs';
import { EnvVarError, isEnvVar, variablesOf, type EnvTree, type RawEnv, type ValueOf } from './env-var.js';
import { schema } from './schema.js';

export { DEFAULT_POOL_IMAGE } from './schema.js';

/** The parsed configuration: its type is inferred from the schema, nothing is declared twice. */
export type Config = ValueOf<typeof schema>;

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Every environment variable sandpool reads, in schema order. */
export const ENV_VARIABLES: readonly string[] = variablesOf(schema).map((v) => v.variable.name);

/**
 * A check across variables, on values that parsed. Skipped when one of
 * `reads` is itself invalid: that one is reported already.
 */
interface CrossFieldRule {
  reads: readonly string[];
  check(c: Config): string | undefined;
}

const API_KEY_VARIABLE = { gemini: 'GEMINI_API_KEY', openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY' } as const;

const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    reads: ['POOL_MIN_SIZE', 'POOL_MAX_SIZE'],
    check: (c) => (c.pool.minSize > c.pool.maxSize ? `POOL_MIN_SIZE: must be <= POOL_MAX_SIZE (got ${c.pool.minSize} > ${c.pool.maxSize})` : undefined),
  },
  {
    reads: ['NODE_ENV', 'POOL_RUNTIME'],
    check: (c) =>
      c.server.nodeEnv === 'production' && c.pool.runtime === 'process'
        ? 'POOL_RUNTIME: "process" runs sandboxes without isolation and is refused when NODE_ENV=production'
        : undefined,
  },
  {
    reads: ['NODE_ENV', 'AUTH_SECRET'],
    check: (c) =>
      c.server.nodeEnv === 'production' && c.auth.secret === undefined
        ? 'AUTH_SECRET: required when NODE_ENV=production (the development identity auth.userId is refused there)'
        : undefined,
  },
  {
    reads: ['NODE_ENV', 'AUTH_SECRET'],
    check: (c) =>
      c.server.nodeEnv === 'production' && c.auth.secret !== undefined && Buffer.byteLength(c.auth.secret) < 32
        ? `AUTH_SECRET: must be at least 32 bytes when NODE_ENV=production (got ${Buffer.byteLength(c.auth.secret)})`
        : undefined,
  },
  {
    reads: ['PLANS_FILE', 'DEFAULT_PLAN'],
    check: (c) =>
      Object.hasOwn(c.plans.specs, c.plans.defaultPlan)
        ? undefined
        : `DEFAULT_PLAN: ${JSON.stringify(c.plans.defaultPlan)} is not one of the plans (${Object.keys(c.plans.specs).join(', ')})`,
  },
  {
    reads: ['AUTH_SECRET', 'OPERATOR_SECRET'],
    check: (c) =>
      c.auth.operatorSecret !== undefined && c.auth.operatorSecret === c.auth.secret
        ? 'OPERATOR_SECRET: must differ from AUTH_SECRET (whoever issues user tokens must not be able to mint operator tokens)'
        : undefined,
  },
  {
    reads: ['NODE_ENV', 'OPERATOR_SECRET'],
    check: (c) =>
      c.server.nodeEnv === 'production' && c.auth.operatorSecret !== undefined && Buffer.byteLength(c.auth.operatorSecret) < 32
        ? `OPERATOR_SECRET: must be at least 32 bytes when NODE_ENV=production (got ${Buffer.byteLength(c.auth.operatorSecret)})`
        : undefined,
  },
  {
    reads: ['WORKSPACE_STORE', 'REDIS_URL', 'WORKSPACE_REDIS_URL'],
    check: (c) => (c.workspace.store === 'redis' && c.cluster.redisUrl === undefined && c.workspace.redisUrl === undefined ? 'WORKSPACE_STORE: redis needs REDIS_URL or WORKSPACE_REDIS_URL' : undefined),
  },
  {
    reads: ['LLM_PROVIDER', 'GEMINI_API_KEY', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'OPENAI_BASE_URL'],
    check: (c) => {
      const provider = c.llm.provider;
      if (provider === 'local' || c.llm[provider].apiKey !== undefined) return undefined;
      // An OpenAI-compatible local server may not need a key; the hosted APIs do.
      if (provider === 'openai' && c.llm.openai.baseUrl) return undefined;
      return `${API_KEY_VARIABLE[provider]}: required when LLM_PROVIDER=${provider}`;
    },
  },
];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * Settings that are allowed but deserve a loud warning at start-up.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.auth.secret !== undefined && config.auth.operatorSecret === undefined) {
    warnings.push('AUTH_SECRET without OPERATOR_SECRET: /stats/*, /metrics and /admin/* answer 401 to everyone. Set OPERATOR_SECRET to use them with operator tokens.');
  }
  if (config.auth.secret === undefined && !LOOPBACK.test(config.server.host)) {
    warnings.push(
      `HOST=${config.server.host} without AUTH_SECRET: anyone who can reach this port can act as any user (the development identity auth.userId is accepted). Set AUTH_SECRET, or bind to 127.0.0.1.`,
    );
  }
  return warnings;
}

/** Builds the value tree of `tree` from the environment, recording bad variables (their defaults stand in). */
function build(tree: EnvTree, env: RawEnv, problems: string[], invalid: Set<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(tree)) {
    if (!isEnvVar(node)) {
      out[key] = build(node, env, problems, invalid);
      continue;
    }
    const raw = env[node.name];
    try {
      out[key] = node.parse(raw, env);
    } catch (err) {
      if (!(err instanceof EnvVarError)) throw err;
      invalid.add(node.name);
      // Never echo a secret into logs.
      const shown = node.secret ? `a value of ${raw?.length ?? 0} characters` : JSON.stringify(raw ?? null);
      problems.push(`${node.name}: ${err.message} (got ${shown})`);
      // So the rules can still run on everything else.
      out[key] = node.parse(undefined, env);
    }
  }
  return out;
}

/** Secrets may come from files (Docker secrets): NAME_FILE names a file holding NAME's value. */
export const SECRET_VARIABLES: readonly string[] = variablesOf(schema).flatMap(({ variable }) => (variable.secret ? [variable.name] : []));

/** Reads NAME_FILE into NAME for every secret; records what cannot be read. */
function readSecretFiles(env: RawEnv, readFile: (path: string) => string, problems: string[]): RawEnv {
  const out: Record<string, string> = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined) continue;
    if (env[name] !== undefined) {
      problems.push(`${name}_FILE: ${name} is set as well; set one of them`);
      continue;
    }
    try {
      // A file written with echo ends with a newline that is not part of the secret.
      out[name] = readFile(file).replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${JSON.stringify(file)} (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return out;
}

/**
 * Parses the environment into a Config. Throws ConfigError listing every bad
 * variable at once, so an operator fixes them in one go: values that do not
 * parse and rules across variables (min > max, production rules) alike.
 * Secrets given as NAME_FILE are read with `readFile`.
 */
export function loadConfig(env: Record<string, string | undefined>, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): Config {
  const problems: string[] = [];
  // Empty strings mean "unset" (a blank line in .env), not "invalid".
  const cleaned: RawEnv = readSecretFiles(
    Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1].trim() !== '')),
    readFile,
    problems,
  );
  const invalid = new Set<string>();
  const config = build(schema, cleaned, problems, invalid) as Config;
  for (const rule of CROSS_FIELD_RULES) {
    if (rule.reads.some((name) => invalid.has(name))) continue;
    const problem = rule.check(config);
    if (problem !== undefined) problems.push(problem);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
