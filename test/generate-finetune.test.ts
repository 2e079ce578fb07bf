import { mkdtemp, readFile, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ort } from '../src/backbones/onnx-session.js';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { decodeSafetensors } from '../src/artifacts/safetensors.js';
import { HfTokenizer } from '../src/backbones/text-tokenizers.js';
import { CausalLm, generate } from '../src/generator/index.js';
import { packCorpus, readCorpus } from '../src/generator/corpus.js';
import { blockFeeds, validationLoss } from '../src/generator/fine-tune.js';
import { lmTrainingForward } from '../src/generator/lm-graph.js';
import { causalLmLoss } from '../src/generator/lm-loss.js';
import { logSoftmaxAt } from '../src/generator/perplexity.js';
import { exportLmFolder } from '../src/generator/lm-export.js';
import { HeadstartError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { runCli } from './helpers/cli.js';
import { spawnSync } from 'node:child_process';

const MODEL = new URL('../../shared/models/gpt2-tiny-news', import.meta.url).pathname;
/** PyTorch + PEFT on the same weights and batch (tools/generate-finetune-reference.py). */
const REF = JSON.parse(readFileSync(new URL('./fixtures/generate/finetune-reference.json', import.meta.url), 'utf8'));
const T = REF.block_length as number;
const VOCAB = 8192;
/** A Python with torch, transformers and peft (the developers' venv; CI has none, so the PEFT check is skipped there). */
const PYTHON = process.env.HEADSTART_PYTHON ?? '/work/pyenv/bin/python';
const hasPeft = spawnSync(PYTHON, ['-c', 'import peft, transformers, torch'], { stdio: 'ignore' }).status === 0;
/** The LoRA folder the CLI test writes and its greedy tokens, for the PEFT check after it. */
let loraRun: { out: string; prompt: string; tokenIds: number[] } | undefined;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headstart-lm-ft-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const corpusOfRef = () => ({ blockLength: T, ids: Int32Array.from(REF.ids), targets: Uint8Array.from(REF.ids, (_: number, i: number) => (i % T === 0 ? 0 : 1)), blocks: REF.ids.length / T, tokens: REF.ids.length, documents: 1, chunked: 0 });
const bytes = () => readFile(join(MODEL, 'onnx/model.onnx')).then((b) => new Uint8Array(b));
const close = (actual: number, expected: number, scale: number) => expect(Math.abs(actual - expected)).toBeLessThan(2e-3 * scale + 1e-6);

describe('causal LM training graphs against PyTorch', () => {
  it('full fine-tuning: loss and gradients (tied embedding included) equal transformers\'', async () => {
    const forward = await lmTrainingForward(await bytes(), 'gpt2-tiny-news', { blockLength: T, vocabSize: VOCAB, rng: new Rng(0), tieEmbeddings: true });
    expect(forward.tied).toBeDefined();
    const onnxName = (hf: string) => forward.baseWeights.find((n) => n === hf || n.endsWith(`.${hf}`))!;
    const names = Object.keys(REF.full.gradients);
    const training = buildTrainingGraph({
      graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, T, VOCAB),
      params: names.map((n) => ({ name: onnxName(n) })), optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 }, outputGradients: true, origin: 'gpt2-tiny-news',
    });
    const session = await TrainingSession.create(training, (n) => forward.graph.initializers.get(n)!.data as Float32Array, 'gpt2-tiny-news', 1);
    const { batch, targets } = blockFeeds(corpusOfRef(), [0, 1]);
    const result = await session.step(batch, targets, 0);
    await session.release();
    close(result.loss, REF.full.loss, 1);
    for (const name of names) {
      const reference = REF.full.gradients[name];
      const grad = result.gradients!.get(onnxName(name))!;
      const norm = Math.sqrt(grad.reduce((s, v) => s + v * v, 0));
      expect(Math.abs(norm / reference.norm - 1), name).toBeLessThan(1e-3);
      reference.indices.forEach((index: number, k: number) => close(grad[index]!, reference.values[k], reference.norm));
    }
  }, 60_000);

  it('LoRA: B gradients, one AdamW step and the loss after it equal PEFT\'s', async () => {
    const { rank, alpha, lr, weight_decay } = REF.lora;
    const forward = await lmTrainingForward(await bytes(), 'gpt2-tiny-news', { blockLength: T, vocabSize: VOCAB, rng: new Rng(0), tieEmbeddings: true, lora: { rank, alpha, targetModules: ['c_attn'] } });
    expect(forward.adapters.map((a) => a.module)).toEqual([0, 1, 2, 3].map((i) => `transformer.h.${i}.attn.c_attn`));
    const training = buildTrainingGraph({
      graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, T, VOCAB),
      params: forward.adapters.flatMap((a) => [{ name: a.a, decay: true }, { name: a.b, decay: true }]), optimizer: { kind: 'adamw', weightDecay: weight_decay }, outputGradients: true, origin: 'gpt2-tiny-news',
    });
    const isA = new Set(forward.adapters.map((a) => a.a));
    const start = (n: string) => {
      const data = forward.graph.initializers.get(n)!.data as Float32Array;
      return isA.has(n) ? Float32Array.from(data, (_, k) => 0.1 * Math.sin(1 + k)) : data;
    };
    const session = await TrainingSession.create(training, start, 'gpt2-tiny-news', 1);
    const corpus = corpusOfRef();
    const { batch, targets } = blockFeeds(corpus, [0, 1]);
    const result = await session.step(batch, targets, lr);
    close(result.loss, REF.lora.loss, 1);
    for (const adapter of forward.adapters) {
      const key = `base_model.model.${adapter.module}.lora_B.default.weight`;
      const grad = REF.lora.B_gradients[key];
      const mine = result.gradients!.get(adapter.b)!;
      grad.indices.forEach((index: number, k: number) => close(mine[index]!, grad.values[k], grad.norm));
      const after = REF.lora.B_after_step[key];
      const updated = session.weight(adapter.b);
      after.indices.forEach((index: number, k: number) => close(updated[index]!, after.values[k], after.norm));
    }
    const logits = await session.evaluate(batch);
    // fineTuneLm's held-out loss: each position's loss from the evaluation graph, no logits fetched.
    const inGraph = await validationLoss(session, corpus, 2);
    await session.release();
    let nll = 0;
    for (let r = 0; r < 2; r++) for (let i = 0; i + 1 < T; i++) nll -= logSoftmaxAt(logits, (r * T + i) * VOCAB, VOCAB, REF.ids[r * T + i + 1]);
    close(nll / (2 * (T - 1)), REF.lora.loss_after_step, 1);
    close(inGraph, REF.lora.loss_after_step, 1);
  }, 60_000);

  it('LoRA dropout: with the same masks, the loss and B gradients equal PEFT\'s, and evaluation does not drop', async () => {
    const { rank, alpha } = REF.lora;
    const { p } = REF.lora_dropout;
    const lora = { rank, alpha, targetModules: ['c_attn'], dropout: p };
    const forward = await lmTrainingForward(await bytes(), 'gpt2-tiny-news', { blockLength: T, vocabSize: VOCAB, rng: new Rng(0), tieEmbeddings: true, lora });
    expect(forward.adapters.every((a) => a.dropoutInput)).toBe(true);
    const training = buildTrainingGraph({
      graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, T, VOCAB),
      params: forward.adapters.flatMap((a) => [{ name: a.a }, { name: a.b }]), optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 }, outputGradients: true, origin: 'gpt2-tiny-news',
    });
    const isA = new Set(forward.adapters.map((a) => a.a));
    const start = (n: string) => {
      const data = forward.graph.initializers.get(n)!.data as Float32Array;
      return isA.has(n) ? Float32Array.from(data, (_, k) => 0.1 * Math.sin(1 + k)) : data;
    };
    const session = await TrainingSession.create(training, start, 'gpt2-tiny-news', 1);
    const corpus = corpusOfRef();
    const { batch, targets } = blockFeeds(corpus, [0, 1]);
    // The reference's masks (tools/generate-finetune-reference.py), as noise: kept p/(1 − p), dropped −1.
    for (const adapter of forward.adapters) {
      const noise = Float32Array.from({ length: 2 * T * adapter.inFeatures }, (_, i) => ((7919 * i + 13) % 101 < 10 ? -1 : p / (1 - p)));
      batch[adapter.dropoutInput!] = new ort.Tensor('float32', noise, [2, T, adapter.inFeatures]);
    }
    const result = await session.step(batch, targets, 0);
    close(result.loss, REF.lora_dropout.loss, 1);
    let differs = false;
    for (const adapter of forward.adapters) {
      const key = `base_model.model.${adapter.module}.lora_B.default.weight`;
      const grad = REF.lora_dropout.B_gradients[key];
      const mine = result.gradients!.get(adapter.b)!;
      grad.indices.forEach((index: number, k: number) => close(mine[index]!, grad.values[k], grad.norm));
      differs ||= Math.abs(grad.norm - REF.lora.B_gradients[key].norm) > 1e-3 * grad.norm;
    }
    expect(differs).toBe(true); // the masks matter: without them the gradients are the no-dropout ones
    // Held-out loss feeds zero noise: with B still zero after an SGD step at rate 0, it is the base model's.
    close(await validationLoss(session, corpus, 2), REF.lora.loss, 1);
    await session.release();
  }, 60_000);
});

