import type { Readable } from 'node:stream';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';

/** A container's death as the engine reported it. */
export interface EngineExit {
  exitCode: number | null;
  /** e.g. "container exited with code 137 (OOMKilled)". */
  reason: string;
}

/**
 * Opens the engine's event stream (GET /events): newline-delimited JSON
 * events, from `sinceSeconds` (unix time) on when given, then live.
 */
export type OpenEventStream = (sinceSeconds: number) => Promise<Readable>;

/** Options of createExitFeed. */
export interface ExitFeedOptions {
  open: OpenEventStream;
  logger: Logger;
  /** Pause before reopening a stream that ended or failed while containers are watched. Default 1000. */
  retryMs?: number;
}

/**
 * Container deaths from the engine's event stream, so nobody has to ask the
 * engine whether a container still runs: one streaming call for all of a
 * runtime's containers, open only while some are watched. A reopened stream
 * replays from the last event seen, so a death during the gap is not missed.
 */
export interface ExitFeed {
  /** Calls onExit once, when the engine reports that container `id` died. Returns the unwatch. */
  watch(id: string, onExit: (exit: EngineExit) => void): () => void;
  /** Whether the stream is open right now. */
  connected(): boolean;
}

interface EngineEvent {
  Type?: string;
  Action?: string;
  id?: string;
  time?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export function createExitFeed(options: ExitFeedOptions): ExitFeed {
  const log = options.logger.child({ component: 'ExitFeed' });
  const retryMs = options.retryMs ?? 1_000;
  const watchers = new Map<string, (exit: EngineExit) => void>();
  /** The engine sends `oom` before `die`: remembered to say so in the reason. */
  const oomKilled = new Set<string>();
  let stream: Readable | undefined;
  let opening = false;
  let retryTimer: NodeJS.Timeout | undefined;
  // Said once per outage, not at every retry against an engine that is down.
  let complained = false;
  // Seconds; a second back, so a death racing the first open is replayed.
  let sinceSeconds = 0;

  function onEvent(event: EngineEvent): void {
    if (typeof event.time === 'number') sinceSeconds = event.time;
    const id = event.Actor?.ID ?? event.id;
    if (event.Type !== 'container' || id === undefined) return;
    if (event.Action === 'oom') {
      if (watchers.has(id)) oomKilled.add(id);
      return;
    }
    if (event.Action !== 'die') return;
    const onExit = watchers.get(id);
    if (!onExit) return;
    watchers.delete(id);
    const raw = event.Actor?.Attributes?.exitCode;
    const exitCode = raw === undefined || raw === '' || !Number.isFinite(Number(raw)) ? null : Number(raw);
    const oom = oomKilled.delete(id) ? ' (OOMKilled)' : '';
    onExit({ exitCode, reason: `container exited with code ${exitCode ?? 'unknown'}${oom}` });
    if (watchers.size === 0) close();
  }

  function attach(s: Readable): void {
    let buffered = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buffered += chunk;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at).trim();
        buffered = buffered.slice(at + 1);
        if (!line) continue;
        try {
          onEvent(JSON.parse(line) as EngineEvent);
        } catch {
          log.debug({ line: line.slice(0, 200) }, 'unreadable engine event');
        }
      }
    });
    const gone = (err?: Error): void => {
      if (stream !== s) return;
      stream = undefined;
      if (watchers.size === 0) return;
      if (!complained) log.warn({ err: err ? errorMessage(err) : 'ended' }, 'engine event stream closed; reopening');
      complained = true;
      scheduleOpen();
    };
    s.once('error', gone);
    s.once('end', () => gone());
    s.once('close', () => gone());
  }

  function scheduleOpen(): void {
    if (retryTimer || opening) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      open();
    }, retryMs);
    retryTimer.unref();
  }

  function open(): void {
    if (stream || opening || watchers.size === 0) return;
    opening = true;
    options.open(sinceSeconds).then(
      (s) => {
        opening = false;
        if (watchers.size === 0) {
          s.destroy();
          return;
        }
        stream = s;
        if (complained) log.info('engine event stream open again');
        complained = false;
        attach(s);
      },
      (err: unknown) => {
        opening = false;
        if (!complained) log.warn({ err: errorMessage(err) }, 'could not open the engine event stream; retrying every second');
        complained = true;
        scheduleOpen();
      },
    );
  }

  function close(): void {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    const s = stream;
    stream = undefined;
    s?.destroy();
  }

  return {
    watch(id, onExit) {
      if (watchers.size === 0 && !stream && !opening) sinceSeconds = Math.floor(Date.now() / 1000) - 1;
      watchers.set(id, onExit);
      open();
      return () => {
        if (watchers.get(id) !== onExit) return;
        watchers.delete(id);
        oomKilled.delete(id);
        if (watchers.size === 0) close();
      };
    },
    connected: () => stream !== undefined,
  };
}
