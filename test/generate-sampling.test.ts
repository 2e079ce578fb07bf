import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { applyRepetitionPenalty, candidates, CausalLm, generate, pickToken, resolveGeneration, streamGenerate } from '../src/generator/index.js';
import { HeadstartError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const MODEL = new URL('../../shared/models/gpt2-tiny-news', import.meta.url).pathname;
const softmax = (xs: number[]) => {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('logits processors (transformers semantics)', () => {
  const logits = Float32Array.from([1, 3, 2, -1, 0.5]);

  it('temperature scales before the softmax; top-k keeps the k largest', () => {
    const { ids, probabilities } = candidates(logits, { temperature: 2, topK: 3, topP: 1, minP: 0 });
    expect(ids).toEqual([1, 2, 0]);
    const expected = softmax([3 / 2, 2 / 2, 1 / 2]);
    probabilities.forEach((p, i) => expect(p).toBeCloseTo(expected[i]!, 6));
  });

  it('top-p keeps the smallest most-likely set reaching p; min-p drops tokens below p × max', () => {
    const full = softmax([...logits]);
    // sorted: 3 (0.56), 2 (0.21), 1 (0.076), ... : p = 0.7 needs the first two.
    expect(candidates(logits, { temperature: 1, topK: 0, topP: 0.7, minP: 0 }).ids).toEqual([1, 2]);
    const minP = 0.2; // keeps tokens with p ≥ 0.2 × 0.56
    const kept = [1, 2, 0, 4, 3].filter((i) => full[i]! >= minP * full[1]!);
    expect(candidates(logits, { temperature: 1, topK: 0, topP: 1, minP }).ids).toEqual(kept);
  });

  it('the repetition penalty divides positive and multiplies negative logits of seen tokens', () => {
    const x = Float32Array.from(logits);
    applyRepetitionPenalty(x, [1, 3, 1], 2);
    expect([...x]).toEqual([1, 1.5, 2, -2, 0.5]);
  });

  it('sampling draws in proportion to the probabilities, reproducibly from a seed', () => {
    const settings = { doSample: true, temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 };
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 4000 }, () => pickToken(logits, settings, rng));
    };
    const a = draw(7);
    expect(draw(7)).toEqual(a);
    expect(draw(8)).not.toEqual(a);
    const p = softmax([...logits]);
    for (let id = 0; id < 5; id++) expect(a.filter((t) => t === id).length / a.length).toBeCloseTo(p[id]!, 1);
  });

  it('generation_config defaults are honoured and overridable; temperature 0 is greedy', () => {
    const defaults = { maxNewTokens: 20, doSample: true, temperature: 0.7, topK: 40, topP: 0.9, minP: 0, repetitionPenalty: 1.1, eosTokenIds: [0] };
    expect(resolveGeneration(defaults, {})).toMatchObject({ doSample: true, temperature: 0.7, topK: 40 });
    expect(resolveGeneration(defaults, { temperature: 0 }).doSample).toBe(false);
    expect(resolveGeneration({ ...defaults, doSample: false }, { topK: 5 })).toMatchObject({ doSample: true, topK: 5, temperature: 0.7 });
    expect(() => resolveGeneration(defaults, { topP: 1.5 })).toThrow(/topP must be in \(0, 1\]/);
  });
});