describe('training texts', () => {
  it('names the file and line of invalid UTF-8, and refuses an empty corpus', async () => {
    const bad = join(dir, 'bad.txt');
    await writeFile(bad, Buffer.concat([Buffer.from('fine line\nanother\n'), Buffer.from([0x66, 0xff, 0x0a])]));
    const error = await readCorpus(bad).catch((e) => e);
    expect(error).toBeInstanceOf(HeadstartError);
    expect(error.message).toBe(`${bad}: line 3: not valid UTF-8 (save the file as UTF-8)`);
    const empty = join(dir, 'empty.txt');
    await writeFile(empty, '\n\n  \n');
    await expect(readCorpus(empty)).rejects.toThrow(/the corpus is empty/);
  });

  it('splits .txt on blank lines; JSONL prompt/completion puts the loss on the completion only; long documents are counted', async () => {
    const tokenizer = await HfTokenizer.fromFolder(MODEL);
    const folder = join(dir, 'texts');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'a.txt'), 'first document\n\nsecond one\nstill second\n');
    await writeFile(join(folder, 'b.jsonl'), `${JSON.stringify({ prompt: 'Q: two plus two?', completion: ' A: four' })}\n`);
    const documents = await readCorpus(folder);
    expect(documents.map((d) => ('text' in d ? d.text : d.completion))).toEqual(['first document', 'second one\nstill second', ' A: four']);
    const packed = packCorpus(documents, tokenizer, 4, 0);
    const prompt = tokenizer.ids('Q: two plus two?').length;
    const completion = tokenizer.ids(' A: four').length + 1;
    const stream = tokenizer.ids('first document').length + tokenizer.ids('second one\nstill second').length + 2;
    expect(packed.tokens).toBe(stream + prompt + completion);
    expect(packed.chunked).toBe(documents.length - documents.filter((d) => ('text' in d ? tokenizer.ids(d.text).length + 1 : prompt + completion) <= 4).length);
    // Inside the prompt no position is a target; in the completion every one is (but a block's first).
    const targets = [...packed.targets];
    for (let i = stream; i < Math.min(stream + prompt, packed.blocks * 4); i++) expect(targets[i]).toBe(0);
    for (let i = stream + prompt; i < packed.blocks * 4; i++) expect(targets[i]).toBe(i % 4 === 0 ? 0 : 1);
  });
});

