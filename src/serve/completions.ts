/**
 * OpenAI-style text generation routes for causal LMs:
 *
 *   POST /v1/completions        { model, prompt, max_tokens, temperature, top_p, stop, seed, stream }
 *   POST /v1/chat/completions   { model, messages, max_tokens | max_completion_tokens, …, stream }
 *
 * `stream: true` answers with server-sent events (`data: {chunk}` … `data: [DONE]`), as OpenAI's
 * API does, so its clients work unchanged. A client that disconnects aborts its generation.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Template } from '@huggingface/jinja';
import type { CausalLm } from '../generator/causal-lm.js';
import { streamGenerate, type GenerateCall, type GenerationResult } from '../generator/generate.js';
import { HeadstartError, messageOf } from '../util/errors.js';
import { HttpError } from './inputs.js';

export interface LanguageModelToServe {
  name: string;
  lm: CausalLm;
  /** The tokenizer's chat template (tokenizer_config.json `chat_template`), if it has one. */
  chatTemplate?: string;
}

export interface CompletionLimits {
  /** Most tokens one request may generate (max_tokens above it is refused). */
  maxNewTokens: number;
  /** Longest prompt (or all chat messages together), in characters. */
  maxPromptLength: number;
  /** Generations running at once; beyond, 429. */
  maxConcurrentGenerations: number;
}

export const DEFAULT_COMPLETION_LIMITS: CompletionLimits = { maxNewTokens: 512, maxPromptLength: 20_000, maxConcurrentGenerations: 4 };

/**
 * When the tokenizer has no chat template: the turns as "role: content" lines and an open
 * "assistant:" turn, a plain format small base models continue sensibly.
 */
const FALLBACK_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

export function registerCompletionRoutes(app: FastifyInstance, models: readonly LanguageModelToServe[], limits: CompletionLimits): void {
  const byName = new Map(models.map((m) => [m.name, m]));
  const templates = new Map(models.map((m) => [m.name, new Template(m.chatTemplate ?? FALLBACK_TEMPLATE)]));
  let running = 0;

  const pick = (body: any): LanguageModelToServe => {
    if (byName.size === 0) throw new HttpError(404, 'no_language_model', 'no language model is served');
    const name = body?.model;
    const model = typeof name === 'string' ? byName.get(name) : undefined;
    // OpenAI clients must name a model; with one served, any name (or none) means it.
    if (model) return model;
    if (byName.size === 1) return models[0]!;
    throw new HttpError(404, 'unknown_model', `no language model named "${String(name).slice(0, 100)}"; served: ${[...byName.keys()].join(', ')}`);
  };

  const run = async (request: FastifyRequest, reply: FastifyReply, model: LanguageModelToServe, prompt: string, chat: boolean) => {
    const body = request.body as Record<string, any>;
    const call = generationCall(body, limits, chat);
    if (prompt.length > limits.maxPromptLength) throw new HttpError(413, 'prompt_too_long', `the prompt has ${prompt.length} characters; the limit is ${limits.maxPromptLength}`, 'text_too_long');
    if (running >= limits.maxConcurrentGenerations) {
      reply.header('retry-after', '1');
      throw new HttpError(429, 'too_busy', `${running} generations running, the limit is ${limits.maxConcurrentGenerations}; retry shortly`, 'too_busy');
    }
    running++;
    const controller = new AbortController();
    // The response closing before it was finished means the client went away: stop generating.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? 'chat.completion' : 'text_completion';
    const events = streamGenerate(model.lm, [prompt], { ...call, signal: controller.signal });
    try {
      if (!body.stream) {
        let result: GenerationResult | undefined;
        for await (const event of events) if (event.type === 'done') result = event.result;
        return reply.send({
          id,
          object,
          created,
          model: model.name,
          choices: [chat ? { index: 0, message: { role: 'assistant', content: result!.text }, finish_reason: finishReason(result!) } : { index: 0, text: result!.text, finish_reason: finishReason(result!), logprobs: null }],
          usage: usage(result!),
        });
      }
      // Errors found before the first token (a prompt longer than the context) still answer with a status.
      const first = await events.next();
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const send = (data: unknown) => reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
      const chunk = (choice: Record<string, unknown>) => send({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model: model.name, choices: [{ index: 0, ...choice }] });
      if (chat) chunk({ delta: { role: 'assistant', content: '' }, finish_reason: null });
      for (let next = first; !next.done && !controller.signal.aborted; next = await events.next()) {
        const event = next.value;
        if (event.type === 'token') {
          if (event.text) chunk(chat ? { delta: { content: event.text }, finish_reason: null } : { text: event.text, finish_reason: null, logprobs: null });
        } else {
          chunk(chat ? { delta: {}, finish_reason: finishReason(event.result) } : { text: '', finish_reason: finishReason(event.result), logprobs: null });
        }
      }
      if (!controller.signal.aborted) reply.raw.write('data: [DONE]\n\n');
      reply.raw.end();
    } catch (error) {
      if (error instanceof HeadstartError && error.kind === 'usage') throw new HttpError(400, 'invalid_request', messageOf(error));
      throw error;
    } finally {
      running--;
      await events.return(undefined);
    }
  };

  app.post('/v1/completions', async (request, reply) => {
    const body = object(request.body);
    const model = pick(body);
    const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt;
    if (typeof prompt !== 'string') throw new HttpError(400, 'invalid_prompt', '"prompt" must be a string (one prompt per request)');
    return run(request, reply, model, prompt, false);
  });

  app.post('/v1/chat/completions', async (request, reply) => {
    const body = object(request.body);
    const model = pick(body);
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0 || messages.some((m: any) => typeof m?.role !== 'string' || typeof m?.content !== 'string')) {
      throw new HttpError(400, 'invalid_messages', '"messages" must be a non-empty array of {role, content} with string content');
    }
    const length = messages.reduce((n: number, m: any) => n + m.content.length, 0);
    if (length > limits.maxPromptLength) throw new HttpError(413, 'prompt_too_long', `the messages have ${length} characters; the limit is ${limits.maxPromptLength}`, 'text_too_long');
    let prompt: string;
    try {
      prompt = templates.get(model.name)!.render({ messages, add_generation_prompt: true, bos_token: '', eos_token: '' });
    } catch (error) {
      throw new HttpError(400, 'chat_template_failed', `the chat template cannot render these messages: ${messageOf(error)}`);
    }
    return run(request, reply, model, prompt, true);
  });
}

