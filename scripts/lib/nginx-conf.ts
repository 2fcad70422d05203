/**
 * nginx in front of replicas, as `npm run cluster` runs it: the server block
 * rendered from nginx/sandpool.conf.template (the file the compose stack's
 * nginx image renders too), in a main config of its own under `dir`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface NginxConfOptions {
  /** Where the config, its temp files, pid and error log go. */
  dir: string;
  /** e.g. 127.0.0.1:3000 */
  listen: string;
  /** host:port of each replica */
  upstreams: readonly string[];
  /** limit_req rate of the HTTP API and /mcp, e.g. 30r/s */
  apiRate: string;
  /** Socket.IO connections per client address (limit_conn). */
  connPerIp: string;
  accessLog: boolean;
}

/** Writes the config; returns the main config's path (`nginx -c <it> -p <dir>`). */
export function writeNginxConf(options: NginxConfOptions): string {
  const template = readFileSync(path.join(ROOT, 'nginx/sandpool.conf.template'), 'utf8');
  const vars: Record<string, string> = {
    SANDPOOL_LISTEN: options.listen,
    SANDPOOL_UPSTREAMS: options.upstreams.map((u) => `server ${u} max_fails=1 fail_timeout=5s;`).join('\n    '),
    SANDPOOL_API_RATE: options.apiRate,
    SANDPOOL_CONN_PER_IP: options.connPerIp,
  };
  const server = template.replace(/\$\{(SANDPOOL_[A-Z_]+)\}/g, (m, key: string) => vars[key] ?? m);
  const { dir } = options;
  const tmp = path.join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o777 });
  writeFileSync(path.join(dir, 'sandpool.conf'), server);
  const main = [
    // One worker per core: besides CPU, each worker has its own file-descriptor
    // limit, and where the hard limit cannot be raised (20000 on the project's
    // machine) one worker stopped accepting at ~10000 users (2 fds each).
    'worker_processes auto;',
    'daemon off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    // Every user holds two connections here (client + upstream): 32768 per worker is ~16000 users each.
    'worker_rlimit_nofile 65536;',
    'events { worker_connections 32768; }',
    'http {',
    options.accessLog ? `  access_log ${dir}/access.log;` : '  access_log off;',
    `  client_body_temp_path ${tmp}/body;`,
    `  proxy_temp_path ${tmp}/proxy;`,
    `  fastcgi_temp_path ${tmp}/fastcgi;`,
    `  uwsgi_temp_path ${tmp}/uwsgi;`,
    `  scgi_temp_path ${tmp}/scgi;`,
    '  default_type application/octet-stream;',
    `  include ${dir}/sandpool.conf;`,
    '}',
    '',
  ].join('\n');
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, main);
  return conf;
}
