import os from 'node:os';

/**
 * Which `Host` a request may be addressed to. A DNS-rebinding page reaches
 * the server under the attacker's own name, so a request addressed to any
 * name not listed here is refused before anything else looks at it.
 */
export interface HostGuard {
  allows(host: string | undefined): boolean;
  /** The names allowed (besides this machine's own addresses), for logs and errors. */
  readonly names: readonly string[];
}

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'] as const;

/** The host part of a Host header (no port), lower case, IPv6 in brackets. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/** This machine's interface addresses as Host names (IPv6 bracketed). */
function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .flatMap((a) => (a ? [a.family === 'IPv6' ? `[${a.address.split('%')[0]}]` : a.address] : []));
}

export interface HostGuardOptions {
  /** ALLOWED_HOSTS. */
  allowedHosts: readonly string[];
  /** PUBLIC_URL: its host is allowed. */
  publicUrl: string | undefined;
  /**
   * This replica's own addresses: a Host that is an IP literal of this
   * machine is never a rebinding (that needs a name the attacker controls),
   * and a scraper reaching the replica by address (Prometheus through DNS
   * discovery) sends one. Default: the interfaces' addresses at start-up.
   */
  ownAddresses?: readonly string[];
}

export function createHostGuard(options: HostGuardOptions): HostGuard {
  const publicHost = options.publicUrl === undefined ? [] : [hostName(new URL(options.publicUrl).host)];
  const names = [...new Set([...LOOPBACK_HOSTS, ...publicHost, ...options.allowedHosts.map(hostName)])];
  const allowed = new Set([...names, ...(options.ownAddresses ?? interfaceAddresses())]);
  return {
    names,
    allows: (host) => host !== undefined && host !== '' && allowed.has(hostName(host)),
  };
}