describe('generation with gpt2-tiny-news', () => {
  let lm: CausalLm;
  beforeAll(async () => {
    lm = await CausalLm.open(MODEL, { threads: 1 });
  });
  afterAll(async () => lm?.dispose());

  it('reads the model\'s generation_config.json: greedy, EOS 0, context 256', () => {
    expect(lm.defaults).toMatchObject({ doSample: false, eosTokenIds: [0] });
    expect(lm.contextLength).toBe(256);
    expect(lm.layers).toBe(4);
  });

  it('seeded sampling repeats itself and differs across seeds', async () => {
    const options = { maxNewTokens: 16, temperature: 1, topK: 50 };
    const [a] = await generate(lm, ['The stock market'], { ...options, seed: 3 });
    const [b] = await generate(lm, ['The stock market'], { ...options, seed: 3 });
    const [c] = await generate(lm, ['The stock market'], { ...options, seed: 4 });
    expect(b!.tokenIds).toEqual(a!.tokenIds);
    expect(c!.tokenIds).not.toEqual(a!.tokenIds);
    expect(a!.seed).toBe(3);
  });

  it('a stop string ends the text before it, and no streamed piece contains it', async () => {
    const [greedy] = await generate(lm, ['The stock market'], { maxNewTokens: 24 });
    const stop = greedy!.text.slice(10, 14);
    const pieces: string[] = [];
    let result;
    for await (const event of streamGenerate(lm, ['The stock market'], { maxNewTokens: 24, stop: [stop] })) {
      if (event.type === 'token') pieces.push(event.text);
      else result = event.result;
    }
    expect(result!.finishReason).toBe('stop');
    expect(result!.text).toBe(greedy!.text.slice(0, greedy!.text.indexOf(stop)));
    expect(pieces.join('')).toBe(result!.text);
  });

  it('an aborted signal stops generation', async () => {
    const controller = new AbortController();
    let tokens = 0;
    for await (const event of streamGenerate(lm, ['The'], { maxNewTokens: 50, signal: controller.signal })) {
      if (event.type === 'token' && ++tokens === 3) controller.abort();
      if (event.type === 'done') expect(event.result.tokenIds.length).toBe(3);
    }
    expect(tokens).toBe(3);
  });

  it('a prompt longer than the context: an error, or left truncation that says how much', async () => {
    const long = 'the market rose and fell again '.repeat(60);
    await expect(generate(lm, [long], { maxNewTokens: 2 })).rejects.toThrow(/the prompt has \d+ tokens; this model's context is 256 tokens/);
    const [result] = await generate(lm, [long], { maxNewTokens: 2, truncatePrompt: 'left' });
    expect(result!.promptTokens).toBe(255);
    expect(result!.truncatedPromptTokens).toBe(lm.tokenizer.ids(long).length - 255);
    expect(result!.tokenIds.length).toBe(1); // the context is then full
  });
});

describe('model folders that are not causal LMs with a cache', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'headstart-lm-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('a graph without attention_mask is refused, naming the input', async () => {
    const folder = join(dir, 'no-mask');
    await mkdir(join(folder, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(MODEL, f), join(folder, f));
    const graph = new OnnxGraph();
    const ids = graph.addInput('input_ids', [-1, -1], 'int64');
    graph.nodes.push({ name: 'cast', op: 'Cast', inputs: [ids], outputs: ['logits'], attributes: { to: attr.int(1) } });
    graph.output = { name: 'logits', shape: [-1, -1], dtype: 'float32' };
    await writeFile(join(folder, 'onnx/model.onnx'), encodeModel(graph, 'no-mask', 'test'));
    const error = await CausalLm.open(folder).catch((e) => e);
    expect(error).toBeInstanceOf(HeadstartError);
    expect(error.message).toMatch(/no input "attention_mask"/);
    expect(error.message).toContain(join(folder, 'onnx/model.onnx'));
  });

  it('a folder without a decoder graph is refused, naming the layouts', async () => {
    await expect(CausalLm.open(dir)).rejects.toThrow(/no onnx\/model\.onnx or onnx\/decoder_model_merged\.onnx/);
  });
});

describe('headstart generate', () => {
  it('streams a greedy continuation with --temperature 0, and refuses an over-long prompt without printing it', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const ok = await runCli(['generate', MODEL, 'The stock market', '--max-new-tokens', '8', '--temperature', '0']);
    expect(ok.code).toBe(0);
    const lm = await CausalLm.open(MODEL, { threads: 1 });
    const [expected] = await generate(lm, ['The stock market'], { maxNewTokens: 8, temperature: 0 });
    await lm.dispose();
    expect(ok.stdout).toBe(`The stock market${expected!.text}\n`);
    const long = await runCli(['generate', MODEL, 'word '.repeat(300), '-n', '2']);
    expect(long.code).toBe(2);
    expect(long.stdout).toBe('');
    expect(long.stderr).toMatch(/the prompt has 30\d tokens; this model's context is 256/);
  });
});

describe('hf: references', () => {
  it('pulls a causal LM through the shared Hugging Face cache (only its files), then opens it offline, pinned to the commit', async () => {
    const { startHubServer } = await import('./helpers/hub-server.js');
    const server = await startHubServer([{ id: 'test-org/gpt2-tiny-news', dir: MODEL }]);
    const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-lm-hub-'));
    try {
      const hub = { endpoint: server.url, cacheDir, offline: false };
      const lm = await CausalLm.open('hf:test-org/gpt2-tiny-news', { hub, threads: 1 });
      expect(lm.reference).toBe(`hf:test-org/gpt2-tiny-news@${server.commitOf('test-org/gpt2-tiny-news')}`);
      const [result] = await generate(lm, ['The stock market'], { maxNewTokens: 4 });
      await lm.dispose();
      const local = await CausalLm.open(MODEL, { threads: 1 });
      const [expected] = await generate(local, ['The stock market'], { maxNewTokens: 4 });
      await local.dispose();
      expect(result!.tokenIds).toEqual(expected!.tokenIds);
      const downloaded = server.requests.filter((r) => r.path.includes('/resolve/')).map((r) => r.path.split('/resolve/')[1]!.split('/').slice(1).join('/')).sort();
      expect(downloaded).toEqual(['config.json', 'generation_config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
      server.reset();
      const offline = await CausalLm.open('hf:test-org/gpt2-tiny-news', { hub: { ...hub, offline: true }, threads: 1 });
      await offline.dispose();
      expect(server.requests).toHaveLength(0);
    } finally {
      await server.close();
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
