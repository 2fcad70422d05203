import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { startCluster, type RunningCluster } from '../support/cluster.js';
import { testConfig, uniqueReplica } from '../support/helpers.js';

const STEP_MS = 20_000;

/** Debian's Chromium, headless, driven by playwright-core. */
function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Paths (no query) of every request a page makes, in order. */
function requestedPaths(page: Page): string[] {
  const paths: string[] = [];
  page.on('request', (req) => void paths.push(new URL(req.url()).pathname));
  return paths;
}

/** Console errors and uncaught exceptions of a page (CSP violations land here too). */
function watch(page: Page, label: string, problems: string[]): void {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`[${label}] console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`[${label}] pageerror: ${err.message}`));
  // Names the resource behind a "Failed to load resource" console error.
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`[${label}] HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
  });
}

/** Types a message, sends it with Enter, and returns the new turn. */
async function send(page: Page, text: string): Promise<Locator> {
  const turns = page.locator('#conversation .turn');
  const before = await turns.count();
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
  const turn = turns.nth(before);
  await turn.waitFor({ timeout: STEP_MS });
  return turn;
}

async function connectAs(page: Page, userId: string, replica: string): Promise<void> {
  await page.fill('#user-id', userId);
  await page.fill('#token', '');
  await page.click('#connect');
  await page.locator('#conn-status[data-state="connected"]').waitFor({ timeout: STEP_MS });
  assert.match(await text(page.locator('#conn-status')), new RegExp(`replica ${replica}`));
}

async function text(locator: Locator): Promise<string> {
  return (await locator.textContent({ timeout: STEP_MS })) ?? '';
}

