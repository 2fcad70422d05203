import { PassThrough, type Duplex } from 'node:stream';
import Docker from 'dockerode';
import { errorMessage } from '../errors.js';
import { withTimeout } from '../util/async.js';
import { LABELS, type ContainerRuntime, type ContainerSummary, type ExitInfo, type SandboxProcess, type SandboxSpec } from './types.js';

/** Options of the dockerode runtime. */
export interface DockerRuntimeOptions {
  /** Docker engine socket. Default /var/run/docker.sock. */
  socketPath?: string;
  /** Bound on one engine call that should be quick (inspect, remove). Default 10000. */
  callTimeoutMs?: number;
}

interface DockerApiError {
  statusCode?: number;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as DockerApiError).statusCode : undefined;
}

export function createDockerRuntime(options: DockerRuntimeOptions = {}): ContainerRuntime {
  const docker = new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;

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
    const container = await docker.createContainer({
      name: spec.name,
      Image: spec.image,
      ...(spec.command ? { Entrypoint: [spec.command[0] ?? ''], Cmd: spec.command.slice(1) } : {}),
      Labels: spec.labels,
      User: spec.user,
      WorkingDir: '/workspace',
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: true,
      StdinOnce: false,
      Tty: false,
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: true,
        Tmpfs: {
          // noexec: the workspace holds the user's files, never programs to run.
          '/workspace': `rw,nosuid,nodev,noexec,size=${spec.workspaceBytes},uid=${uidOf(spec.user)},gid=${gidOf(spec.user)},mode=0700`,
          '/tmp': `rw,nosuid,nodev,noexec,size=${spec.tmpBytes},uid=${uidOf(spec.user)},gid=${gidOf(spec.user)},mode=1777`,
        },
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        NanoCpus: spec.nanoCpus,
        PidsLimit: spec.pidsLimit,
        ShmSize: spec.shmBytes,
        Ulimits: [{ Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile }],
        AutoRemove: false,
        LogConfig: { Type: 'none', Config: {} },
      },
    });
    try {
      // Attach before start so not a byte of the server's output is lost.
      const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as Duplex;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      container.modem.demuxStream(stream, stdout, stderr);
      let exitedFlag = false;
      const exited = new Promise<ExitInfo>((resolve) => {
        let settled = false;
        const onGone = (): void => {
          if (settled) return;
          settled = true;
          exitedFlag = true;
          stdout.end();
          stderr.end();
          void describeExit(container).then(resolve);
        };
        stream.once('end', onGone);
        stream.once('close', onGone);
        stream.once('error', onGone);
      });
      await container.start();
      return {
        id: container.id,
        workspaceDir: '/workspace',
        stdin: stream,
        stdout,
        stderr,
        exited,
        hasExited: () => exitedFlag,
        isAlive: async () => {
          if (exitedFlag) return false;
          try {
            return (await inspectRunning(container.id)) === true;
          } catch {
            return false;
          }
        },
        destroy: async () => {
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

function uidOf(user: string): string {
  return user.split(':')[0] ?? '0';
}

function gidOf(user: string): string {
  return user.split(':')[1] ?? uidOf(user);
}
