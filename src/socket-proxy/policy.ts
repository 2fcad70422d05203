/**
 * What the Docker socket proxy lets through: exactly the calls sandpool
 * makes, each rebuilt by the proxy (its path, its query, its body) from the
 * parts it checked, and for the calls that could reach beyond a sandbox only
 * their sandbox form. The raw Docker socket is root on the host; this policy
 * is what keeps a compromised app from using it as such.
 */
import { APP_LABEL_VALUE, LABELS } from '../runtime/types.js';
import { PolicyRefusal } from './refusal.js';
import { StrictJsonError, parseStrictJson } from './strict-json.js';

/**
 * Every call goes to the engine under this API version, whatever the
 * client's path says: older versions change what a create means (below 1.41
 * an unset cgroup namespace is the host's on cgroup v1, below 1.40 the IPC
 * namespace is shareable, below 1.24 start takes a HostConfig).
 */
export const ENGINE_API_VERSION = 'v1.41';

/** The label every sandpool sandbox carries (src/runtime/types.ts). */
export const SANDBOX_LABEL = { key: LABELS.app, value: APP_LABEL_VALUE } as const;

/**
 * The label of the app's own replica containers (the compose files set it).
 * The orphan sweep asks whether a sandbox's owner container still runs; for
 * a container with this label the proxy answers its state, and nothing else.
 */
export const REPLICA_LABEL = { key: 'sandpool.role', value: 'replica' } as const;

export type SandboxAction = 'start' | 'attach' | 'remove' | 'pause' | 'unpause';

export type Route =
  | { kind: 'ping'; method: 'GET' | 'HEAD' }
  | { kind: 'version' }
  | { kind: 'list' }
  | { kind: 'inspect'; id: string }
  | { kind: 'events' }
  | { kind: 'create' }
  | { kind: 'sandbox'; action: SandboxAction; id: string };

/** An optional API version prefix, as dockerode sends when pinned (/v1.41/...): dropped, see ENGINE_API_VERSION. */
const VERSION = '(?:/v\\d+(?:\\.\\d+)?)?';
/** A container id, id prefix or name. */
const ID = '([A-Za-z0-9][A-Za-z0-9_.-]{0,199})';

