import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { decodeSafetensors } from '../src/artifacts/safetensors.js';
import { CausalLm, generate, perplexity } from '../src/generator/index.js';
import { blockFeeds, fineTuneLm } from '../src/generator/fine-tune.js';
import { packCorpus, readCorpus } from '../src/generator/corpus.js';
import { logSoftmaxAt } from '../src/generator/perplexity.js';
import { lmTrainingForward, type LmTrainingForward } from '../src/generator/lm-graph.js';
import { causalLmLoss } from '../src/generator/lm-loss.js';
import { Rng } from '../src/util/rng.js';

/** A 2-layer Llama (RoPE, RMSNorm, SiLU MLP, 4 query heads over 2 KV heads), exported by TorchScript (tools/make-llama-tiny.py). */
const MODEL = new URL('./fixtures/generate/llama-tiny', import.meta.url).pathname;
/** transformers' and PEFT's numbers for the same weights (written by the same tool). */
const REF = JSON.parse(readFileSync(new URL('./fixtures/generate/llama-tiny-reference.json', import.meta.url), 'utf8'));
const VOCAB = 512;
const T = REF.block_length as number;

const heldOutText = () => readFileSync(new URL('../../shared/data/text/agnews/test.tsv', import.meta.url), 'utf8')
  .split('\n').filter((l) => l).slice(0, 12).map((l) => l.split('\t')[0]!.replaceAll(' #39;', "'")).join('\n');
const bytes = () => readFile(join(MODEL, 'onnx/model.onnx')).then((b) => new Uint8Array(b));
const corpusOfRef = () => ({ blockLength: T, ids: Int32Array.from(REF.ids), targets: Uint8Array.from(REF.ids, (_: number, i: number) => (i % T === 0 ? 0 : 1)), blocks: REF.ids.length / T, tokens: REF.ids.length, documents: 1, chunked: 0 });

/** The initializer holding a PyTorch parameter, and its value at PyTorch's flat index `k` (the graph may hold the transpose). */
function parameterOf(forward: LmTrainingForward, parameter: string) {
  const entry = [...forward.parameters].find(([, p]) => p.parameter === parameter);
  if (!entry) throw new Error(`no initializer holds ${parameter}`);
  const [initializer, { transposed }] = entry;
  const [rows, cols] = forward.graph.initializers.get(initializer)!.dims as [number, number];
  // Transposed: the graph's [in, out] = [rows, cols] is PyTorch's [out, in] = [cols, rows].
  const at = (k: number) => (transposed ? (k % rows) * cols + Math.floor(k / rows) : k);
  return { initializer, at };
}

/** Within `relative` of the reference norm (entries) or of the value (norms). */
function expectSample(values: Float32Array, reference: { norm: number; indices: number[]; values: number[] }, at: (k: number) => number, relative: number, what: string) {
  const norm = Math.sqrt(values.reduce((s, v) => s + v * v, 0));
  expect(Math.abs(norm / reference.norm - 1), `${what} norm`).toBeLessThan(relative);
  reference.indices.forEach((index, k) => expect(Math.abs(values[at(index)]! - reference.values[k]!), `${what}[${index}]`).toBeLessThan(relative * reference.norm));
}