describe('the chat page in a real browser', () => {
  let app: Sandpool;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  let requested: string[] = [];
  const userId = uniqueReplica('browser');

  before(async () => {
    app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1' }), { warmTimeoutMs: 30_000 });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    watch(page, 'tab 1', problems);
    requested = requestedPaths(page);
    await page.goto(app.url);
  });

  after(async () => {
    await browser?.close();
    await app?.stop('test done');
  });

  it('prefills a random user id and shows a refused connection with its code and message', async () => {
    assert.match(await page.inputValue('#user-id'), /^user-[0-9a-f]{6}$/);
    await page.fill('#user-id', 'not a valid id!');
    await page.click('#connect');
    await page.locator('#conn-status[data-state="error"]').waitFor({ timeout: STEP_MS });
    assert.match(await text(page.locator('#conn-status')), /UNAUTHORIZED/);
    const error = page.locator('#error-line');
    await error.waitFor({ state: 'visible' });
    assert.match(await text(error), /UNAUTHORIZED/);
    assert.match(await text(error), /userId is required/);
  });

  it('connects and shows replica, provider/model, tools and the in-flight limit from the session event', async () => {
    await connectAs(page, userId, app.config.server.replicaId);
    assert.equal(await page.locator('#error-line').isHidden(), true, 'the old error is cleared on connect');
    assert.equal(await text(page.locator('#session-model')), 'local · local-planner');
    assert.match(await text(page.locator('#tool-list')), /list_directory/);
    assert.equal(await text(page.locator('#inflight')), `0 / ${app.config.chat.maxRequestsPerUser} in flight`);
  });

  it('shows how to reach the same sandbox from any MCP client: the endpoint and a client configuration that works', async () => {
    assert.equal(await text(page.locator('#mcp-url')), `${app.url}/mcp`);
    const config = JSON.parse(await text(page.locator('#mcp-config'))) as { mcpServers: { sandpool: { url: string; headers: { Authorization: string } } } };
    assert.deepEqual(config.mcpServers.sandpool, { type: 'http', url: `${app.url}/mcp`, headers: { Authorization: `Bearer ${userId}` } });
    // The configuration as shown answers: a development server takes the bearer as the user.
    const res = await fetch(config.mcpServers.sandpool.url, {
      method: 'POST',
      headers: { authorization: config.mcpServers.sandpool.headers.Authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /list_directory/);
  });

  it('a refused message shows the ack error code and message on its turn and in the error line', async () => {
    const limit = app.config.chat.maxMessageBytes;
    const turn = await send(page, 'x'.repeat(limit + 1));
    const error = turn.locator('.request-error');
    await error.waitFor({ timeout: STEP_MS });
    assert.equal(await text(error.locator('.error-code')), 'PAYLOAD_TOO_LARGE');
    assert.match(await text(error.locator('.error-message')), new RegExp(`limit is ${limit}`));
    assert.match(await text(page.locator('#error-line')), /PAYLOAD_TOO_LARGE/);
    assert.match(await text(page.locator('#inflight')), /^0 \/ \d+ in flight$/);
    await page.click('#error-dismiss');
    assert.equal(await page.locator('#error-line').isHidden(), true);
  });

  it('list files: an approval card with the tool and its arguments; Approve runs it; the answer follows', async () => {
    const turn = await send(page, 'list files in /workspace');
    assert.equal(await text(turn.locator('.msg.user .bubble')), 'list files in /workspace');
    const card = turn.locator('.tool-card');
    await card.waitFor({ timeout: STEP_MS });
    assert.equal(await text(card.locator('.tool-name')), 'list_directory');
    assert.deepEqual(JSON.parse(await text(card.locator('.tool-args'))), { path: '/workspace' });
    assert.match(await text(page.locator('#inflight')), /^1 \/ \d+ in flight$/);

    await card.locator('[data-action=approve]').click();
    await turn.locator('.tool-card[data-state="ok"]').waitFor({ timeout: STEP_MS });
    assert.equal(await text(card.locator('.tool-result [data-testid="result-status"]')), 'ok');
    assert.match(await text(card.locator('.tool-result .duration')), /\d+(\.\d+)? m?s/);
    assert.equal(await text(card.locator('.tool-decision')), 'Approved');
    assert.equal(await card.locator('[data-action=approve]').isDisabled(), true);
    assert.equal(await card.locator('[data-action=deny]').isDisabled(), true);

    const answer = turn.locator('.assistant.final');
    await answer.waitFor({ timeout: STEP_MS });
    assert.match(await text(answer), /list_directory/);
    assert.equal(await turn.getAttribute('data-state'), 'done');
    assert.match(await text(page.locator('#inflight')), /^0 \/ \d+ in flight$/);
  });

  it('write then read: the file written in the sandbox is read back', async () => {
    const write = await send(page, 'write "hello browser" to /workspace/b.txt');
    const writeCard = write.locator('.tool-card');
    await writeCard.waitFor({ timeout: STEP_MS });
    assert.equal(await text(writeCard.locator('.tool-name')), 'write_file');
    assert.deepEqual(JSON.parse(await text(writeCard.locator('.tool-args'))), { path: '/workspace/b.txt', content: 'hello browser' });
    await writeCard.locator('[data-action=approve]').click();
    await write.locator('.tool-card[data-state="ok"]').waitFor({ timeout: STEP_MS });
    await write.locator('.assistant.final').waitFor({ timeout: STEP_MS });

    const read = await send(page, 'read /workspace/b.txt');
    const readCard = read.locator('.tool-card');
    await readCard.waitFor({ timeout: STEP_MS });
    assert.match(await text(readCard.locator('.tool-name')), /^read_(text_)?file$/);
    await readCard.locator('[data-action=approve]').click();
    await read.locator('.tool-card[data-state="ok"]').waitFor({ timeout: STEP_MS });
    assert.match(await text(readCard.locator('.tool-content')), /hello browser/);
    const answer = read.locator('.assistant.final');
    await answer.waitFor({ timeout: STEP_MS });
    assert.match(await text(answer), /hello browser/);
  });

  it('Deny: the card says denied, nothing runs, the answer says so; markup in messages stays text', async () => {
    const payload = '<img src=x onerror="window.__xss=1">';
    const turn = await send(page, `write "${payload}" to /workspace/evil.html`);
    assert.equal(await text(turn.locator('.msg.user .bubble')), `write "${payload}" to /workspace/evil.html`);
    const card = turn.locator('.tool-card');
    await card.waitFor({ timeout: STEP_MS });
    assert.equal((JSON.parse(await text(card.locator('.tool-args'))) as { content: string }).content, payload);
    await card.locator('[data-action=deny]').click();
    await turn.locator('.tool-card[data-state="denied"]').waitFor({ timeout: STEP_MS });
    assert.equal(await text(card.locator('.tool-decision')), 'Denied');
    assert.equal(await text(card.locator('.tool-result [data-testid="result-status"]')), 'not run');
    assert.match(await text(card.locator('.tool-content')), /denied/);
    const answer = turn.locator('.assistant.final');
    await answer.waitFor({ timeout: STEP_MS });
    assert.match(await text(answer), /not run/);
    assert.equal(await page.locator('#conversation img').count(), 0, 'no element was created from message text');
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
  });

  it('a second tab of the same user sees the call and the decision made in the first tab', async () => {
    const tab2 = await context.newPage();
    watch(tab2, 'tab 2', problems);
    try {
      await tab2.goto(app.url);
      assert.equal(await tab2.inputValue('#user-id'), userId, 'the user id is remembered (localStorage)');
      await tab2.click('#connect');
      await tab2.locator('#conn-status[data-state="connected"]').waitFor({ timeout: STEP_MS });

      const turn = await send(page, 'tree /workspace');
      const card = turn.locator('.tool-card');
      await card.waitFor({ timeout: STEP_MS });
      // Tab 2 learns of the request from its tool:request alone.
      const otherCard = tab2.locator('.tool-card[data-tool="directory_tree"]');
      await otherCard.waitFor({ timeout: STEP_MS });
      assert.equal(await otherCard.locator('[data-action=approve]').isEnabled(), true);
      // ... and shows what the user typed in tab 1 (message:accepted).
      assert.equal(await text(tab2.locator('.turn.from-other-tab .msg.user .bubble').last()), 'tree /workspace');

      // A tab opened while the call waits shows it from the session's pending list.
      const tab3 = await context.newPage();
      watch(tab3, 'tab 3', problems);
      await tab3.goto(app.url);
      await tab3.click('#connect');
      const lateCard = tab3.locator('.tool-card[data-tool="directory_tree"]');
      await lateCard.waitFor({ timeout: STEP_MS });
      assert.equal(await lateCard.locator('[data-action=approve]').isEnabled(), true);

      await card.locator('[data-action=approve]').click();
      // Both other tabs lock their buttons as soon as the decision is made (tool:decided).
      await tab3.locator('.tool-card[data-tool="directory_tree"] .tool-decision', { hasText: /another tab/ }).waitFor({ timeout: STEP_MS });
      assert.equal(await lateCard.locator('[data-action=approve]').isDisabled(), true);
      await tab3.close();
      await tab2.locator('.tool-card[data-tool="directory_tree"][data-state="ok"]').waitFor({ timeout: STEP_MS });
      assert.equal(await text(otherCard.locator('.tool-decision')), 'Approved in another tab');
      assert.equal(await otherCard.locator('[data-action=approve]').isDisabled(), true);
      await tab2.locator('.assistant.final').waitFor({ timeout: STEP_MS });
      await turn.locator('.assistant.final').waitFor({ timeout: STEP_MS });
      assert.match(await text(tab2.locator('#inflight')), /^0 \/ \d+ in flight$/);
    } finally {
      await tab2.close();
    }
  });

  it('the pool panel shows live numbers from the public GET /status (never the internal /stats/)', async () => {
    const panel = page.locator('#pool-panel');
    const shares = ['#pool-in-use', '#pool-warm', '#pool-starting', '#pool-free'];
    // This user's session holds a sandbox: some of the pool is in use (the panel polls every 2 s).
    await page.waitForFunction(() => /^[1-9]\d*%$/.test(document.getElementById('pool-in-use')?.textContent ?? ''), undefined, { timeout: STEP_MS });
    let sum = 0;
    for (const id of shares) {
      const value = await text(panel.locator(id));
      assert.match(value, /^\d+%$/, id);
      sum += Number.parseInt(value, 10);
    }
    assert.equal(sum, 100);
    const status = (await (await fetch(`${app.url}/status?uid=${userId}`)).json()) as { status: string; sandboxes: { inUse: number } };
    assert.equal(await text(panel.locator('#pool-ready')), status.status);
    assert.equal(await text(panel.locator('#pool-in-use')), `${status.sandboxes.inUse}%`);
    assert.match(await text(panel.locator('#pool-waiting')), /^(none|a few|many)$/);
    assert.match(await text(panel.locator('#pool-instant')), /^(yes|no)$/);
    assert.match(await text(panel.locator('#pool-updated')), /^updated /);
    assert.equal(await panel.locator('#pool-slots .slot').count(), 10, 'one square per tenth');
    assert.ok(requested.some((p) => p === '/status'), 'the panel polls /status');
    assert.deepEqual(requested.filter((p) => p.startsWith('/stats')), []);
  });

  it('saves a screenshot, and the page logged no console errors or exceptions (CSP included)', async () => {
    await mkdir('test-output', { recursive: true });
    // The page is an app shell (the conversation scrolls inside it): a taller window shows more of it.
    await page.setViewportSize({ width: 1280, height: 1400 });
    await page.locator('#conversation').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await page.screenshot({ path: 'test-output/browser-chat.png', fullPage: true });
    assert.deepEqual(problems, []);
  });
});

/**
 * A TCP relay on loopback whose connections reach `port` from `localAddress`:
 * to nginx, a browser behind it is a client at that address. 127.0.0.2 is on
 * this machine (all of 127.0.0.0/8 is loopback) but another client than
 * 127.0.0.1: it stands for any user outside the deployment's network.
 */
async function relayFrom(localAddress: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port, localAddress });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the chat page through nginx, for a user at another address', () => {
  let cluster: RunningCluster;
  let relay: Awaited<ReturnType<typeof relayFrom>>;
  let browser: Browser;
  let page: Page;
  let requested: string[] = [];
  const problems: string[] = [];
  const userId = uniqueReplica('nginx-user');

  before(async () => {
    cluster = await startCluster(2, { POOL_MIN_SIZE: '1', POOL_MAX_SIZE: '4' });
    relay = await relayFrom('127.0.0.2', Number(new URL(cluster.state.url).port));
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page, 'via nginx', problems);
    requested = requestedPaths(page);
    await page.goto(relay.url);
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
    await cluster?.stop();
  });

  it('nginx decides nothing by address: /stats/ and /metrics get the app\'s own answer from that address too, and /status serves', async () => {
    // This cluster runs without AUTH_SECRET (development): the app leaves the
    // operator endpoints open, whoever asks. With AUTH_SECRET they need an
    // operator token from every address (trust.test.ts, test/deploy).
    assert.equal((await fetch(`${relay.url}/stats/pool`)).status, 200);
    assert.equal((await fetch(`${relay.url}/metrics`)).status, 200);
    const status = await fetch(`${relay.url}/status`);
    assert.equal(status.status, 200);
    assert.equal(((await status.json()) as { ready: boolean }).ready, true);
    const template = await readFile('nginx/sandpool.conf.template', 'utf8');
    assert.doesNotMatch(template, /^\s*(allow|deny)\s/m, 'the template decides by address again');
    assert.match(template, /proxy_set_header X-Forwarded-Host \$host;/, 'nginx sets X-Forwarded-Host itself');
    assert.doesNotMatch(template, /\$http_x_forwarded_host/, 'a client\'s X-Forwarded-Host is passed on');
  });

  it('the pool panel shows live numbers from /status of the user\'s own replica (no 403, nothing unavailable)', async () => {
    await page.waitForFunction(() => /^\d+%$/.test(document.getElementById('pool-free')?.textContent ?? ''), undefined, { timeout: STEP_MS });
    assert.equal(await text(page.locator('#pool-ready')), 'ready');
    assert.doesNotMatch(await text(page.locator('#pool-panel')), /unavailable|403/);

    await page.fill('#user-id', userId);
    await page.click('#connect');
    await page.locator('#conn-status[data-state="connected"]').waitFor({ timeout: STEP_MS });
    const turn = await send(page, 'list files in /workspace');
    await turn.locator('.tool-card [data-action=approve]').click();
    await turn.locator('.assistant.final').waitFor({ timeout: STEP_MS });

    // The user's sandbox is leased on their replica only: the panel (polled with ?uid=,
    // which nginx routes like the user's sockets) shows that replica's pool in use.
    const home = await text(page.locator('#session-replica'));
    const activeOn = async (id: string): Promise<number> => {
      const r = cluster.state.replicas.find((x) => x.id === id);
      assert.ok(r, `unknown replica ${id}`);
      return ((await (await fetch(`${r.url}/stats/pool`)).json()) as { active: number }).active;
    };
    assert.ok((await activeOn(home)) >= 1);
    for (const other of cluster.state.replicas.filter((r) => r.id !== home)) assert.equal(await activeOn(other.id), 0, other.id);
    await page.waitForFunction(() => /^[1-9]\d*%$/.test(document.getElementById('pool-in-use')?.textContent ?? ''), undefined, { timeout: STEP_MS });
    assert.match(await text(page.locator('#pool-updated')), /^updated /);
    assert.doesNotMatch(await text(page.locator('#pool-panel')), /unavailable|403/);
    assert.ok(requested.includes('/status'));
    assert.deepEqual(requested.filter((p) => p.startsWith('/stats')), []);
  });

  it('the page logged no console errors, failed requests or CSP violations through nginx', async () => {
    await mkdir('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/browser-chat-nginx.png', fullPage: true });
    assert.deepEqual(problems, []);
  });
});
