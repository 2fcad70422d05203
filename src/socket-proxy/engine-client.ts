import { request, type IncomingHttpHeaders } from 'node:http';

/** One answer of the engine, read whole. */
export interface EngineAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The proxy's own calls to the Docker engine (lookups, and the calls whose answer it rewrites). */
export interface EngineClient {
  /** Rejects when the engine does not answer (socket error, or no answer within the call timeout). */
  call(method: string, path: string, body?: { contentType: string; text: string }): Promise<EngineAnswer>;
}

export interface EngineClientOptions {
  socketPath: string;
  /** Bound on one call. Default 10000. */
  callTimeoutMs?: number;
  /** Largest answer read. Default 16 MiB (an inspect document is a few KiB). */
  maxAnswerBytes?: number;
}

export function createEngineClient(options: EngineClientOptions): EngineClient {
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  const maxAnswerBytes = options.maxAnswerBytes ?? 16 * 1024 * 1024;
  return {
    call(method, path, body) {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string | number> = {};
        if (body) {
          headers['content-type'] = body.contentType;
          headers['content-length'] = Buffer.byteLength(body.text);
        }
        const req = request({ socketPath: options.socketPath, method, path, headers, timeout: callTimeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxAnswerBytes) {
              req.destroy(new Error(`the engine's answer to ${method} ${path} is larger than ${maxAnswerBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`the engine did not answer ${method} ${path} within ${callTimeoutMs} ms`)));
        req.on('error', reject);
        req.end(body?.text);
      });
    },
  };
}
