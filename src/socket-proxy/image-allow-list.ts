import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineClient } from './engine-client.js';
import { ENGINE_API_VERSION } from './policy.js';

/**
 * The images sandboxes may be created from: the proxy's POOL_IMAGE names,
 * held as the image ids they resolve to on the engine. A body's Image (a
 * name or an id) is looked up on the engine and allowed when its id is one
 * of them; the create is forwarded with that id, so a tag moved between the
 * check and the create changes nothing.
 */
export interface ImageAllowList {
  /** Resolves every name; rejects when none resolves (the proxy then does not start). Names that do not resolve are logged. */
  load(): Promise<ReadonlyMap<string, string>>;
  /**
   * The id of the allowed image `reference` names, or undefined. On a miss the
   * names are resolved again first: an image rebuilt since (a new id behind
   * the same name) is allowed, and the id it replaced no longer is.
   */
  match(reference: string): Promise<string | undefined>;
}

export class NoAllowedImageError extends Error {
  constructor(names: readonly string[], problems: readonly string[]) {
    super(
      `none of the sandbox images in POOL_IMAGE is on the Docker engine (${names.join(', ')}): ${problems.join('; ')}. ` +
        'Build or load it first (pool/build.sh, npm run images), or set POOL_IMAGE to the images the app starts.',
    );
    this.name = 'NoAllowedImageError';
  }
}

export function createImageAllowList(options: { names: readonly string[]; engine: EngineClient; logger: Logger }): ImageAllowList {
  const { names, engine } = options;
  const log = options.logger.child({ component: 'ImageAllowList' });
  let ids = new Set<string>();

  /** The id an image reference resolves to on the engine, undefined when it names no image there. */
  async function idOf(reference: string): Promise<string | undefined> {
    // The reference is checked (create-schema.ts IMAGE_REFERENCE): letters, digits, and . _ - / : @ only.
    const answer = await engine.call('GET', `/${ENGINE_API_VERSION}/images/${reference}/json`);
    // 404: no such image; 400: not a reference the engine reads (e.g. an upper-case repository).
    if (answer.status === 404 || answer.status === 400) return undefined;
    if (answer.status !== 200) throw new Error(`the engine answered ${answer.status} to an inspect of image ${reference}: ${answer.body.toString('utf8').slice(0, 200)}`);
    const id = (JSON.parse(answer.body.toString('utf8')) as { Id?: unknown }).Id;
    return typeof id === 'string' && /^sha256:[a-f0-9]{64}$/.test(id) ? id : undefined;
  }

  async function load(): Promise<ReadonlyMap<string, string>> {
    const resolved = new Map<string, string>();
    const problems: string[] = [];
    for (const name of names) {
      try {
        const id = await idOf(name);
        if (id) resolved.set(name, id);
        else problems.push(`${name}: no such image`);
      } catch (err) {
        problems.push(`${name}: ${errorMessage(err)}`);
      }
    }
    if (resolved.size === 0) throw new NoAllowedImageError(names, problems);
    if (problems.length > 0) log.warn({ problems }, 'some sandbox images in POOL_IMAGE are not on the engine');
    ids = new Set(resolved.values());
    return resolved;
  }

  return {
    load,
    async match(reference) {
      const id = await idOf(reference);
      if (id === undefined) return undefined;
      if (ids.has(id)) return id;
      await load().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not resolve the sandbox images again'));
      return ids.has(id) ? id : undefined;
    },
  };
}
