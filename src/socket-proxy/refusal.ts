/**
 * A call the socket proxy will not pass on, and the HTTP status it answers
 * with. The proxy is a program of its own whose client is a Docker client
 * (dockerode), not a sandpool client: it answers in the engine's error shape
 * (`{"message": ...}`), so its refusals are not SandpoolErrors with protocol codes.
 */
export class PolicyRefusal extends Error {
  constructor(
    message: string,
    /** 400: not understood; 403: understood and not allowed; 404: hidden; 413: too large. */
    readonly status: 400 | 403 | 404 | 413 = 403,
  ) {
    super(message);
    this.name = 'PolicyRefusal';
  }
}
