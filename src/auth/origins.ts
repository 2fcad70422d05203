import { LOOPBACK_HOSTS, hostName } from './host-guard.js';

/**
 * Browser origins allowed to talk to this server: an explicit list
 * (ALLOWED_ORIGINS, PUBLIC_URL's origin) and pages served from this machine's
 * loopback names on any port. Never compared with the request's own Host: a
 * DNS-rebinding page's Origin and Host name the attacker's host alike. A
 * request with no Origin header is not a browser's cross-site request and is
 * not affected.
 */
export interface OriginPolicy {
  /** true when the request may proceed: no Origin, or an allowed one. */
  allows(origin: string | undefined): boolean;
  /** The explicit list, for CORS. */
  readonly allowed: readonly string[];
}

const LOOPBACK = new Set<string>(LOOPBACK_HOSTS);

export function createOriginPolicy(options: { allowedOrigins: readonly string[]; publicUrl: string | undefined }): OriginPolicy {
  const allowed = new Set([...options.allowedOrigins, ...(options.publicUrl === undefined ? [] : [new URL(options.publicUrl).origin])]);
  return {
    allowed: [...allowed],
    allows(origin) {
      if (origin === undefined) return true;
      if (allowed.has(origin)) return true;
      let url: URL;
      try {
        url = new URL(origin);
      } catch {
        return false;
      }
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin && LOOPBACK.has(hostName(url.host));
    },
  };
}
