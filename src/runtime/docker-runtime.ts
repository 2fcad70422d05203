import { PassThrough, type Duplex, type Readable } from 'node:stream';
import Docker from 'dockerode';
import { errorMessage } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { withTimeout } from '../util/async.js';
import { createExitFeed, type EngineExit } from './exit-feed.js';
import { pauseRetryingFreeze } from './freeze-retry.js';
import { SANDBOX_CONFIG, SANDBOX_HOST_CONFIG, sandboxTmpfsOptions } from './sandbox-hardening.js';
import { APP_LABEL_VALUE, LABELS, type ContainerRuntime, type ContainerSummary, type ExitInfo, type SandboxProcess, type SandboxSpec } from './types.js';

/** Options of the dockerode runtime. */
export interface DockerRuntimeOptions {
  /** Docker engine socket. Default /var/run/docker.sock. */
  socketPath?: string;
  /** Bound on one engine call that should be quick (inspect, remove). Default 10000. */
  callTimeoutMs?: number;
  /** Warnings about the engine's event stream. Default: a silent logger. */
  logger?: Logger;
  /**
   * After a container's stdio closed by itself, how long to wait for the
   * engine's `die` event to say why before asking the engine. Default 1000.
   */
  exitReasonWaitMs?: number;
}

interface DockerApiError {
  statusCode?: number;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as DockerApiError).statusCode : undefined;
}

/**
 * Engine calls, per sandbox: create, attach and start to start it (the
 * engine's event stream, one for all, tells when one dies); none to hand it
 * out; one pause (again if the freezer could not settle: freeze-retry.ts) and one unpause per park and resume; one remove (`force`
 * removes a paused container too). An inspect only when a container died by itself and the
 * event stream did not say why in time.
 */