function object(body: unknown): Record<string, any> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'invalid_body', 'the body must be a JSON object');
  return body as Record<string, any>;
}

/** OpenAI's request fields → generation options, each checked. */
function generationCall(body: Record<string, any>, limits: CompletionLimits, chat: boolean): GenerateCall {
  const number = (field: string, ok: (v: number) => boolean, expected: string): number | undefined => {
    const value = body[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !ok(value)) throw new HttpError(400, 'invalid_parameter', `"${field}" must be ${expected}`);
    return value;
  };
  const maxTokens = number(chat && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (maxTokens !== undefined && maxTokens > limits.maxNewTokens) throw new HttpError(400, 'max_tokens_too_large', `max_tokens ${maxTokens} is above this server's limit of ${limits.maxNewTokens}`);
  if (body.n !== undefined && body.n !== 1) throw new HttpError(400, 'invalid_parameter', '"n" must be 1');
  const stop = body.stop === undefined || body.stop === null ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (stop !== undefined && (!Array.isArray(stop) || stop.length > 4 || stop.some((s: unknown) => typeof s !== 'string'))) throw new HttpError(400, 'invalid_parameter', '"stop" must be a string or up to 4 strings');
  return {
    // OpenAI's default is 16 completion tokens; chat has no fixed default: the server's limit caps it.
    maxNewTokens: maxTokens ?? (chat ? Math.min(limits.maxNewTokens, 256) : 16),
    temperature: number('temperature', (v) => v >= 0 && v <= 2, 'between 0 and 2'),
    topP: number('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]'),
    seed: number('seed', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer'),
    stop,
  };
}

function finishReason(result: GenerationResult): 'stop' | 'length' {
  return result.finishReason === 'length' ? 'length' : 'stop';
}

function usage(result: GenerationResult) {
  return { prompt_tokens: result.promptTokens, completion_tokens: result.tokenIds.length, total_tokens: result.promptTokens + result.tokenIds.length };
}
