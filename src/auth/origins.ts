import type { IncomingHttpHeaders } from 'node:http';

/**
 * Browser origins allowed to talk to this server: its own (scheme and Host of
 * the request, as nginx forwards them) and ALLOWED_ORIGINS. A request with no
 * Origin header is not a browser's cross-site request and is not affected.
 */
export interface OriginPolicy {
  /** true when the request may proceed: no Origin, the server's own, or an allowed one. */
  allows(origin: string | undefined, headers: IncomingHttpHeaders, encrypted: boolean): boolean;
  /** The allowed list (besides same-origin), for CORS. */
  readonly allowed: readonly string[];
}

function first(value: string | string[] | undefined): string | undefined {
  return (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim();
}

/** The origin a request was addressed to, as nginx forwards it (scheme and Host, port included). */
export function requestOrigin(headers: Headers | IncomingHttpHeaders, encrypted: boolean): string {
  const get = (name: string): string | undefined => (headers instanceof Headers ? (headers.get(name) ?? undefined) : first(headers[name]));
  const host = first(get('x-forwarded-host')) ?? first(get('host')) ?? 'localhost';
  const proto = first(get('x-forwarded-proto')) ?? (encrypted ? 'https' : 'http');
  return `${proto}://${host}`;
}

export function createOriginPolicy(allowedOrigins: readonly string[]): OriginPolicy {
  const allowed = new Set(allowedOrigins);
  return {
    allowed: [...allowed],
    allows(origin, headers, encrypted) {
      if (origin === undefined) return true;
      if (allowed.has(origin)) return true;
      return headers.host !== undefined && origin === requestOrigin(headers, encrypted);
    },
  };
}
