/**
 * docs/configuration.md, generated from the config schema
 * (src/config/schema.ts), the same source as .env.example: every variable,
 * its default and its meaning, section by section. `npm run docs:generate`
 * writes it; test/unit/docs.test.ts fails when the committed file is stale.
 */
import { SECRET_VARIABLES } from '../../../src/config/config.js';
import { variablesOf, type EnvVar } from '../../../src/config/env-var.js';
import { SECTIONS, schema } from '../../../src/config/schema.js';
import { table } from './markdown.js';

const capitalized = (text: string): string => `${text.charAt(0).toUpperCase()}${text.slice(1)}`;

/** The default as a reader needs it: the literal value, or what unset means. */
function defaultOf(variable: EnvVar<unknown>): string {
  if (variable.example !== undefined) return variable.example === '' ? '(empty)' : `\`${variable.example}\``;
  return variable.defaultDoc ?? 'unset';
}

function meaningOf(variable: EnvVar<unknown>): string {
  return variable.secret ? `${variable.doc} Secret: never logged; \`${variable.name}_FILE\` may name a file that holds it.` : variable.doc;
}

export function renderConfigurationDoc(): string {
  const out = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:generate`; do not edit. test/unit/docs.test.ts fails when it is stale. -->',
    '',
    'sandpool reads its settings from the environment.',
    '`npm start` also reads `.env` when there is one.',
    'Every variable is listed below with its default and its meaning.',
    '[`.env.example`](../.env.example) is generated from the same schema (`src/config/schema.ts`).',
    '',
    'A bad value stops start-up with one message.',
    'It lists every bad variable and every broken rule across variables, and the process exits with status 2.',
    'A secret is never echoed in that message.',
    '',
    '## Secrets from files (`NAME_FILE`)',
    '',
    `These variables are secrets: ${SECRET_VARIABLES.map((name) => `\`${name}\``).join(', ')}.`,
    'Each may instead be given as `NAME_FILE`, the path of a file that holds the value.',
    'That is how Docker secrets arrive: both compose files set `AUTH_SECRET_FILE=/run/secrets/auth_secret` and the like.',
    'One trailing newline in the file is dropped.',
    'Setting both `NAME` and `NAME_FILE` is an error, and so is a file that cannot be read.',
    '',
    '## Rules across variables',
    '',
    '- `POOL_MIN_SIZE` must not exceed `POOL_MAX_SIZE`.',
    '- `NODE_ENV=production` needs `AUTH_SECRET` of at least 32 bytes, refuses `POOL_RUNTIME=process`, and wants `OPERATOR_SECRET` (when set) of at least 32 bytes.',
    '- `OPERATOR_SECRET` must differ from `AUTH_SECRET`.',
    '- `WORKSPACE_STORE=redis` needs `REDIS_URL` or `WORKSPACE_REDIS_URL`.',
    '- `LLM_PROVIDER=gemini|openai|anthropic` needs that provider\'s key (an `OPENAI_BASE_URL` server may do without).',
    '',
    'Two settings start with a loud warning instead of an error:',
    '`AUTH_SECRET` without `OPERATOR_SECRET` (the operator endpoints then answer 401 to everyone),',
    'and a non-loopback `HOST` without `AUTH_SECRET` (anyone who reaches the port can act as any user).',
    '',
    '## Not in this list',
    '',
    '- The Docker socket proxy is another program with its own variables: [docs/socket-proxy.md](socket-proxy.md#variables).',
    '- `docker-compose` reads `SANDPOOL_PUBLISH`, `APP_IMAGE`, `SANDBOX_IMAGE`, `REDIS_IMAGE`, `NGINX_IMAGE` and `DOCKER_GID`: [docs/operations.md](operations.md#deploy).',
  ];
  for (const [section, title] of Object.entries(SECTIONS)) {
    const variables = variablesOf(schema[section as keyof typeof schema]).map(({ variable }) => variable);
    out.push('', `## ${capitalized(title)}`, '', ...table(['Variable', 'Default', 'Meaning'], variables.map((v) => [`\`${v.name}\``, defaultOf(v), meaningOf(v)])));
  }
  return `${out.join('\n')}\n`;
}