const ROUTES: ReadonlyArray<{ method: string; path: RegExp; route: (id: string) => Route }> = [
  { method: 'GET', path: new RegExp(`^${VERSION}/_ping$`), route: () => ({ kind: 'ping', method: 'GET' }) },
  { method: 'HEAD', path: new RegExp(`^${VERSION}/_ping$`), route: () => ({ kind: 'ping', method: 'HEAD' }) },
  { method: 'GET', path: new RegExp(`^${VERSION}/version$`), route: () => ({ kind: 'version' }) },
  { method: 'GET', path: new RegExp(`^${VERSION}/containers/json$`), route: () => ({ kind: 'list' }) },
  { method: 'GET', path: new RegExp(`^${VERSION}/containers/${ID}/json$`), route: (id) => ({ kind: 'inspect', id }) },
  { method: 'GET', path: new RegExp(`^${VERSION}/events$`), route: () => ({ kind: 'events' }) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/create$`), route: () => ({ kind: 'create' }) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/start$`), route: (id) => ({ kind: 'sandbox', action: 'start', id }) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/attach$`), route: (id) => ({ kind: 'sandbox', action: 'attach', id }) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/pause$`), route: (id) => ({ kind: 'sandbox', action: 'pause', id }) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/unpause$`), route: (id) => ({ kind: 'sandbox', action: 'unpause', id }) },
  { method: 'DELETE', path: new RegExp(`^${VERSION}/containers/${ID}$`), route: (id) => ({ kind: 'sandbox', action: 'remove', id }) },
];

/** The call a request is, or a PolicyRefusal (403) when it is not one sandpool makes. */
export function routeOf(method: string, pathname: string): Route {
  for (const { method: m, path, route } of ROUTES) {
    if (m !== method) continue;
    const match = path.exec(pathname);
    if (match) return route(match[1] ?? '');
  }
  throw new PolicyRefusal(`${method} ${pathname} is not a call sandpool makes`, 403);
}

/** The one value of a query parameter; a parameter given twice is refused (readers differ on which one counts). */
function single(params: URLSearchParams, key: string): string | undefined {
  const values = params.getAll(key);
  if (values.length > 1) throw new PolicyRefusal(`the query parameter ${key} is given ${values.length} times`, 400);
  return values[0];
}

/** As the engine reads a boolean parameter (httputils.BoolValue): false for "", 0, no, false, none. */
function engineBool(value: string): boolean {
  return !['', '0', 'no', 'false', 'none'].includes(value.trim().toLowerCase());
}

function booleans(params: URLSearchParams, keys: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const key of keys) {
    const value = single(params, key);
    if (value !== undefined) out.push([key, engineBool(value) ? '1' : '0']);
  }
  return out;
}

const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;

/** The create's `name` query parameter, checked (the engine reads the name from the query only). */
export function createName(params: URLSearchParams): string | undefined {
  const name = single(params, 'name');
  if (name === undefined) return undefined;
  if (!CONTAINER_NAME.test(name)) throw new PolicyRefusal('name: a container name is 1-200 letters, digits, and _ . - (starting with a letter or digit)', 400);
  return name;
}

/** Filter keys a client may use (each narrows; the proxy adds the sandbox label). */
const LIST_FILTERS = ['label', 'status', 'name', 'id'] as const;
const EVENT_FILTERS = ['type', 'event', 'label', 'container'] as const;

/**
 * A `filters` parameter with the sandbox label added: the engine ANDs label
 * filters (every one must match), so the client's own filters can only
 * narrow what it sees to fewer sandboxes. Read strictly and re-serialized.
 */
export function sandboxFilters(raw: string | undefined, allowedKeys: readonly string[], forced: Readonly<Record<string, readonly string[]>> = {}): string {
  const filters = new Map<string, string[]>();
  if (raw !== undefined && raw.trim() !== '') {
    let node;
    try {
      node = parseStrictJson(raw, { maxDepth: 3 });
    } catch (err) {
      throw new PolicyRefusal(`filters: ${err instanceof StrictJsonError ? err.message : 'not JSON'}`, 400);
    }
    if (node.kind !== 'object') throw new PolicyRefusal('filters must be a JSON object', 400);
    for (const { key, value } of node.entries) {
      if (!allowedKeys.includes(key)) throw new PolicyRefusal(`filters: ${JSON.stringify(key)} is not allowed (only ${allowedKeys.join(', ')})`, 400);
      let values: string[];
      if (value.kind === 'array' && value.items.every((v) => v.kind === 'string')) {
        values = value.items.map((v) => (v.kind === 'string' ? v.value : ''));
      } else if (value.kind === 'object' && value.entries.every((e) => e.value.kind === 'boolean' && e.value.value)) {
        // The engine's older form: {"label": {"a=b": true}}.
        values = value.entries.map((e) => e.key);
      } else {
        throw new PolicyRefusal(`filters.${key} must be a list of strings`, 400);
      }
      filters.set(key, [...new Set(values)]);
    }
  }
  for (const [key, values] of Object.entries(forced)) {
    const asked = filters.get(key);
    if (asked && asked.some((v) => !values.includes(v))) throw new PolicyRefusal(`filters.${key} may only be ${values.join(', ')}`, 403);
    filters.set(key, [...values]);
  }
  const label = `${SANDBOX_LABEL.key}=${SANDBOX_LABEL.value}`;
  filters.set('label', [...new Set([...(filters.get('label') ?? []), label])]);
  return JSON.stringify(Object.fromEntries(filters));
}

const TIMESTAMP = /^[0-9]{1,12}(?:\.[0-9]{1,9})?$/;

/**
 * The query forwarded for a call, rebuilt from the client's: only the
 * parameters the call needs, each checked; any other parameter is dropped
 * (dockerode repeats a create's whole body and attach's `hijack` there).
 */
export function upstreamQuery(route: Route, params: URLSearchParams): string {
  const out: Array<[string, string]> = [];
  switch (route.kind) {
    case 'list': {
      out.push(...booleans(params, ['all']));
      const limit = single(params, 'limit');
      if (limit !== undefined) {
        if (!/^[1-9][0-9]{0,4}$/.test(limit)) throw new PolicyRefusal('limit must be a whole number from 1 to 99999', 400);
        out.push(['limit', limit]);
      }
      out.push(['filters', sandboxFilters(single(params, 'filters'), LIST_FILTERS)]);
      break;
    }
    case 'events': {
      for (const key of ['since', 'until']) {
        const value = single(params, key);
        if (value === undefined) continue;
        if (!TIMESTAMP.test(value)) throw new PolicyRefusal(`${key} must be a Unix time in seconds`, 400);
        out.push([key, value]);
      }
      out.push(['filters', sandboxFilters(single(params, 'filters'), EVENT_FILTERS, { type: ['container'] })]);
      break;
    }
    case 'create': {
      const name = createName(params);
      if (name !== undefined) out.push(['name', name]);
      break;
    }
    case 'sandbox':
      if (route.action === 'attach') out.push(...booleans(params, ['stream', 'stdin', 'stdout', 'stderr', 'logs']));
      if (route.action === 'remove') out.push(...booleans(params, ['force', 'v']));
      break;
    default:
      break;
  }
  return new URLSearchParams(out).toString();
}

/** The path (and query) the proxy calls the engine with for a route; `id` is the resolved full id for sandbox calls. */
export function upstreamPath(route: Route, query: string, id?: string): string {
  const v = `/${ENGINE_API_VERSION}`;
  const q = query === '' ? '' : `?${query}`;
  const target = encodeURIComponent(id ?? ('id' in route ? route.id : ''));
  switch (route.kind) {
    case 'ping':
      return `${v}/_ping`;
    case 'version':
      return `${v}/version`;
    case 'list':
      return `${v}/containers/json${q}`;
    case 'inspect':
      return `${v}/containers/${target}/json`;
    case 'events':
      return `${v}/events${q}`;
    case 'create':
      return `${v}/containers/create${q}`;
    case 'sandbox':
      return route.action === 'remove' ? `${v}/containers/${target}${q}` : `${v}/containers/${target}/${route.action}${q}`;
  }
}

/** The labels of an engine inspect answer. */
function labelsOf(info: unknown): Record<string, unknown> {
  const config = typeof info === 'object' && info !== null ? (info as { Config?: unknown }).Config : undefined;
  const labels = typeof config === 'object' && config !== null ? (config as { Labels?: unknown }).Labels : undefined;
  return typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>) : {};
}

export function isSandboxInfo(info: unknown): boolean {
  return labelsOf(info)[SANDBOX_LABEL.key] === SANDBOX_LABEL.value;
}

/**
 * What a client sees of an engine's inspect answer: a sandbox's document
 * without its environment (Config.Env); of a replica container (REPLICA_LABEL)
 * its id, name and state only; of anything else nothing (undefined: the
 * proxy answers 404, as for a container that does not exist).
 */
export function redactInspect(info: unknown): Record<string, unknown> | undefined {
  if (typeof info !== 'object' || info === null) return undefined;
  const doc = info as Record<string, unknown>;
  if (isSandboxInfo(doc)) {
    const config = { ...(doc.Config as Record<string, unknown>) };
    delete config.Env;
    return { ...doc, Config: config };
  }
  if (labelsOf(doc)[REPLICA_LABEL.key] === REPLICA_LABEL.value) {
    const state = typeof doc.State === 'object' && doc.State !== null ? (doc.State as Record<string, unknown>) : {};
    return { Id: doc.Id, Name: doc.Name, State: { Status: state.Status, Running: state.Running } };
  }
  return undefined;
}
