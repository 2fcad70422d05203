import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalPlanner } from '../../src/agent/local-planner.js';
import type { AssistantTurn, ToolSpec } from '../../src/agent/types.js';

const FILESYSTEM_TOOLS: ToolSpec[] = ['list_directory', 'read_text_file', 'write_file', 'search_files', 'directory_tree', 'create_directory'].map((name) => ({
  name,
  description: '',
  inputSchema: { type: 'object' },
}));

async function plan(text: string, tools: ToolSpec[] = FILESYSTEM_TOOLS): Promise<AssistantTurn> {
  return createLocalPlanner().complete({ system: '', messages: [{ role: 'user', text }], tools, signal: new AbortController().signal });
}

async function call(text: string): Promise<{ name: string; arguments: Record<string, unknown> }> {
  const turn = await plan(text);
  assert.equal(turn.toolCalls.length, 1, `one tool call for ${JSON.stringify(text)}: ${turn.text}`);
  const [c] = turn.toolCalls;
  return { name: c!.name, arguments: c!.arguments };
}

describe('local planner: the contract\'s repertoire, case-insensitively', () => {
  it('lists directories', async () => {
    for (const text of ['list files in /workspace', 'List all files in /workspace', 'LIST FILES IN /workspace', 'please list all files in /workspace?']) {
      assert.deepEqual(await call(text), { name: 'list_directory', arguments: { path: '/workspace' } }, text);
    }
  });

  it('reads, writes, searches and shows trees', async () => {
    assert.deepEqual(await call('READ /workspace/a.txt'), { name: 'read_text_file', arguments: { path: '/workspace/a.txt' } });
    assert.deepEqual(await call('Write "hello world" to /workspace/a.txt'), {
      name: 'write_file',
      arguments: { path: '/workspace/a.txt', content: 'hello world' },
    });
    assert.deepEqual(await call('Search needle IN /workspace'), { name: 'search_files', arguments: { path: '/workspace', pattern: '**/*needle*' } });
    assert.deepEqual(await call('search *.txt in /workspace/docs'), { name: 'search_files', arguments: { path: '/workspace/docs', pattern: '*.txt' } });
    assert.deepEqual(await call('Tree /workspace'), { name: 'directory_tree', arguments: { path: '/workspace' } });
  });

  it('takes relative paths from /workspace', async () => {
    assert.deepEqual(await call('list files in .'), { name: 'list_directory', arguments: { path: '/workspace' } });
    assert.deepEqual(await call('read notes.txt'), { name: 'read_text_file', arguments: { path: '/workspace/notes.txt' } });
    assert.deepEqual(await call('search a in b in /workspace'), { name: 'search_files', arguments: { path: '/workspace', pattern: '**/*a in b*' } });
  });

  it('falls back to read_file for servers without read_text_file', async () => {
    const tools = FILESYSTEM_TOOLS.filter((t) => t.name !== 'read_text_file').concat({ name: 'read_file', description: '', inputSchema: {} });
    const turn = await plan('read /workspace/a.txt', tools);
    assert.equal(turn.toolCalls[0]?.name, 'read_file');
  });

  it('answers help with its commands and the sandbox tools, and anything else helpfully without a tool call', async () => {
    const help = await plan('Help');
    assert.equal(help.toolCalls.length, 0);
    assert.match(help.text, /not a language model/);
    for (const tool of FILESYSTEM_TOOLS) assert.match(help.text, new RegExp(tool.name));
    const other = await plan('what is the weather like?');
    assert.equal(other.toolCalls.length, 0);
    assert.match(other.text, /didn't recognise/);
    assert.match(other.text, /list files in \/workspace/);
    const missing = await plan('tree /workspace', FILESYSTEM_TOOLS.filter((t) => t.name !== 'directory_tree'));
    assert.equal(missing.toolCalls.length, 0);
    assert.match(missing.text, /no directory_tree tool/);
  });
});
