import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { GENERATED_FILES } from '../../scripts/lib/docs/generated-files.js';
import { GeneratedRegionError, cell, markers, replaceRegion } from '../../scripts/lib/docs/markdown.js';
import { CONTRACT_ENV_NAMES, protocolRegions } from '../../scripts/lib/docs/protocol.js';
import { ProtocolSourceError, declarationsOf, eventsOf, referencedDeclarations } from '../../scripts/lib/docs/protocol-source.js';
import { PROJECT_ROOT } from '../../scripts/lib/results-path.js';
import { ENV_VARIABLES } from '../../src/config/config.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';

describe('generated documents (npm run docs:generate)', () => {
  for (const file of GENERATED_FILES.filter((f) => f.path !== '.env.example')) {
    it(`${file.path} is current`, () => {
      const committed = readFileSync(path.join(PROJECT_ROOT, file.path), 'utf8');
      assert.equal(committed, file.render(committed, PROJECT_ROOT), `${file.path} is stale: run npm run docs:generate`);
    });
  }

  it('docs/configuration.md names every variable the config reads, and the NAME_FILE convention', () => {
    const text = readFileSync(path.join(PROJECT_ROOT, 'docs/configuration.md'), 'utf8');
    const documented = new Set([...text.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
    assert.deepEqual(ENV_VARIABLES.filter((v) => !documented.has(v)), []);
    assert.deepEqual([...documented].filter((v) => v !== undefined && !ENV_VARIABLES.includes(v)), []);
    assert.match(text, /`NAME_FILE`/);
    assert.match(text, /socket-proxy\.md#variables/);
  });

  it('docs/protocol.md lists every error code, every client and server event, and every contract env name', () => {
    const text = readFileSync(path.join(PROJECT_ROOT, 'docs/protocol.md'), 'utf8');
    for (const code of [...ERROR_CODES, 'QUOTA_EXCEEDED']) assert.match(text, new RegExp(`^\\| \`${code}\` \\|`, 'm'), code);
    for (const event of ['message', 'tool:approval', 'tool:request', 'tool:result', 'message:delta', 'message:done', 'request:error', 'auth:expired']) {
      assert.match(text, new RegExp(`^\\| \`${event}\` \\|`, 'm'), event);
    }
    for (const name of CONTRACT_ENV_NAMES) assert.match(text, new RegExp(`^\\| \`${name}\` \\|`, 'm'), name);
  });
});

describe('reading the wire types from src/protocol', () => {
  const source = readFileSync(path.join(PROJECT_ROOT, 'src/protocol/events.ts'), 'utf8');

  it('reads each event\'s payload and ack type', () => {
    const client = eventsOf(source, 'ClientToServerEvents');
    assert.deepEqual(
      client.find((e) => e.name === 'message'),
      { name: 'message', payload: 'MessagePayload', ack: 'AckResponse<MessageAccepted>', doc: undefined },
    );
    const server = eventsOf(source, 'ServerToClientEvents');
    assert.equal(server.find((e) => e.name === 'tool:result')?.payload, 'ToolResult');
    assert.equal(server.find((e) => e.name === 'tool:result')?.ack, undefined);
  });

  it('fails on a member it cannot read, instead of leaving it out', () => {
    const changed = source.replace("  'tool:request': (p: ToolRequest) => void;", "  'tool:request'(p: ToolRequest): void;");
    assert.notEqual(changed, source);
    assert.throws(() => eventsOf(changed, 'ServerToClientEvents'), ProtocolSourceError);
    assert.throws(() => eventsOf(source, 'NoSuchEvents'), ProtocolSourceError);
  });

  it('follows payload types to the declarations they use, comments included', () => {
    const types = referencedDeclarations(declarationsOf(source), ['RequestError']).map((d) => d.name);
    assert.deepEqual(types, ['RequestError']);
    const withErrors = referencedDeclarations([...declarationsOf(source), ...declarationsOf(readFileSync(path.join(PROJECT_ROOT, 'src/protocol/errors.ts'), 'utf8'))], ['RequestError']);
    // ErrorBody's quota fields (QUOTA_EXCEEDED) bring their declarations with them, each before its user.
    assert.deepEqual(withErrors.map((d) => d.name), ['RequestError', 'ErrorCode', 'QuotaWindow', 'QuotaRefusal', 'ErrorFields', 'ErrorBody']);
    assert.match(withErrors.find((d) => d.name === 'ErrorBody')?.text ?? '', /^\/\*\* An error as clients receive it/);
  });

  it('renders every region, and a document without a region\'s markers is an error', () => {
    const regions = protocolRegions({ root: PROJECT_ROOT });
    assert.deepEqual(Object.keys(regions).sort(), ['env', 'errors', 'events', 'mcp-versions', 'not-yet', 'scripts']);
    const { start, end } = markers('errors');
    assert.equal(replaceRegion(`a\n${start}\nold\n${end}\nb\n`, 'errors', 'new'), `a\n${start}\nnew\n${end}\nb\n`);
    assert.throws(() => replaceRegion('no markers here', 'errors', 'new'), GeneratedRegionError);
  });

  it('escapes table cells: pipes, line breaks, and tags outside code', () => {
    assert.equal(cell('a | b\nc <host> `<kept>`'), 'a \\| b c &lt;host&gt; `<kept>`');
  });
});
