import type { AssistantTurn, ChatMessage, CompletionRequest, LlmProvider, ToolCall, ToolSpec } from './types.js';

/**
 * LLM_PROVIDER=local, the offline default: a deterministic planner, not a
 * model. It maps a handful of phrasings to sandbox tools and reports their
 * results verbatim. Enough to use and test the whole platform without a key.
 */

const INTRO = "I'm sandpool's local planner — a deterministic command parser, not a language model.";

interface Rule {
  pattern: RegExp;
  tools: string[];
  args: (m: RegExpExecArray) => Record<string, unknown>;
}

/**
 * Unquoted, without trailing punctuation ("list files in /workspace."), and
 * relative paths taken from /workspace ("read notes.txt", "list files in .").
 */
const unquote = (raw: string): string => raw.trim().replace(/^["'`]|["'`]$/g, '');
const cleanPath = (raw: string): string => {
  const unquoted = unquote(raw);
  const path = unquoted.replace(/(?<=[^.])[?.!,;]+$/, '').replace(/^\.\/?$/, '');
  if (path === '' && unquoted !== '') return '/workspace';
  if (path === '' || path.startsWith('/')) return path;
  return `/workspace/${path.replace(/^\.\//, '')}`;
};

/** search_files takes a glob; a bare word means "names containing it", anywhere below. */
const toGlob = (pattern: string): string => (/[*?[\]{}]/.test(pattern) ? pattern : `**/*${pattern}*`);

const RULES: Rule[] = [
  { pattern: /^(?:please\s+)?list\s+(?:all\s+)?files\s+in\s+(.+)$/i, tools: ['list_directory'], args: (m) => ({ path: cleanPath(m[1] ?? '') }) },
  { pattern: /^(?:please\s+)?write\s+"([\s\S]*)"\s+to\s+(.+)$/i, tools: ['write_file'], args: (m) => ({ path: cleanPath(m[2] ?? ''), content: m[1] ?? '' }) },
  { pattern: /^(?:please\s+)?write\s+'([\s\S]*)'\s+to\s+(.+)$/i, tools: ['write_file'], args: (m) => ({ path: cleanPath(m[2] ?? ''), content: m[1] ?? '' }) },
  // Greedy pattern: the path is what follows the last " in ".
  { pattern: /^(?:please\s+)?search\s+(?:for\s+)?(.+)\s+in\s+(.+)$/i, tools: ['search_files'], args: (m) => ({ path: cleanPath(m[2] ?? ''), pattern: toGlob(unquote(m[1] ?? '')) }) },
  { pattern: /^(?:please\s+)?(?:mkdir|make\s+(?:a\s+)?directory|create\s+(?:a\s+)?directory)\s+(.+)$/i, tools: ['create_directory'], args: (m) => ({ path: cleanPath(m[1] ?? '') }) },
  { pattern: /^(?:please\s+)?tree\s+(?:of\s+)?(.+)$/i, tools: ['directory_tree'], args: (m) => ({ path: cleanPath(m[1] ?? '') }) },
  { pattern: /^(?:please\s+)?read\s+(?:the\s+)?(?:file\s+)?(.+)$/i, tools: ['read_text_file', 'read_file'], args: (m) => ({ path: cleanPath(m[1] ?? '') }) },
];

const COMMANDS = [
  'list files in <path>   (also: list all files in <path>)',
  'read <path>',
  'write "<text>" to <path>',
  'search <pattern> in <path>',
  'tree <path>',
  'mkdir <path>',
  'help',
];

function helpText(tools: readonly ToolSpec[]): string {
  const toolLines = tools.length > 0 ? tools.map((t) => `• ${t.name}`).join('\n') : '• (the sandbox has not reported its tools yet)';
  return [
    INTRO,
    '',
    'I understand (case doesn\'t matter):',
    ...COMMANDS.map((c) => `• ${c}`),
    '',
    'Your sandbox offers these tools (every call waits for your approval):',
    toolLines,
    '',
    'Your files live in /workspace, in a sandbox that is yours alone. Try: list files in /workspace',
  ].join('\n');
}

function describeResults(results: Array<Extract<ChatMessage, { role: 'tool' }>>): string {
  return results
    .map((r) => {
      if (r.ok) return r.content.trim() === '' ? `${r.name} returned nothing (for a directory: it is empty).` : `Result of ${r.name}:\n${r.content}`;
      return `${r.name}: ${r.content}`;
    })
    .join('\n\n');
}

export function createLocalPlanner(): LlmProvider {
  let counter = 0;
  return {
    name: 'local',
    model: 'local-planner',
    async complete(request: CompletionRequest): Promise<AssistantTurn> {
      const reply = (text: string, toolCalls: ToolCall[] = []): AssistantTurn => {
        if (text) request.onTextDelta?.(text);
        return { text, toolCalls };
      };
      const messages = request.messages;
      const last = messages[messages.length - 1];
      if (!last) return reply(helpText(request.tools));

      // After tool results: answer with them, verbatim.
      if (last.role === 'tool') {
        const results: Array<Extract<ChatMessage, { role: 'tool' }>> = [];
        for (let i = messages.length - 1; i >= 0; i--) {
          const m = messages[i];
          if (m?.role !== 'tool') break;
          results.unshift(m);
        }
        return reply(describeResults(results));
      }
      if (last.role !== 'user') return reply('');

      const text = last.text.trim();
      if (/^(help|\?|what can you do\??)$/i.test(text)) return reply(helpText(request.tools));
      const available = new Set(request.tools.map((t) => t.name));
      for (const rule of RULES) {
        const m = rule.pattern.exec(text);
        if (!m) continue;
        const tool = rule.tools.find((t) => available.has(t));
        if (!tool) {
          return reply(`Your sandbox has no ${rule.tools.join(' or ')} tool, so I can't do that here. Type "help" to see what it offers.`);
        }
        const args = rule.args(m);
        if (args.path === '') return reply('Which path? For example: list files in /workspace');
        counter++;
        return reply('', [{ id: `local-${counter}`, name: tool, arguments: args }]);
      }
      return reply(
        `${INTRO} I didn't recognise "${text.length > 80 ? `${text.slice(0, 77)}...` : text}".\n\n` +
          `Try one of:\n${COMMANDS.map((c) => `• ${c}`).join('\n')}\n\nFor example: list files in /workspace`,
      );
    },
  };
}
