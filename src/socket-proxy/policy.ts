/**
 * What the Docker socket proxy lets through: exactly the calls sandpool
 * makes, and for the calls that could escape a sandbox, only their sandbox
 * form. The raw Docker socket is root on the host; this policy is what keeps
 * a compromised app from using it as such.
 */

export type Verdict = { allow: true; needsSandboxLabel?: string } | { allow: false; why: string };

/** An optional API version prefix, as dockerode sends when pinned (/v1.41/...). */
const VERSION = '(?:/v\\d+(?:\\.\\d+)?)?';
const ID = '([A-Za-z0-9][A-Za-z0-9_.-]{0,127})';

interface Rule {
  method: string;
  path: RegExp;
  /** The container id is in this capture group and must carry the sandpool label. */
  sandboxOnly?: number;
  /** The request body must pass this check. */
  body?: (body: unknown) => string | undefined;
}

/** The label every sandpool sandbox carries (src/runtime/types.ts LABELS.app = APP_LABEL_VALUE). */
export const SANDBOX_LABEL = { key: 'sandpool.app', value: 'sandpool' } as const;

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * A container create must be a sandbox: labelled, no network, no privileges,
 * nothing of the host mounted or shared, read-only root, all capabilities dropped.
 */
export function checkSandboxCreate(body: unknown): string | undefined {
  const b = record(body);
  const labels = record(b.Labels);
  if (labels[SANDBOX_LABEL.key] !== SANDBOX_LABEL.value) return `only sandboxes (label ${SANDBOX_LABEL.key}=${SANDBOX_LABEL.value}) may be created`;
  const host = record(b.HostConfig);
  if (host.Privileged === true) return 'privileged containers are refused';
  if (host.NetworkMode !== 'none') return 'sandboxes must have NetworkMode none';
  for (const field of ['Binds', 'Mounts', 'Devices', 'VolumesFrom', 'DeviceRequests', 'Links', 'ExtraHosts', 'PortBindings']) {
    const v = host[field];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) {
      return `HostConfig.${field} is refused (nothing of the host may reach a sandbox)`;
    }
  }
  for (const field of ['PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'CgroupnsMode', 'Cgroup']) {
    const v = host[field];
    if (typeof v === 'string' && v !== '' && v !== 'private' && v !== 'none') return `HostConfig.${field}=${v} is refused`;
  }
  if (Array.isArray(host.CapAdd) && host.CapAdd.length > 0) return 'adding capabilities is refused';
  if (!Array.isArray(host.CapDrop) || !host.CapDrop.includes('ALL')) return 'sandboxes must drop all capabilities';
  if (host.ReadonlyRootfs !== true) return 'sandboxes must have a read-only root filesystem';
  if (!Array.isArray(host.SecurityOpt) || !host.SecurityOpt.includes('no-new-privileges')) return 'sandboxes must run with no-new-privileges';
  if (Array.isArray(host.SecurityOpt) && host.SecurityOpt.some((o) => typeof o === 'string' && /unconfined/.test(o))) return 'unconfined security profiles are refused';
  const user = typeof b.User === 'string' ? b.User : '';
  if (user === '' || /^(0|root)(:|$)/.test(user)) return 'sandboxes must run as a non-root user';
  return undefined;
}

const RULES: readonly Rule[] = [
  { method: 'GET', path: new RegExp(`^${VERSION}/_ping$`) },
  { method: 'HEAD', path: new RegExp(`^${VERSION}/_ping$`) },
  { method: 'GET', path: new RegExp(`^${VERSION}/version$`) },
  { method: 'GET', path: new RegExp(`^${VERSION}/containers/json$`) },
  { method: 'GET', path: new RegExp(`^${VERSION}/containers/${ID}/json$`) },
  { method: 'GET', path: new RegExp(`^${VERSION}/events$`) },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/create$`), body: checkSandboxCreate },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/start$`), sandboxOnly: 1 },
  { method: 'POST', path: new RegExp(`^${VERSION}/containers/${ID}/attach$`), sandboxOnly: 1 },
  { method: 'DELETE', path: new RegExp(`^${VERSION}/containers/${ID}$`), sandboxOnly: 1 },
];

/** Whether a call is allowed (before its body, if it has one to check, is seen). */
export function judgeCall(method: string, pathname: string): { rule: Rule; containerId: string | undefined } | { rule: undefined; why: string } {
  for (const rule of RULES) {
    if (rule.method !== method) continue;
    const m = rule.path.exec(pathname);
    if (!m) continue;
    return { rule, containerId: rule.sandboxOnly === undefined ? undefined : m[rule.sandboxOnly] };
  }
  return { rule: undefined, why: `${method} ${pathname} is not a call sandpool makes` };
}
