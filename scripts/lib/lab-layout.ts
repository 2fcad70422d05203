/**
 * Where everything of the lab (`npm run lab:up|down`) lives: names, netns
 * addresses on the lab bridge, directories, sockets, cgroups. One place, so
 * up, down, the chaos commands and the test agree.
 *
 * Node i (1-based) is network namespace (netns) `sandpool-lab-<i>`, hostname
 * `sandpool-lab-<i>` (its own UTS namespace: swarm names nodes by hostname),
 * address 10.213.0.<10+i> on bridge `sandpool-lab0` (10.213.0.1, the host's
 * side, where the lab registry listens). The subnet is the lab's alone; only
 * these netns addresses are ever addressed.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './docker-cli.js';

export const LAB_PREFIX = 'sandpool-lab';
export const BRIDGE = 'sandpool-lab0';
export const BRIDGE_ADDRESS = '10.213.0.1';
export const SUBNET_BITS = 24;
/** Overlay networks of the lab's swarm come from here, apart from the lab subnet and the host's bridges. */
export const SWARM_ADDRESS_POOL = '10.214.0.0/16';
export const REGISTRY = `${BRIDGE_ADDRESS}:5000`;
/** Where nginx publishes on the manager's netns address (mode host: no routing mesh without iptables). */
export const PUBLISH_PORT = 3000;
export const MAX_NODES = 16;
export const STACK = 'sandpool';

/** Runtime state (sockets, pid files, logs): gone with the machine. */
export const RUN_DIR = `/run/${LAB_PREFIX}`;
/** Persistent state (engines' data roots, the registry's blobs). */
export const DATA_DIR = `/var/lib/${LAB_PREFIX}`;
/** What lab:up writes for its users (git-ignored): DOCKER_HOST, NODE_<i>_DOCKER_HOST, ... */
export const LAB_ENV_DIR = path.join(ROOT, '.lab');
export const LAB_ENV_FILE = path.join(LAB_ENV_DIR, 'env');

export interface LabNode {
  index: number;
  /** netns name, hostname and swarm node name alike. */
  name: string;
  address: string;
  /** Host side of the node's veth pair (its link: down = partitioned). */
  hostLink: string;
  runDir: string;
  dataDir: string;
  socket: string;
  dockerHost: string;
  /** The node's cgroup (memory hierarchy): its daemons in engine/, its containers in containers/. */
  cgroup: string;
}

/** cgroup v2 (one hierarchy) or v1 (the memory controller's hierarchy holds what a node uses). */
export const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const MEMORY_HIERARCHY = CGROUP_V2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory';

export function labNode(index: number): LabNode {
  const name = `${LAB_PREFIX}-${index}`;
  const runDir = path.join(RUN_DIR, name);
  const socket = path.join(runDir, 'docker.sock');
  return {
    index,
    name,
    address: `10.213.0.${10 + index}`,
    hostLink: `slab${index}`,
    runDir,
    dataDir: path.join(DATA_DIR, name),
    socket,
    dockerHost: `unix://${socket}`,
    cgroup: path.join(MEMORY_HIERARCHY, name),
  };
}

export function labNodes(count: number): LabNode[] {
  return Array.from({ length: count }, (_, i) => labNode(i + 1));
}

/** The lab registry's name for an image built here: `sandpool-app:lab` -> `10.213.0.1:5000/sandpool-app:lab`. */
export function registryName(image: string): string {
  const last = image.split('/').pop() ?? image;
  return `${REGISTRY}/${last.includes(':') ? last : `${last}:latest`}`;
}

/** The URL of the stack's nginx, published on the manager's netns address. */
export function labUrl(): string {
  return `http://${labNode(1).address}:${PUBLISH_PORT}`;
}