export function createDockerRuntime(options: DockerRuntimeOptions = {}): ContainerRuntime {
  const docker = new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  const exitReasonWaitMs = options.exitReasonWaitMs ?? 1_000;
  const exits = createExitFeed({
    logger: options.logger ?? createLogger({ level: 'silent' }),
    open: async (sinceSeconds) =>
      (await docker.getEvents({
        since: sinceSeconds,
        filters: { type: ['container'], event: ['die', 'oom'], label: [`${LABELS.app}=${APP_LABEL_VALUE}`] },
      })) as unknown as Readable,
  });

  async function removeById(id: string): Promise<void> {
    try {
      await withTimeout(docker.getContainer(id).remove({ force: true, v: true }), callTimeoutMs, `remove container ${id.slice(0, 12)}`);
    } catch (err) {
      // 404: already gone; 409: the engine is already removing it.
      const status = statusOf(err);
      if (status === 404 || status === 409) return;
      throw err;
    }
  }

  async function inspectRunning(nameOrId: string): Promise<boolean | undefined> {
    try {
      const info = await withTimeout(docker.getContainer(nameOrId).inspect(), callTimeoutMs, 'inspect container');
      return info.State.Running === true;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async function start(spec: SandboxSpec): Promise<SandboxProcess> {
    const container = await docker.createContainer(sandboxCreateOptions(spec));
    try {
      // Attach before start so not a byte of the server's output is lost.
      const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as Duplex;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      container.modem.demuxStream(stream, stdout, stderr);
      let exitedFlag = false;
      let removing = false;
      let engineExit: EngineExit | undefined;
      let onEngineExit: ((exit: EngineExit) => void) | undefined;
      const exited = new Promise<ExitInfo>((resolve) => {
        let settled = false;
        const settle = (info: ExitInfo): void => {
          if (settled) return;
          settled = true;
          exitedFlag = true;
          unwatch();
          stdout.end();
          stderr.end();
          resolve(info);
        };
        const removed: ExitInfo = { exitCode: null, reason: 'container removed' };
        onEngineExit = (exit) => {
          engineExit = exit;
          // Not usable from now on; the stream's own end (any last output first) settles it, or this bound does.
          exitedFlag = true;
          setTimeout(() => settle(removing ? removed : exit), exitReasonWaitMs).unref();
        };
        const onGone = (): void => {
          if (settled) return;
          exitedFlag = true;
          // Removed by us: nothing to ask.
          if (removing) return settle(removed);
          if (engineExit) return settle(engineExit);
          // Died by itself: the die event says why, usually within milliseconds; the engine is asked only if it does not.
          const timer = setTimeout(() => void describeExit(container).then(settle), exitReasonWaitMs);
          timer.unref();
          onEngineExit = (exit) => {
            clearTimeout(timer);
            settle(exit);
          };
        };
        stream.once('end', onGone);
        stream.once('close', onGone);
        stream.once('error', onGone);
      });
      const unwatch = exits.watch(container.id, (exit) => onEngineExit?.(exit));
      try {
        await container.start();
      } catch (err) {
        unwatch();
        stream.destroy();
        throw err;
      }
      return {
        id: container.id,
        workspaceDir: '/workspace',
        stdin: stream,
        stdout,
        stderr,
        exited,
        hasExited: () => exitedFlag,
        pause: async () => {
          await pauseRetryingFreeze(() => withTimeout(container.pause(), callTimeoutMs, `pause container ${container.id.slice(0, 12)}`));
        },
        resume: async () => {
          await withTimeout(container.unpause(), callTimeoutMs, `unpause container ${container.id.slice(0, 12)}`);
        },
        destroy: async () => {
          removing = true;
          try {
            await removeById(container.id);
          } finally {
            stream.destroy();
          }
        },
      };
    } catch (err) {
      // Created but never became usable: do not leave it behind.
      await removeById(container.id).catch(() => undefined);
      throw err;
    }
  }

  async function describeExit(container: Docker.Container): Promise<ExitInfo> {
    try {
      const info = await withTimeout(container.inspect(), callTimeoutMs, 'inspect exited container');
      const code = info.State.ExitCode;
      const oom = info.State.OOMKilled ? ', OOMKilled' : '';
      const err = info.State.Error ? `, ${info.State.Error}` : '';
      if (info.State.Running) return { exitCode: null, reason: 'the engine connection to the container closed' };
      return { exitCode: code, reason: `container exited with code ${code}${oom}${err}` };
    } catch (err) {
      if (statusOf(err) === 404) return { exitCode: null, reason: 'container was removed' };
      return { exitCode: null, reason: `container stream closed (${errorMessage(err)})` };
    }
  }

  return {
    kind: 'docker',
    isolated: true,
    async ping() {
      await withTimeout(docker.ping(), callTimeoutMs, 'docker ping');
    },
    start,
    async list(labels) {
      const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
      const items = await withTimeout(docker.listContainers({ all: true, filters }), callTimeoutMs, 'list containers');
      return items.map(
        (c): ContainerSummary => ({
          id: c.Id,
          name: (c.Names[0] ?? '').replace(/^\//, ''),
          labels: c.Labels,
          createdAtMs: Number(c.Labels[LABELS.created]) || c.Created * 1000,
          running: c.State === 'running',
        }),
      );
    },
    remove: removeById,
    isRunning: inspectRunning,
  };
}

/**
 * The container-create options of a sandbox: exactly the body the socket
 * proxy accepts (src/socket-proxy/create-schema.ts; a unit test checks it),
 * except a command override: the proxy refuses Entrypoint/Cmd, so POOL_COMMAND
 * works only with the engine's socket itself.
 */
export function sandboxCreateOptions(spec: SandboxSpec): Docker.ContainerCreateOptions {
  const uid = unixUidOf(spec.user);
  const gid = unixGidOf(spec.user);
  return {
    name: spec.name,
    Image: spec.image,
    ...(spec.command ? { Entrypoint: [spec.command[0] ?? ''], Cmd: spec.command.slice(1) } : {}),
    Labels: spec.labels,
    User: spec.user,
    ...SANDBOX_CONFIG,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    OpenStdin: true,
    StdinOnce: false,
    Tty: false,
    HostConfig: {
      ...SANDBOX_HOST_CONFIG,
      CapDrop: [...SANDBOX_HOST_CONFIG.CapDrop],
      SecurityOpt: [...SANDBOX_HOST_CONFIG.SecurityOpt],
      Tmpfs: {
        '/workspace': sandboxTmpfsOptions('/workspace', spec.workspaceBytes, uid, gid),
        '/tmp': sandboxTmpfsOptions('/tmp', spec.tmpBytes, uid, gid),
      },
      Memory: spec.memoryBytes,
      MemorySwap: spec.memoryBytes,
      NanoCpus: spec.nanoCpus,
      PidsLimit: spec.pidsLimit,
      ShmSize: spec.shmBytes,
      Ulimits: [{ Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile }],
    },
  };
}

/** The Unix uid of SANDBOX_USER (`uid[:gid]`). */
function unixUidOf(user: string): string {
  return user.split(':')[0] ?? '0';
}

/** The Unix gid of SANDBOX_USER: its own, or the uid's. */
function unixGidOf(user: string): string {
  return user.split(':')[1] ?? unixUidOf(user);
}
