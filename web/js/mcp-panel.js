// "Use from any MCP client": the endpoint and a client configuration to copy.
// The same sandbox as this chat, for the same user (the token decides who).
import { els } from './dom.js';

/** The bearer the user's client should send: their token, or on a development server (no token) their user id. */
function bearerFor({ userId, withToken }) {
  if (withToken) return '<your token>';
  return userId || '<your user id>';
}

export function renderMcpPanel(signin = { userId: '', withToken: false }) {
  const url = `${location.origin}/mcp`;
  const bearer = bearerFor(signin);
  els.mcpUrl.textContent = url;
  els.mcpHeader.textContent = `Authorization: Bearer ${bearer}`;
  els.mcpConfig.textContent = JSON.stringify(
    { mcpServers: { sandpool: { type: 'http', url, headers: { Authorization: `Bearer ${bearer}` } } } },
    null,
    2,
  );
}