let lm: CausalLm;
let dir: string;
beforeAll(async () => {
  lm = await CausalLm.open(MODEL, { threads: 1 });
  dir = await mkdtemp(join(tmpdir(), 'headstart-llama-'));
});
afterAll(async () => {
  await lm?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('a Llama-style decoder (RoPE, RMSNorm, grouped-query attention) in the Optimum ONNX layout', () => {
  it('reads the KV cache of 2 key/value heads for 4 query heads from the graph', () => {
    expect(lm.config).toMatchObject({ model_type: 'llama', num_attention_heads: 4, num_key_value_heads: 2 });
    for (const { prompt, prompt_ids } of REF.greedy) expect(lm.tokenizer.ids(prompt)).toEqual(prompt_ids);
  });

  it('greedy decoding with the KV cache gives transformers\' tokens, one prompt at a time', async () => {
    for (const { prompt, tokens } of REF.greedy) {
      expect(new Set(tokens).size, prompt).toBeGreaterThan(3); // trained weights: not one repeated token
      const [result] = await generate(lm, [prompt], { maxNewTokens: REF.max_new_tokens, temperature: 0 });
      expect(result!.tokenIds).toEqual(tokens);
    }
  });

  it('a left-padded batch gives each prompt transformers\' batched greedy tokens', async () => {
    const results = await generate(lm, REF.greedy_batch.prompts, { maxNewTokens: REF.max_new_tokens });
    expect(results.map((r) => r.tokenIds)).toEqual(REF.greedy_batch.tokens);
  });

  it('perplexity over sliding windows agrees with transformers within 0.5 %', async () => {
    const text = heldOutText();
    for (const window of REF.perplexity.windows) {
      const result = await perplexity(lm, text, { maxLength: window.max_length, stride: window.stride });
      expect(result.tokens).toBe(REF.perplexity.tokens);
      expect(result.scored).toBe(window.scored);
      expect(Math.abs(result.perplexity / window.perplexity - 1)).toBeLessThan(0.005);
    }
  });
});

describe('fine-tuning a Llama-style decoder against PyTorch', () => {
  it('full fine-tuning: loss and gradients (tied embedding, pre-transposed projections, RMSNorm scales) equal transformers\' to 1e-4', async () => {
    const forward = await lmTrainingForward(await bytes(), 'llama-tiny', { blockLength: T, vocabSize: VOCAB, rng: new Rng(0), tieEmbeddings: true });
    expect(forward.tied).toBeDefined();
    // Only PyTorch's parameters are trained: 1 embedding + 2 × (4 attention + 3 MLP + 2 norms) + the final norm.
    expect(forward.baseWeights).toHaveLength(1 + 2 * 9 + 1);
    const names = Object.keys(REF.full.gradients);
    const params = names.map((n) => parameterOf(forward, n));
    const training = buildTrainingGraph({
      graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, T, VOCAB),
      params: params.map((p) => ({ name: p.initializer })), optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 }, outputGradients: true, origin: 'llama-tiny',
    });
    const session = await TrainingSession.create(training, (n) => forward.graph.initializers.get(n)!.data as Float32Array, 'llama-tiny', 1);
    const { batch, targets } = blockFeeds(corpusOfRef(), [0, 1]);
    const result = await session.step(batch, targets, 0);
    await session.release();
    expect(Math.abs(result.loss / REF.full.loss - 1)).toBeLessThan(1e-5);
    names.forEach((name, i) => expectSample(result.gradients!.get(params[i]!.initializer)!, REF.full.gradients[name], params[i]!.at, 1e-4, name));
  }, 120_000);

  it('LoRA on q_proj and v_proj: B gradients and one AdamW step equal PEFT\'s', async () => {
    const { rank, alpha, lr, weight_decay, target_modules } = REF.lora;
    const forward = await lmTrainingForward(await bytes(), 'llama-tiny', { blockLength: T, vocabSize: VOCAB, rng: new Rng(0), tieEmbeddings: true, lora: { rank, alpha, targetModules: target_modules } });
    expect(forward.adapters.map((a) => a.module)).toEqual([0, 1].flatMap((i) => ['q_proj', 'v_proj'].map((m) => `model.layers.${i}.self_attn.${m}`)));
    // An nn.Linear the exporter stored [in, out]: not PEFT's fan_in_fan_out. v_proj maps 64 to 2 KV heads × 16.
    expect(forward.adapters.map((a) => [a.inFeatures, a.outFeatures, a.storedInOut, a.fanInFanOut])).toEqual([0, 1].flatMap(() => [[64, 64, true, false], [64, 32, true, false]]));
    const training = buildTrainingGraph({
      graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, T, VOCAB),
      params: forward.adapters.flatMap((a) => [{ name: a.a, decay: true }, { name: a.b, decay: true }]), optimizer: { kind: 'adamw', weightDecay: weight_decay }, outputGradients: true, origin: 'llama-tiny',
    });
    const isA = new Set(forward.adapters.map((a) => a.a));
    const start = (n: string) => {
      const data = forward.graph.initializers.get(n)!.data as Float32Array;
      return isA.has(n) ? Float32Array.from(data, (_, k) => 0.1 * Math.sin(1 + k)) : data;
    };
    const session = await TrainingSession.create(training, start, 'llama-tiny', 1);
    const { batch, targets } = blockFeeds(corpusOfRef(), [0, 1]);
    const result = await session.step(batch, targets, lr);
    expect(Math.abs(result.loss / REF.lora.loss - 1)).toBeLessThan(1e-5);
    const same = (k: number) => k;
    for (const adapter of forward.adapters) {
      const key = `base_model.model.${adapter.module}.lora_B.default.weight`;
      expectSample(result.gradients!.get(adapter.b)!, REF.lora.B_gradients[key], same, 1e-4, key);
      // Adam's first step moves each weight by about lr: compared to lr, not to the tiny B's norm.
      const after = REF.lora.B_after_step[key];
      const updated = session.weight(adapter.b);
      after.indices.forEach((index: number, k: number) => expect(Math.abs(updated[index]! - after.values[k]), key).toBeLessThan(1e-3 * lr));
    }
    await session.release();
  }, 120_000);

  it('fineTuneLm with LoRA: perplexity falls on a new domain, PEFT\'s adapter keys for Llama, the merged folder scores as the adapters did', async () => {
    // Movie reviews for a model pre-trained on news (on more news it barely moves).
    const lines = readFileSync(new URL('../../shared/data/text/sst2/train.tsv', import.meta.url), 'utf8').split('\n').slice(1, 601).map((l) => l.split('\t')[0]!);
    const [texts, held] = [join(dir, 'reviews.txt'), join(dir, 'held-out.txt')];
    await writeFile(texts, lines.slice(0, 540).join('\n'));
    await writeFile(held, lines.slice(540).join('\n'));
    const out = join(dir, 'lora');
    const { rank, alpha } = REF.lora;
    const result = await fineTuneLm(MODEL, texts, { out, valData: held, maxSteps: 12, blockLength: T, batchSize: 8, evalEvery: 100, report: false, samplePrompts: [], threads: 1, learningRate: 1e-2, lora: { rank, alpha } });
    expect(result.perplexity).toBeLessThan(0.9 * result.perplexityBefore);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: rank, lora_alpha: alpha, target_modules: REF.lora.target_modules, fan_in_fan_out: false });
    const adapter = decodeSafetensors(new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))), 'adapter');
    expect(Object.keys(adapter).sort()).toEqual(REF.lora.saved_keys);
    expect(adapter['base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight']!.shape).toEqual([32, rank]);
    // The folder is a decoder of its own with the adapters merged into the [in, out] weights: on the held-out blocks it
    // scores what fineTuneLm measured on the adapters in the training graph.
    const tuned = await CausalLm.open(out, { threads: 1 });
    const blocks = packCorpus(await readCorpus(held), tuned.tokenizer, T, 0);
    let nll = 0;
    let count = 0;
    for (let b = 0; b < blocks.blocks; b++) {
      const ids = Array.from(blocks.ids.subarray(b * T, (b + 1) * T));
      const { logits } = await tuned.forward(ids, ids.map(() => 1), ids.map((_, i) => i), 1, tuned.emptyCache(1));
      for (let i = 1; i < T; i++) {
        if (!blocks.targets[b * T + i]) continue;
        nll -= logSoftmaxAt(logits, (i - 1) * VOCAB, VOCAB, ids[i]!);
        count++;
      }
    }
    expect(Math.abs(Math.exp(nll / count) / result.perplexity - 1)).toBeLessThan(1e-4);
    const [generated] = await generate(tuned, ['The movie'], { maxNewTokens: 8, temperature: 0 });
    await tuned.dispose();
    expect(generated!.tokenIds.length).toBeGreaterThan(0);
  }, 300_000);
});
