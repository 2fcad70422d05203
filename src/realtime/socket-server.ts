import { Server } from 'socket.io';
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from '../protocol/events.js';

export type SandpoolIo = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** Sends one server event to every socket of a user, on any replica. */
export type EmitToUser = <E extends keyof ServerToClientEvents>(userId: string, event: E, ...payload: Parameters<ServerToClientEvents[E]>) => void;

export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/**
 * The Socket.IO server, typed with the wire contract. It is attached to the
 * replica's HTTP server later (`io.attach`): what routes between replicas
 * over it is needed before the HTTP app can be built.
 */
export function createSocketServer(options: {
  /** Socket.IO adapter (the Redis adapter with several replicas). Default: in-memory. */
  adapter?: Parameters<SandpoolIo['adapter']>[0];
  maxMessageBytes: number;
  /** Cross-origin browsers allowed besides the server's own (ALLOWED_ORIGINS): they get CORS headers on the polling transport. */
  allowedOrigins: readonly string[];
}): { io: SandpoolIo; emitToUser: EmitToUser } {
  const io: SandpoolIo = new Server({
    ...(options.adapter ? { adapter: options.adapter } : {}),
    // Room for a message at the limit (JSON-escaped, worst case 6x) so it gets
    // a PAYLOAD_TOO_LARGE ack rather than a dropped connection.
    maxHttpBufferSize: Math.max(1_000_000, options.maxMessageBytes * 6 + 4096),
    pingInterval: 25_000,
    pingTimeout: 20_000,
    serveClient: true,
    ...(options.allowedOrigins.length > 0 ? { cors: { origin: [...options.allowedOrigins] } } : {}),
  });
  return {
    io,
    emitToUser: (userId, event, ...payload) => void io.to(userRoom(userId)).emit(event, ...payload),
  };
}
