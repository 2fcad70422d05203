/**
 * npm run operator-token -- [--sub NAME] [--ttl-s S] [--out FILE [--every-s N] [--owner UID:GID]]
 *
 * Prints an operator token (HS256 JWT, scope sandpool:operator) signed with
 * OPERATOR_SECRET (the environment, OPERATOR_SECRET_FILE, .secrets/operator_secret
 * as `npm run images` writes it for the stacks, or .env), for /stats/*, /metrics and
 * /admin/*:  curl -H "Authorization: Bearer $(npm run -s operator-token)" ...
 * With --out it writes the token to FILE (mode 0600, replaced atomically),
 * and with --every-s it keeps doing so (a token refresher for Prometheus's
 * credentials_file) until SIGTERM. --owner hands the file to that user (the
 * monitoring stack's refresher runs as root to give it to Prometheus's user).
 */
import { chownSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, parseEnv } from 'node:util';
import { signOperatorToken } from '../src/auth/operator-token.js';
import { sleep } from '../src/util/async.js';

const { values } = parseArgs({
  options: {
    sub: { type: 'string', default: 'operator' },
    'ttl-s': { type: 'string', default: '3600' },
    out: { type: 'string' },
    'every-s': { type: 'string' },
    owner: { type: 'string' },
  },
});

function fail(message: string): never {
  process.stderr.write(`operator-token: ${message}\n`);
  process.exit(2);
}

function findSecret(): string | undefined {
  if (process.env.OPERATOR_SECRET) return process.env.OPERATOR_SECRET;
  const file = process.env.OPERATOR_SECRET_FILE ?? (existsSync('.secrets/operator_secret') ? '.secrets/operator_secret' : undefined);
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const envFile = path.resolve('.env');
  return existsSync(envFile) ? parseEnv(readFileSync(envFile, 'utf8')).OPERATOR_SECRET : undefined;
}
const secret = findSecret();
if (!secret) fail('no OPERATOR_SECRET (environment, OPERATOR_SECRET_FILE, .secrets/operator_secret or .env); `npm run images` generates one');
const ttlS = Number(values['ttl-s']);
if (!Number.isInteger(ttlS) || ttlS < 60) fail('--ttl-s takes whole seconds, at least 60');
const everyS = values['every-s'] === undefined ? undefined : Number(values['every-s']);
if (everyS !== undefined && (!Number.isInteger(everyS) || everyS < 1 || everyS >= ttlS)) fail('--every-s takes whole seconds, at least 1 and below --ttl-s');
if (everyS !== undefined && !values.out) fail('--every-s needs --out FILE');
const owner = values.owner === undefined ? undefined : /^(\d+):(\d+)$/.exec(values.owner);
if (owner === null) fail('--owner takes UID:GID (numbers)');
if (owner && !values.out) fail('--owner needs --out FILE');

async function writeOnce(out: string): Promise<void> {
  const token = await signOperatorToken({ secret: secret ?? '', subject: values.sub, ttlS });
  // Readers never see a half-written file.
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, token, { mode: 0o600 });
  if (owner) chownSync(tmp, Number(owner[1]), Number(owner[2]));
  renameSync(tmp, out);
}

if (!values.out) {
  process.stdout.write(`${await signOperatorToken({ secret, subject: values.sub, ttlS })}\n`);
} else if (everyS === undefined) {
  await writeOnce(values.out);
} else {
  let running = true;
  const stop = (): void => {
    running = false;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  while (running) {
    await writeOnce(values.out);
    // Short naps, so a stop is taken within a second.
    for (let waited = 0; running && waited < everyS; waited++) await sleep(1_000);
  }
}
