import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Tool } from '../../src/protocol/mcp-types.js';
import { createToolCatalog } from '../../src/chat/tool-catalog.js';

const TOOLS: Tool[] = [
  { name: 'read_text_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'write_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: false } },
  { name: 'mystery', inputSchema: { type: 'object' } },
];

describe('ToolCatalog', () => {
  it('says which tools the image marks read-only, and none before it knows the tools', async () => {
    let known: readonly Tool[] | undefined;
    const catalog = createToolCatalog({
      tools: () => known,
      acquire: () => Promise.reject(new Error('no sandbox in this test')),
    });
    // Unknown catalogue: every call may change files, so every call is followed by a snapshot.
    assert.equal(catalog.isReadOnly('read_text_file'), false);
    known = TOOLS;
    assert.equal(catalog.isReadOnly('read_text_file'), true);
    assert.equal(catalog.isReadOnly('write_file'), false);
    // No annotation is no promise.
    assert.equal(catalog.isReadOnly('mystery'), false);
    assert.equal(catalog.isReadOnly('not_a_tool'), false);
    // Another image's catalogue (a new one from the pool) is read again.
    known = [{ name: 'write_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }];
    assert.equal(catalog.isReadOnly('write_file'), true);
    assert.equal(catalog.isReadOnly('read_text_file'), false);
  });
});
