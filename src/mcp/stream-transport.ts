import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * MCP transport over any pair of streams speaking newline-delimited JSON-RPC:
 * here, the attached stdin/stdout of a sandbox container. Unlike the SDK's
 * StdioClientTransport it does not spawn anything; the runtime owns the process.
 */
export class StreamTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  /** Why the transport closed itself, when it did (the peer broke the protocol); undefined after an orderly end. */
  closeError: Error | undefined;

  private readonly buffer = new ReadBuffer();
  private closed = false;
  // Runs in a stream's 'data' event: anything thrown here would be an uncaught
  // exception and take the whole replica down with it.
  private readonly onData = (chunk: Buffer): void => {
    try {
      this.buffer.append(chunk);
    } catch (err) {
      // The SDK buffer refuses more than 10 MiB without a newline: a sandbox
      // flooding stdout. That connection is beyond saving; the server is not.
      const error = toError(err);
      this.closeError = error;
      this.onerror?.(error);
      void this.close();
      return;
    }
    for (;;) {
      let message: JSONRPCMessage | null;
      try {
        message = this.buffer.readMessage();
      } catch (err) {
        // A stray non-JSON line (a banner on stdout): report and keep reading.
        this.onerror?.(toError(err));
        continue;
      }
      if (message === null) break;
      try {
        this.onmessage?.(message);
      } catch (err) {
        this.onerror?.(toError(err));
      }
    }
  };
  private readonly onEnd = (): void => {
    void this.close();
  };
  private readonly onStreamError = (err: Error): void => {
    this.onerror?.(err);
    void this.close();
  };

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
  ) {}

  async start(): Promise<void> {
    this.input.on('data', this.onData);
    this.input.once('end', this.onEnd);
    this.input.once('close', this.onEnd);
    this.input.on('error', this.onStreamError);
    this.output.on('error', this.onStreamError);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed || this.output.destroyed || this.output.writableEnded) {
      throw new Error('sandbox stdio is closed');
    }
    // Honour backpressure: a slow sandbox must not make us buffer without bound.
    if (!this.output.write(serializeMessage(message))) {
      await Promise.race([once(this.output, 'drain'), once(this.output, 'close').then(() => Promise.reject(new Error('sandbox stdio closed while writing')))]);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    this.input.off('error', this.onStreamError);
    this.output.off('error', this.onStreamError);
    this.buffer.clear();
    this.onclose?.();
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
