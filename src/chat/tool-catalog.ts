import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ToolSpec } from '../model/conversation.js';
import type { SandboxSource } from './sessions.js';

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
}

export function createToolCatalog(pool: SandboxSource & { tools(): readonly Tool[] | undefined }): ToolCatalog {
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
  return {
    known() {
      const tools = pool.tools();
      return tools ? spec(tools) : undefined;
    },
    get: async () => spec(await raw()),
    raw,
  };
}
