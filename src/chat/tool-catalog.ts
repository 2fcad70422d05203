import type { ToolSpec } from '../model/conversation.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { SandboxSource } from './sessions.js';

/** The sandbox image's tools, as the model sees them. */
export interface ToolCatalog {
  /** Known once any sandbox of this replica has started; undefined before. */
  known(): ToolSpec[] | undefined;
  /**
   * The tools, starting one throwaway sandbox to learn them if none has started
   * yet (POOL_MIN_SIZE=0, the pool off, or still warming), so a user's own
   * sandbox is still only taken by their first tool call. Once per replica:
   * the pool remembers the catalogue.
   */
  get(): Promise<ToolSpec[]>;
}

export function createToolCatalog(pool: SandboxSource & { tools(): readonly Tool[] | undefined }): ToolCatalog {
  const known = (): ToolSpec[] | undefined =>
    pool.tools()?.map((t) => ({ name: t.name, description: t.description ?? '', inputSchema: t.inputSchema as Record<string, unknown> }));
  let discovering: Promise<ToolSpec[]> | undefined;
  return {
    known,
    get() {
      const tools = known();
      if (tools) return Promise.resolve(tools);
      discovering ??= (async () => {
        const probe = await pool.acquire();
        void probe.release().catch(() => undefined);
        return known() ?? [];
      })().finally(() => (discovering = undefined));
      return discovering;
    },
  };
}
