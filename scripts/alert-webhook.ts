/**
 * node dist/scripts/alert-webhook.js [--port 9095]
 *
 * The monitoring stack's Alertmanager receiver (docker-compose.monitoring.yml,
 * service alert-webhook): every alert of every notification Alertmanager
 * POSTs to /alerts is written to stdout as one JSON line
 * ({ receivedAt, status, alertname, severity, labels, annotations, startsAt }),
 * so `docker-compose logs alert-webhook` is the record of what was sent.
 * GET /alerts answers the last 200 of them; GET /health, 200. Replace it with
 * your own endpoint (or another Alertmanager receiver) in production.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9095' }, host: { type: 'string', default: '0.0.0.0' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('alert-webhook: --port takes 1-65535\n');
  process.exit(2);
}

/** Alertmanager's webhook payload (version 4), the fields used here. */
interface Notification {
  status?: string;
  alerts?: Array<{ status?: string; labels?: Record<string, string>; annotations?: Record<string, string>; startsAt?: string; endsAt?: string }>;
}

const MAX_BODY_BYTES = 1_048_576;
const KEPT = 200;
const received: Array<Record<string, unknown>> = [];

async function body(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const server = createServer((req, res) => {
  const reply = (status: number, json: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  };
  if (req.method === 'GET' && req.url === '/health') return reply(200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/alerts') return reply(200, received);
  if (req.method !== 'POST' || req.url !== '/alerts') return reply(404, { error: 'POST /alerts (Alertmanager webhook), GET /alerts, GET /health' });
  void body(req).then((text) => {
    if (text === undefined) return reply(413, { error: `larger than ${MAX_BODY_BYTES} bytes` });
    let notification: Notification;
    try {
      notification = JSON.parse(text) as Notification;
    } catch {
      return reply(400, { error: 'not JSON' });
    }
    const receivedAt = new Date().toISOString();
    for (const alert of notification.alerts ?? []) {
      const line = {
        receivedAt,
        status: alert.status ?? notification.status,
        alertname: alert.labels?.alertname,
        severity: alert.labels?.severity,
        labels: alert.labels ?? {},
        annotations: alert.annotations ?? {},
        startsAt: alert.startsAt,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      received.push(line);
      if (received.length > KEPT) received.shift();
    }
    reply(200, { received: notification.alerts?.length ?? 0 });
  });
});

server.listen(port, values.host, () => process.stderr.write(`alert-webhook: listening on ${values.host}:${port}\n`));
const stop = (): void => void server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
