import type { Tool } from '../protocol/mcp-types.js';
import type { ToolSpec } from '../model/conversation.js';
import type { SandboxSource } from './sandbox-leases.js';

/** The sandbox image's tools. */
export interface ToolCatalog {
  /** As the model sees them; known once any sandbox of this replica has started, undefined before. */
  known(): ToolSpec[] | undefined;
  /**
   * As the model sees them, starting one throwaway sandbox to learn them if
   * none has started yet (POOL_MIN_SIZE=0, the pool off, or still warming), so
   * a user's own sandbox is still only taken by their first tool call. Once
   * per replica: the pool remembers the catalogue.
   */
  get(): Promise<ToolSpec[]>;
  /** As the image's MCP server lists them, unchanged (names, schemas, annotations), for MCP clients. */
  raw(): Promise<readonly Tool[]>;
  /** Whether the image marks the tool read-only (readOnlyHint): it leaves the files as they were. False while the catalogue is unknown. */
  isReadOnly(name: string): boolean;
}

export function createToolCatalog(pool: Pick<SandboxSource, 'acquire'> & { tools(): readonly Tool[] | undefined }): ToolCatalog {
  const spec = (tools: readonly Tool[]): ToolSpec[] => tools.map((t) => ({ name: t.name, description: t.description ?? '', inputSchema: t.inputSchema as Record<string, unknown> }));
  let discovering: Promise<readonly Tool[]> | undefined;
  const raw = (): Promise<readonly Tool[]> => {
    const tools = pool.tools();
    if (tools) return Promise.resolve(tools);
    discovering ??= (async () => {
      const probe = await pool.acquire();
      void probe.release().catch(() => undefined);
      return pool.tools() ?? [];
    })().finally(() => (discovering = undefined));
    return discovering;
  };
  // Worked out once per catalogue (the pool learns it at its first start), not on every tool call.
  let readOnly: { of: readonly Tool[]; names: ReadonlySet<string> } | undefined;
  const readOnlyNames = (tools: readonly Tool[]): ReadonlySet<string> => {
    if (readOnly?.of !== tools) readOnly = { of: tools, names: new Set(tools.filter((t) => t.annotations?.readOnlyHint === true).map((t) => t.name)) };
    return readOnly.names;
  };
  return {
    known() {
      const tools = pool.tools();
      return tools ? spec(tools) : undefined;
    },
    get: async () => spec(await raw()),
    raw,
    isReadOnly(name) {
      const tools = pool.tools();
      return tools !== undefined && readOnlyNames(tools).has(name);
    },
  };
}
