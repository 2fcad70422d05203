// Assembles the sandbox's whole root filesystem under ROOT: the node binary
// this build stage runs, the shared libraries it has mapped (read from
// /proc/self/maps, so it works where ldd does not exist: the offline base has
// only node and sh), the users, and the mount points. The final stage is
// `FROM scratch` plus this tree: no shell, no npm, no package manager, no caches.
//
// Usage: node slim-root.mjs ROOT [DIR...]   (each DIR is copied to the same path under ROOT)
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? '/rootfs');
const extraDirs = process.argv.slice(3);

const mapped = new Set(
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[5])
    .filter((p) => p !== undefined && p.startsWith('/') && !p.startsWith('/proc/')),
);
mapped.add(process.execPath);
if (![...mapped].some((p) => /\/ld-linux[^/]*\.so/.test(p))) throw new Error('no dynamic loader among the mapped files: is node static, or /proc unavailable?');

for (const file of mapped) {
  // At the path it was mapped under (the loader looks there), with the bytes of what it points to.
  const target = path.join(root, file);
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(realpathSync(file), target);
  chmodSync(target, 0o755);
}
const nodeAt = path.join(root, 'usr/local/bin/node');
if (process.execPath !== '/usr/local/bin/node') {
  mkdirSync(path.dirname(nodeAt), { recursive: true });
  copyFileSync(process.execPath, nodeAt);
  chmodSync(nodeAt, 0o755);
}

mkdirSync(path.join(root, 'etc'), { recursive: true });
writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nsandbox:x:65532:65532:sandbox:/nonexistent:/sbin/nologin\n');
writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nsandbox:x:65532:\n');
for (const dir of extraDirs) cpSync(dir, path.join(root, dir), { recursive: true });
// Mount points of the tmpfs the pool mounts (the root is read-only at run time).
for (const dir of ['tmp', 'workspace']) mkdirSync(path.join(root, dir), { recursive: true });
chmodSync(path.join(root, 'tmp'), 0o1777);
console.error(`[slim-root] ${mapped.size} files: ${[...mapped].join(' ')}`);
