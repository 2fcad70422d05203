import { createLocalPlanner } from '../local-planner.js';
import type { LlmProvider } from '../types.js';
import { createAnthropicProvider } from './anthropic-provider.js';
import { createGeminiProvider } from './gemini-provider.js';
import { createOpenAiProvider } from './openai-provider.js';

export type CloudProviderName = 'gemini' | 'openai' | 'anthropic';

export interface LlmProviderConfig {
  provider: CloudProviderName;
  apiKey: string;
  /** Overrides the provider's endpoint (for OpenAI: any OpenAI-compatible server). */
  baseUrl?: string;
  /** Default (also for an empty string): DEFAULT_MODELS[provider]. */
  model?: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
}

/** Used when no model is configured: each provider's fast, cheap tool-calling model. */
export const DEFAULT_MODELS: Readonly<Record<CloudProviderName, string>> = {
  gemini: 'gemini-2.5-flash',
  openai: 'gpt-4o-mini',
  anthropic: 'claude-sonnet-4-5',
};

export function createLlmProvider(cfg: LlmProviderConfig): LlmProvider {
  const common = { apiKey: cfg.apiKey, baseUrl: cfg.baseUrl, model: cfg.model || DEFAULT_MODELS[cfg.provider], timeoutMs: cfg.timeoutMs };
  switch (cfg.provider) {
    case 'gemini':
      return createGeminiProvider(common);
    case 'openai':
      return createOpenAiProvider(common);
    case 'anthropic':
      return createAnthropicProvider(common);
  }
}

/** The LLM settings (config.llm; LLM_* and <PROVIDER>_* variables). */
export interface LlmSettings {
  provider: 'local' | CloudProviderName;
  model: string | undefined;
  timeoutMs: number;
  gemini: { apiKey: string | undefined; baseUrl: string | undefined };
  openai: { apiKey: string | undefined; baseUrl: string | undefined };
  anthropic: { apiKey: string | undefined; baseUrl: string | undefined };
}

/** The configured provider: the offline local planner, or a cloud model with its key and endpoint. */
export function createProvider(settings: LlmSettings): LlmProvider {
  if (settings.provider === 'local') return createLocalPlanner();
  const { apiKey, baseUrl } = settings[settings.provider];
  return createLlmProvider({
    provider: settings.provider,
    // Config already refused a missing key where the provider needs one.
    apiKey: apiKey ?? 'unused',
    baseUrl,
    model: settings.model,
    timeoutMs: settings.timeoutMs,
  });
}
