import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLm, generate } from '../src/generator/index.js';
import { createServer, type HeadstartServer } from '../src/serve/server.js';

const MODEL = new URL('../../shared/models/gpt2-tiny-news', import.meta.url).pathname;
const CHATML = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

let dir: string;
let lm: CausalLm;
let chatLm: CausalLm;
let server: HeadstartServer;
let client: OpenAI;
let forwards = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headstart-serve-lm-'));
  // The same weights with a chat template in tokenizer_config.json.
  const chat = join(dir, 'chat');
  await mkdir(chat);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json']) await copyFile(join(MODEL, f), join(chat, f));
  const config = JSON.parse(await readFile(join(MODEL, 'tokenizer_config.json'), 'utf8'));
  await writeFile(join(chat, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: CHATML }));
  await symlink(join(MODEL, 'onnx'), join(chat, 'onnx'));
  lm = await CausalLm.open(MODEL, { threads: 1 });
  chatLm = await CausalLm.open(chat, { threads: 1 });
  const forward = lm.forward.bind(lm);
  lm.forward = (...args: Parameters<CausalLm['forward']>) => {
    forwards++;
    return forward(...args);
  };
  server = await createServer([], {
    logger: false,
    languageModels: [{ name: 'tiny', lm }, { name: 'tiny-chat', lm: chatLm, chatTemplate: CHATML }],
    completionLimits: { maxNewTokens: 300, maxConcurrentGenerations: 1 },
  });
  const address = await server.listen(0);
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await server?.close();
  await lm?.dispose();
  await chatLm?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('OpenAI-style completions, consumed by the openai client', () => {
  it('completions: the text and usage of greedy generation, whole and streamed', async () => {
    const [expected] = await generate(lm, ['The stock market'], { maxNewTokens: 12, temperature: 0 });
    const response = await client.completions.create({ model: 'tiny', prompt: 'The stock market', max_tokens: 12, temperature: 0 });
    expect(response.choices[0]!.text).toBe(expected!.text);
    expect(response.choices[0]!.finish_reason).toBe(expected!.finishReason === 'length' ? 'length' : 'stop');
    expect(response.usage).toEqual({ prompt_tokens: 3, completion_tokens: expected!.tokenIds.length, total_tokens: 3 + expected!.tokenIds.length });
    const stream = await client.completions.create({ model: 'tiny', prompt: 'The stock market', max_tokens: 12, temperature: 0, stream: true });
    const pieces: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      pieces.push(chunk.choices[0]!.text);
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    expect(pieces.filter((p) => p).length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(expected!.text);
    expect(finish).toBe(response.choices[0]!.finish_reason);
  });

  it('chat: the messages go through the tokenizer\'s chat template; streamed deltas add up', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me the news.' }];
    const prompt = new Template(CHATML).render({ messages, add_generation_prompt: true });
    const [expected] = await generate(chatLm, [prompt], { maxNewTokens: 10, temperature: 0 });
    const response = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 10, temperature: 0 });
    expect(response.choices[0]!.message).toMatchObject({ role: 'assistant', content: expected!.text });
    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 10, temperature: 0, stream: true });
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? '';
    expect(content).toBe(expected!.text);
  });

  it('limits: too many tokens and a prompt longer than the context are 400s', async () => {
    await expect(client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 301 })).rejects.toMatchObject({ status: 400 });
    await expect(client.completions.create({ model: 'tiny', prompt: 'word '.repeat(300), max_tokens: 2 })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/context is 256 tokens/) });
  });

  it('a second generation while one runs is refused with 429; a client that disconnects stops its generation', async () => {
    // Left alone, this request generates at least 200 tokens (same seed, same sampling).
    const full = await client.completions.create({ model: 'tiny', prompt: 'The', max_tokens: 250, temperature: 1, seed: 29 });
    expect(full.usage!.completion_tokens).toBeGreaterThanOrEqual(200);
    const controller = new AbortController();
    const stream = await client.completions.create({ model: 'tiny', prompt: 'The', max_tokens: 250, temperature: 1, seed: 29, stream: true }, { signal: controller.signal });
    const start = forwards;
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    await expect(client.completions.create({ model: 'tiny', prompt: 'A', max_tokens: 2 })).rejects.toMatchObject({ status: 429 });
    controller.abort();
    await iterator.next().catch(() => undefined);
    // Once the disconnect is seen, no more steps run, and the slot is free again.
    let admitted = false;
    for (let attempt = 0; attempt < 50 && !admitted; attempt++) {
      await new Promise((r) => setTimeout(r, 50));
      admitted = await client.completions.create({ model: 'tiny', prompt: 'A', max_tokens: 1 }).then(() => true, () => false);
    }
    expect(admitted).toBe(true);
    expect(forwards - start).toBeLessThan(200);
  });
});