describe('headstart train --task generate', () => {
  it('LoRA: perplexity falls, the folder generates, and holds a PEFT adapter', async () => {
    const texts = join(dir, 'fortunes.txt');
    const lines = readFileSync(new URL('../../shared/data/text/sst2/train.tsv', import.meta.url), 'utf8').split('\n').slice(1, 1500);
    await writeFile(texts, lines.map((l) => l.split('\t')[0]).join('\n\n'));
    const out = join(dir, 'lora-model');
    const run = await runCli(['train', texts, '--task', 'generate', '--backbone', MODEL, '--lora', '8', '--lr', '5e-4', '--patience', '12', '--max-steps', '12', '--block-length', '64', '--out', out, '--json', '-q']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.perplexity).toBeLessThan(metrics.perplexityBefore);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    // --lr 5e-4 (and no early stop): the base model was pre-trained on this text, and 12 steps at the default 2e-3 on the
    // embedding it trains in full overshoot (perplexity 84.0 → 85.8). Defaults: alpha 2 × rank; the tied embedding and ln_f trained in full, saved as PEFT's modules_to_save.
    expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'], fan_in_fan_out: true, modules_to_save: ['transformer.wte', 'transformer.ln_f'], ensure_weight_tying: true });
    const adapter = decodeSafetensors(new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))), 'adapter');
    const saved = ['transformer.wte.weight', 'lm_head.weight', 'transformer.ln_f.weight', 'transformer.ln_f.bias'].map((k) => `base_model.model.${k}`);
    expect(Object.keys(adapter).sort()).toEqual([...[0, 1, 2, 3].flatMap((i) => ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'].flatMap((module) => ['A', 'B'].map((m) => `base_model.model.transformer.h.${i}.${module}.lora_${m}.weight`))), ...saved].sort());
    expect(adapter['base_model.model.transformer.h.0.attn.c_attn.lora_B.weight']!.shape).toEqual([768, 8]);
    expect(adapter['base_model.model.lm_head.weight']!.shape).toEqual([8192, 256]);
    expect(adapter['base_model.model.lm_head.weight']!.data).toEqual(adapter['base_model.model.transformer.wte.weight']!.data);
    // The folder is a decoder folder of its own (LoRA merged), with the base model's inputs and outputs.
    const tuned = await CausalLm.open(out, { threads: 1 });
    const [result] = await generate(tuned, ['the movie'], { maxNewTokens: 12, temperature: 0 });
    await tuned.dispose();
    loraRun = { out, prompt: 'the movie', tokenIds: result!.tokenIds };
    expect((await stat(join(out, 'manifest.json'))).isFile()).toBe(true);
    // The report carries the curves, both perplexities and generations before and after from held-out openings.
    const html = await readFile(join(out, 'report.html'), 'utf8');
    const report = JSON.parse(html.match(/<script type="application\/json" id="report-data">(.*?)<\/script>/s)![1]!.replace(/\\u003c/g, '<'));
    expect(report).toMatchObject({ kind: 'lm', perplexity: metrics.perplexity, perplexityBefore: metrics.perplexityBefore, steps: 12 });
    expect(report.curve).toHaveLength(12);
    expect(report.curve.filter((p: any) => p.validationLoss !== undefined).length).toBeGreaterThan(3);
    expect(report.samples.length).toBeGreaterThan(0);
    for (const sample of report.samples) expect(typeof sample.before === 'string' && typeof sample.after === 'string').toBe(true);
    // Exported, transformers.js loads it as any Hugging Face ONNX decoder and decodes the same greedy tokens.
    const exported = join(dir, 'exported');
    const written = await exportLmFolder(out, exported);
    expect(written.files).toContain('onnx/model.onnx');
    const { AutoTokenizer, AutoModelForCausalLM, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.localModelPath = `${dir}/`;
    const tokenizer = await AutoTokenizer.from_pretrained('exported');
    const model = await AutoModelForCausalLM.from_pretrained('exported', { dtype: 'fp32' });
    const inputs = tokenizer('the movie');
    const output = (await model.generate({ ...inputs, max_new_tokens: 12, do_sample: false })) as unknown as { data: BigInt64Array };
    const promptLength = tuned.tokenizer.ids('the movie').length;
    const theirs = Array.from(output.data, Number).slice(promptLength);
    expect(theirs.slice(0, result!.tokenIds.length)).toEqual(result!.tokenIds);
    await model.dispose();
  }, 300_000);

  it.skipIf(!hasPeft)('PEFT loads the saved adapter onto the base model and decodes the same greedy tokens as the merged folder', () => {
    expect(loraRun).toBeDefined();
    const run = spawnSync(PYTHON, [new URL('../tools/check-peft-adapter.py', import.meta.url).pathname, MODEL, loraRun!.out, loraRun!.prompt, '12'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const theirs = JSON.parse(run.stdout.trim().split('\n').pop()!) as number[];
    // PEFT stops at EOS and includes it; headstart's ids end before it.
    expect(theirs.slice(0, loraRun!.tokenIds.length)).toEqual(loraRun!.tokenIds);
    expect(loraRun!.tokenIds.length).toBeGreaterThan(0);
  }, 120_000);
});

describe('gradient accumulation', () => {
  it('two accumulated micro-batches of 2 blocks train exactly as one batch of 4', async () => {
    const { fineTuneLm } = await import('../src/generator/fine-tune.js');
    const texts = join(dir, 'accumulate.txt');
    const lines = readFileSync(new URL('../../shared/data/text/agnews/dev.tsv', import.meta.url), 'utf8').split('\n').slice(300, 420);
    await writeFile(texts, lines.map((l) => l.split('\t')[0]).join('\n\n'));
    const common = { maxSteps: 3, blockLength: 32, evalEvery: 100, report: false, samplePrompts: [], threads: 1, learningRate: 1e-3 };
    const one = await fineTuneLm(MODEL, texts, { ...common, out: join(dir, 'batch4'), batchSize: 4 });
    const accumulated = await fineTuneLm(MODEL, texts, { ...common, out: join(dir, 'accum2x2'), batchSize: 2, gradAccumulation: 2 });
    expect(accumulated.steps).toBe(3);
    expect(accumulated.curve.map((p) => p.loss)).toEqual(one.curve.map((p) => expect.closeTo(p.loss, 4)));
    expect(Math.abs(accumulated.perplexity / one.perplexity - 1)).toBeLessThan(1e-3);
    // The steps did move the weights (so the equality above is not of two untouched models).
    expect(Math.abs(one.perplexity / one.perplexityBefore - 1)).toBeGreaterThan(0.01);
  }, 300_000);
});

describe('LoRA dropout', () => {
  it('is seeded (same seed, same adapter), changes training, and is written to adapter_config.json', async () => {
    const { fineTuneLm } = await import('../src/generator/fine-tune.js');
    const texts = join(dir, 'dropout.txt');
    const lines = readFileSync(new URL('../../shared/data/text/agnews/dev.tsv', import.meta.url), 'utf8').split('\n').slice(500, 600);
    await writeFile(texts, lines.map((l) => l.split('\t')[0]).join('\n\n'));
    const common = { maxSteps: 3, blockLength: 32, batchSize: 4, evalEvery: 100, report: false, samplePrompts: [], threads: 1, learningRate: 5e-3 };
    const run = (name: string, dropout: number, seed = 0) => fineTuneLm(MODEL, texts, { ...common, seed, out: join(dir, name), lora: { rank: 4, targetModules: ['c_attn'], modulesToSave: [], dropout } });
    const a = await run('dropout-a', 0.2);
    const b = await run('dropout-b', 0.2);
    const none = await run('dropout-none', 0);
    expect(b.curve.map((p) => p.loss)).toEqual(a.curve.map((p) => p.loss));
    const adapter = (name: string) => readFile(join(dir, name, 'adapter_model.safetensors'));
    expect(Buffer.compare(await adapter('dropout-a'), await adapter('dropout-b'))).toBe(0);
    expect(Buffer.compare(await adapter('dropout-a'), await adapter('dropout-none'))).not.toBe(0);
    // Step 1 starts from B = 0, where dropout cannot change the loss; later steps see the dropped inputs.
    expect(a.curve[2]!.loss).not.toBe(none.curve[2]!.loss);
    const config = JSON.parse(await readFile(join(dir, 'dropout-a', 'adapter_config.json'), 'utf8'));
    expect(config.lora_dropout).toBe(0.2);
    await expect(run('dropout-bad', 1)).rejects.toThrow(/LoRA dropout must be in \[0, 1\), got 1/);
  }, 300_000);
});

describe('compare --task generate', () => {
  it('the pre-trained model beats its architecture from random initialisation on the same budget', async () => {
    const { compareLm } = await import('../src/generator/compare.js');
    const texts = join(dir, 'news.txt');
    const lines = readFileSync(new URL('../../shared/data/text/agnews/dev.tsv', import.meta.url), 'utf8').split('\n').slice(0, 300);
    await writeFile(texts, lines.map((l) => l.split('\t')[0]).join('\n\n'));
    const result = await compareLm(MODEL, texts, { maxSteps: 4, blockLength: 32, evalEvery: 2, threads: 1 });
    const [pretrained, scratch] = result.contenders;
    expect(pretrained.steps).toBe(4);
    expect(scratch.steps).toBe(4);
    expect(scratch.perplexityBefore).toBeGreaterThan(5000); // about the vocabulary size: it knows nothing
    expect(pretrained.perplexity).toBeLessThan(scratch.perplexity / 5);
    expect(pretrained.curve.map((p) => p.trainTokens)).toEqual([2 * 8 * 32, 4 * 8 * 32]);
  }, 300_000);
});
