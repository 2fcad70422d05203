import type { Tool } from '../protocol/mcp-types.js';

/** Which of the sandbox's tools MCP clients may list and call (MCP_TOOLS). */
export interface ToolPolicy {
  allows(tool: Pick<Tool, 'name' | 'annotations'>): boolean;
  /** For messages: "all", "read-only" or the names. */
  readonly describe: string;
}

export function createToolPolicy(setting: 'all' | 'read-only' | readonly string[]): ToolPolicy {
  if (setting === 'all') return { allows: () => true, describe: 'all' };
  // The image's own word on each tool: an unannotated tool is not assumed safe.
  if (setting === 'read-only') return { allows: (t) => t.annotations?.readOnlyHint === true, describe: 'read-only' };
  const names = new Set(setting);
  return { allows: (t) => names.has(t.name), describe: setting.join(',') };
}
