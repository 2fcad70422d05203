// Fails the image build unless the server, started as the image will start
// it, answers MCP initialize (with the agent's workspace capability), a
// workspace snapshot, and tools/list with the filesystem tools: a
// snapshot that deserializes but breaks at the first request must not ship.
//
// Usage: node smoke.mjs COMMAND [ARG...]   (the server's allowed directory is appended)
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [command, ...args] = process.argv.slice(2);
if (!command) throw new Error('usage: node smoke.mjs COMMAND [ARG...]');
const dir = mkdtempSync(path.join(os.tmpdir(), 'smoke-'));
const child = spawn(command, [...args, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
const timer = setTimeout(() => {
  console.error('[smoke] no tools/list answer within 20 s');
  child.kill('SIGKILL');
  process.exit(1);
}, 20_000);

let buffered = '';
child.stdout.on('data', (chunk) => {
  buffered += chunk;
  for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
    const message = JSON.parse(buffered.slice(0, at));
    buffered = buffered.slice(at + 1);
    if (message.id === 1) {
      // The agent in front of the server: its workspace snapshots are what a returning user's files come back from.
      if (message.result?.capabilities?.experimental?.['sandpool/workspace']?.version !== 1) {
        console.error(`[smoke] initialize lacks the sandpool/workspace capability: ${JSON.stringify(message)}`);
        process.exit(1);
      }
      send({ method: 'notifications/initialized' });
      send({ id: 3, method: 'sandpool/workspace/snapshot', params: { maxBytes: 1024, chunkBytes: 65536 } });
    } else if (message.id === 3) {
      if (message.result?.files !== 0) {
        console.error(`[smoke] a snapshot of the empty workspace failed: ${JSON.stringify(message)}`);
        process.exit(1);
      }
      send({ id: 2, method: 'tools/list' });
    } else if (message.id === 2) {
      const names = (message.result?.tools ?? []).map((t) => t.name);
      const missing = ['list_directory', 'read_text_file', 'write_file', 'search_files', 'directory_tree'].filter((n) => !names.includes(n));
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (missing.length > 0) {
        console.error(`[smoke] tools/list lacks ${missing.join(', ')}: ${JSON.stringify(message)}`);
        process.exit(1);
      }
      console.error(`[smoke] ${command} ${args.join(' ')}: ${names.length} tools`);
    }
  }
});
child.on('exit', (code, signal) => {
  if (signal !== 'SIGKILL') {
    console.error(`[smoke] the server exited (${code ?? signal}) before answering`);
    process.exit(1);
  }
});
send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'smoke', version: '1' } } });
