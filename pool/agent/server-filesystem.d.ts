// The official filesystem server ships no types: the agent only imports it for its effect (it starts itself).
declare module '@modelcontextprotocol/server-filesystem/dist/index.js' {}
