/**
 * The agent started as a script (the process runtime, tests): the official
 * filesystem server imported from node_modules. The sandbox image runs the
 * same agent bundled with the server instead (pool/bundle.mjs).
 */
import { startAgent } from './sandbox-agent.mjs';

await startAgent(() => import('@modelcontextprotocol/server-filesystem/dist/index.js'));
