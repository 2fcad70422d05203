import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { STDIO_DEFAULT_MAX_BUFFER_SIZE, deserializeMessage, serializeMessage, type JSONRPCMessage, type Transport } from '@modelcontextprotocol/client';
import { LineBuffer } from './line-buffer.js';

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

  // The SDK's limit: a line longer than this is a sandbox flooding stdout.
  private readonly buffer = new LineBuffer(STDIO_DEFAULT_MAX_BUFFER_SIZE);
  private closed = false;
  /** Raw bytes waiting for the request that names them (see attachPayload). */
  private readonly payloads = new Map<string, Buffer>();
  // Runs in a stream's 'data' event: anything thrown here would be an uncaught
  // exception and take the whole replica down with it.
  private readonly onData = (chunk: Buffer): void => {
    let lines: string[];
    try {
      lines = this.buffer.push(chunk);
    } catch (err) {
      // More than 10 MiB without a newline: a sandbox flooding stdout. That
      // connection is beyond saving; the server is not.
      const error = toError(err);
      this.closeError = error;
      this.onerror?.(error);
      void this.close();
      return;
    }
    let deferring = false;
    for (const line of lines) {
      if (line.trim() === '') continue;
      let message: JSONRPCMessage;
      try {
        message = deserializeMessage(line);
      } catch (err) {
        // A stray non-JSON line (a banner on stdout): report and keep reading.
        this.onerror?.(toError(err));
        continue;
      }
      // The SDK dispatches a notification a microtask later, but a response at
      // once, and a response drops its request's progress handler: a progress
      // notification followed by its call's response in one chunk (a server's
      // last "100 %") would find no handler. A response is handed on a
      // microtask later, so what came before it is dispatched first; what
      // comes after it in the chunk waits its turn behind it.
      deferring ||= !('method' in message);
      if (deferring) queueMicrotask(() => this.deliver(message));
      else this.deliver(message);
    }
  };
  private deliver(message: JSONRPCMessage): void {
    try {
      this.onmessage?.(message);
    } catch (err) {
      this.onerror?.(toError(err));
    }
  }
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

  /**
   * Raw bytes to write right after the JSON line of the request whose
   * `params.payload` is `id`: binary data in band, without base64, for a peer
   * that reads `params.bytes` raw bytes after that line (sandpool's sandbox
   * agent, for a workspace restore; nothing else is sent this way). The SDK
   * client builds the request; this is the one place that adds to it on the
   * wire. Returns a function that forgets the bytes if they were never sent.
   */
  attachPayload(id: string, bytes: Buffer): () => void {
    this.payloads.set(id, bytes);
    return () => void this.payloads.delete(id);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed || this.output.destroyed || this.output.writableEnded) {
      throw new Error('sandbox stdio is closed');
    }
    const payloadId = (message as { params?: { payload?: unknown } }).params?.payload;
    const payload = typeof payloadId === 'string' ? this.payloads.get(payloadId) : undefined;
    // Line and payload in one synchronous step: nothing else can be written between them.
    let flowing = this.output.write(serializeMessage(message));
    if (payload && typeof payloadId === 'string') {
      this.payloads.delete(payloadId);
      flowing = this.output.write(payload) && flowing;
    }
    // Honour backpressure: a slow sandbox must not make us buffer without bound.
    if (!flowing) {
      // Whichever of the two waits loses is cancelled: a large message meets
      // backpressure many times, and each wait left behind would stay attached.
      const cancel = new AbortController();
      try {
        await Promise.race([
          once(this.output, 'drain', { signal: cancel.signal }),
          once(this.output, 'close', { signal: cancel.signal }).then(() => Promise.reject(new Error('sandbox stdio closed while writing'))),
        ]);
      } finally {
        cancel.abort();
      }
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
    this.payloads.clear();
    this.onclose?.();
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
