/**
 * Splits a byte stream into newline-terminated lines in linear time. The
 * SDK's ReadBuffer concatenates its whole buffer on every chunk and searches
 * it from the start, quadratic in the length of a line: a workspace snapshot
 * (megabytes of base64 in one message) spent most of its time there. This
 * keeps the chunks of the line being read and searches only each new chunk.
 */
export class LineBuffer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /**
   * Adds a chunk; returns the lines it completed (without their newline, a
   * trailing \r removed). Throws when a line grows past maxLineBytes: the
   * stream breaks the protocol (the buffer is dropped).
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      const line = this.pending.length === 0 ? part.toString('utf8') : Buffer.concat([...this.pending, part]).toString('utf8');
      this.pending = [];
      this.pendingBytes = 0;
      lines.push(line.endsWith('\r') ? line.slice(0, -1) : line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.pendingBytes + rest.length > this.maxLineBytes) {
        this.clear();
        throw new Error(`a line exceeded the maximum of ${this.maxLineBytes} bytes`);
      }
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
    return lines;
  }

  clear(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }
}
