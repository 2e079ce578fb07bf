import { readFile } from 'node:fs/promises';
import { ort } from '../backbones/onnx-session.js';
import { buildTrainingGraph, type ParamSpec } from '../autodiff/training-graph.js';
import { TrainingSession } from '../autodiff/training-session.js';
import { makeSchedule } from '../train/schedule.js';
import { AdamW } from '../train/adamw.js';
import { dataError, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { CausalLm } from './causal-lm.js';
import { packCorpus, readCorpus, type PackedCorpus } from './corpus.js';
import { dropoutNoise, lmTrainingForward, savedModuleWeights, type LmTrainingForward, type LoraSettings } from './lm-graph.js';
import { causalLmLoss, LM_TARGETS, LM_WEIGHTS } from './lm-loss.js';
import { generate } from './generate.js';
import { saveLmFolder } from './lm-folder.js';
import { writeLmReport } from '../report/lm-report.js';

export interface LmFineTuneOptions {
  /** Where the model folder is written. */
  out: string;
  /** Held-out texts; default: the last `valShare` of the training blocks (by position). */
  valData?: string;
  valShare?: number;
  /** LoRA instead of full fine-tuning. */
  lora?: Partial<LoraSettings> & { rank: number; dropout?: number };
  /** Tokens per training block (default 128, at most the context). */
  blockLength?: number;
  /** Blocks per forward pass (default 8). */
  batchSize?: number;
  /** Forward passes whose gradients add up to one optimiser step (default 1): an effective batch of batchSize × this. */
  gradAccumulation?: number;
  /** Passes over the training blocks (default 1). */
  epochs?: number;
  /** Stop after this many steps, whatever the epochs say. */
  maxSteps?: number;
  /** Peak learning rate (default 5e-4 full, 2e-3 LoRA). */
  learningRate?: number;
  weightDecay?: number;
  /** Linear warm-up share of the steps before the cosine decay (default 0.05). */
  warmupFraction?: number;
  /** Global gradient-norm clip (default 1). */
  clipGradNorm?: number;
  /** Held-out loss every this many steps (default: 10 times per run); early stopping after `patience` evaluations without improvement. */
  evalEvery?: number;
  patience?: number;
  /** Blocks of the held-out set the periodic evaluations use (default 64; perplexity at the end uses all). */
  evalBlocks?: number;
  /** Start from random weights (GPT-2's initialisation) instead of the pre-trained ones: the scratch baseline. */
  fromScratch?: boolean;
  seed?: number;
  threads?: number;
  /** Prompts generated from (greedy, 40 tokens) before and after, for the report (default: the first 8 tokens of three held-out blocks). */
  samplePrompts?: string[];
  /** Write report.html into the folder (default true). */
  report?: boolean;
  hub?: { offline?: boolean; token?: string };
  reporter?: Reporter;
}

export interface LmFineTuneResult {
  out: string;
  perplexityBefore: number;
  perplexity: number;
  steps: number;
  seconds: number;
  trainTokens: number;
  validationTokens: number;
  blockLength: number;
  chunkedDocuments: number;
  /** Training loss per step and held-out loss per evaluation. */
  curve: { step: number; loss: number; validationLoss?: number; learningRate: number }[];
  samples: { prompt: string; before: string; after: string }[];
  stoppedEarly: boolean;
}

const DEFAULTS = { blockLength: 128, batchSize: 8, epochs: 1, weightDecay: 0.01, warmupFraction: 0.05, clipGradNorm: 1, patience: 3, evalBlocks: 64, valShare: 0.1, seed: 0 };

/**
 * Fine-tunes a causal LM on texts: the corpus packed into blocks, AdamW with warm-up and cosine
 * decay, gradient clipping, held-out loss for early stopping (the best weights are kept), all as
 * ONNX training graphs from src/autodiff. Writes a model folder that is itself a Hugging Face ONNX
 * decoder folder (generate from it, serve it) plus the adapter in PEFT's format when LoRA.
 */
export async function fineTuneLm(base: string, data: string, options: LmFineTuneOptions): Promise<LmFineTuneResult> {
  const reporter = options.reporter ?? silentReporter;
  const settings = { ...DEFAULTS, ...definedOnly(options) };
  const dropout = options.lora?.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw usageError(`LoRA dropout must be in [0, 1), got ${options.lora?.dropout}`);
  const lm = await CausalLm.open(base, { hub: options.hub, threads: options.threads, reporter });
  try {
    const blockLength = Math.min(settings.blockLength, lm.contextLength);
    const eos = lm.defaults.eosTokenIds[0] ?? lm.defaults.bosTokenId;
    if (eos === undefined) throw usageError(`${base}: the model has no EOS token to separate documents with`);
    const documents = await readCorpus(data);
    let train = packCorpus(documents, lm.tokenizer, blockLength, eos);
    let validation: PackedCorpus;
    if (options.valData) validation = packCorpus(await readCorpus(options.valData), lm.tokenizer, blockLength, eos);
    else {
      if (train.blocks < 2) throw dataError(`too little text to hold some out: ${train.tokens} tokens make ${train.blocks} block of ${blockLength}; give --val-data`, data);
      const held = Math.max(1, Math.round(train.blocks * settings.valShare));
      [train, validation] = splitBlocks(train, train.blocks - held);
    }
    reporter.info(`${train.documents} documents: ${train.blocks} training blocks of ${blockLength} tokens, ${validation.blocks} held out; ${train.chunked} documents longer than a block were split`);

    const rng = new Rng(settings.seed);
    const lora = options.lora
      ? { rank: options.lora.rank, alpha: options.lora.alpha ?? 2 * options.lora.rank, dropout, targetModules: options.lora.targetModules ?? defaultTargets(lm.config), modulesToSave: options.lora.modulesToSave ?? defaultModulesToSave(lm.config) }
      : undefined;
    const graphBytes = new Uint8Array(await readFile(lm.graphPath));
    const forward = await lmTrainingForward(graphBytes, lm.graphPath, {
      blockLength,
      vocabSize: lm.vocabSize,
      lora,
      rng: rng.fork(),
      tieEmbeddings: lm.config.tie_word_embeddings !== false,
    });
    // The default's lm_head means the tied embedding: a model whose export could not be re-tied keeps the rest.
    if (lora && !options.lora?.modulesToSave && !forward.tied) lora.modulesToSave = lora.modulesToSave.filter((m) => m !== 'lm_head');
    const saved = lora ? savedModuleWeights(forward, lora.modulesToSave) : [];
    const params: ParamSpec[] = lora ? [...forward.adapters.flatMap((a) => [{ name: a.a }, { name: a.b }]), ...saved.map((w) => ({ name: w.initializer }))] : forward.baseWeights.map((name) => ({ name }));
    const accumulate = settings.gradAccumulation ?? 1;
    if (!(Number.isInteger(accumulate) && accumulate >= 1)) throw usageError(`gradient accumulation must be an integer ≥ 1, got ${accumulate}`);
    const training = buildTrainingGraph({
      graph: forward.graph,
      info: forward.info,
      logits: forward.logits,
      loss: causalLmLoss(forward.logits, blockLength, lm.vocabSize),
      params,
      // Accumulating, the graph only computes gradients (SGD at rate 0 leaves the weights); AdamW then runs here.
      optimizer: accumulate > 1 ? { kind: 'sgd', weightDecay: 0, momentum: 0 } : { kind: 'adamw', weightDecay: settings.weightDecay },
      clipGradNorm: accumulate > 1 ? undefined : settings.clipGradNorm,
      outputGradients: accumulate > 1,
      origin: lm.graphPath,
    });
    const start = options.fromScratch ? randomInitialisation(forward, lm.config, rng.fork()) : undefined;
    const initial = (name: string) => start?.get(name) ?? (forward.graph.initializers.get(name)!.data as Float32Array);
    const session = await TrainingSession.create(training, initial, lm.graphPath, options.threads);
    const accumulator = accumulate > 1 ? new GradientAccumulator(training.params.map((p) => ({ name: p.name, dims: p.dims })), (name) => session.weight(name), settings.weightDecay, settings.clipGradNorm) : undefined;
    try {
      const evaluate = async (limit?: number) => validationLoss(session, validation, settings.batchSize, limit);
      const samplePrompts = options.samplePrompts ?? defaultPrompts(lm, validation);
      const before = samplePrompts.length && !options.fromScratch ? await generate(lm, samplePrompts, { maxNewTokens: 40, temperature: 0 }) : [];
      const perplexityBefore = Math.exp(await evaluate());
      reporter.info(`held-out perplexity before: ${perplexityBefore.toFixed(1)}`);

      const perStep = settings.batchSize * accumulate;
      const stepsPerEpoch = Math.floor(train.blocks / perStep) || 1;
      const totalSteps = Math.min(settings.maxSteps ?? Infinity, stepsPerEpoch * settings.epochs);
      const learningRate = settings.learningRate ?? (lora ? 2e-3 : 5e-4);
      const schedule = makeSchedule('cosine', learningRate, totalSteps, settings.warmupFraction);
      const evalEvery = settings.evalEvery ?? Math.max(1, Math.round(totalSteps / 10));
      const curve: LmFineTuneResult['curve'] = [];
      let best = { loss: Infinity, step: 0, weights: session.snapshot() };
      let sinceBest = 0;
      let stoppedEarly = false;
      const started = performance.now();
      const task = reporter.task('fine-tuning', totalSteps, 'steps');
      const order = rng.fork();
      // Forked after the others, so that runs without dropout draw exactly what they drew before it existed.
      const dropoutRng = rng.fork();
      const noise = (rows: number) => (dropout > 0 ? dropoutNoise(forward, rows, dropout, dropoutRng) : {});
      let step = 0;
      outer: for (let epoch = 0; step < totalSteps; epoch++) {
        const blocks = order.shuffle(Array.from({ length: train.blocks }, (_, i) => i));
        for (let at = 0; at + perStep <= blocks.length || (at === 0 && blocks.length > 0); at += perStep) {
          if (step >= totalSteps) break outer;
          const rows = blocks.slice(at, at + perStep);
          const rate = schedule(step);
          let result: { loss: number };
          if (accumulator) {
            let lossSum = 0;
            let countSum = 0;
            for (let micro = 0; micro < rows.length; micro += settings.batchSize) {
              const microRows = rows.slice(micro, micro + settings.batchSize);
              const { batch, targets, count } = blockFeeds(train, microRows);
              Object.assign(batch, noise(microRows.length));
              keepInputs(batch, session);
              const part = await session.step(batch, targets, 0, { logits: false });
              accumulator.add(part.gradients!, count);
              lossSum += part.loss * count;
              countSum += count;
            }
            accumulator.apply(rate);
            result = { loss: lossSum / Math.max(countSum, 1) };
          } else {
            const { batch, targets } = blockFeeds(train, rows);
            Object.assign(batch, noise(rows.length));
            keepInputs(batch, session);
            result = await session.step(batch, targets, rate, { logits: false });
          }
          step++;
          task.tick();
          const point: LmFineTuneResult['curve'][number] = { step, loss: result.loss, learningRate: rate };
          curve.push(point);
          if (step % evalEvery === 0 || step === totalSteps) {
            point.validationLoss = await evaluate(settings.evalBlocks);
            if (point.validationLoss < best.loss - 1e-4) {
              best = { loss: point.validationLoss, step, weights: session.snapshot() };
              sinceBest = 0;
            } else if (++sinceBest >= settings.patience) {
              stoppedEarly = true;
              break outer;
            }
          }
          if (rows.length < perStep) break;
        }
      }
      task.done();
      const seconds = (performance.now() - started) / 1000;
      const finalWeights = best.weights;
      for (const [name, value] of finalWeights) session.weight(name).set(value);
      const perplexity = Math.exp(await evaluate());
      reporter.info(`held-out perplexity after ${step} steps (${seconds.toFixed(0)} s): ${perplexity.toFixed(1)}`);
      const folder = await saveLmFolder(options.out, {
        lm,
        graphBytes,
        forward,
        weights: finalWeights,
        lora: lora ? { ...lora, saved } : undefined,
        startWeights: start,
        metrics: { perplexity, perplexityBefore, validationTokens: validation.blocks * blockLength, trainTokens: train.blocks * blockLength, steps: step, bestStep: best.step, seconds },
        training: { base: lm.reference, data, valData: options.valData ?? null, blockLength, batchSize: settings.batchSize, learningRate, weightDecay: settings.weightDecay, warmupFraction: settings.warmupFraction, clipGradNorm: settings.clipGradNorm, epochs: settings.epochs, seed: settings.seed, lora: lora ?? null, fromScratch: Boolean(options.fromScratch), chunkedDocuments: train.chunked, curve },
      });
      let samples: LmFineTuneResult['samples'] = [];
      if (samplePrompts.length) {
        const tuned = await CausalLm.open(folder, { threads: options.threads });
        try {
          const after = await generate(tuned, samplePrompts, { maxNewTokens: 40, temperature: 0 });
          samples = samplePrompts.map((prompt, i) => ({ prompt, before: before[i]?.text ?? '', after: after[i]!.text }));
        } finally {
          await tuned.dispose();
        }
      }
      if (options.report !== false) {
        await writeLmReport(folder, {
          base: lm.reference, perplexityBefore, perplexity, steps: step, seconds, trainTokens: train.blocks * blockLength, validationTokens: validation.blocks * blockLength,
          chunkedDocuments: train.chunked, curve, samples,
          settings: { data, valData: options.valData ?? null, blockLength, batchSize: settings.batchSize, learningRate, lora: lora ?? null, fromScratch: Boolean(options.fromScratch), stoppedEarly, bestStep: best.step },
        });
      }
      return {
        out: folder,
        perplexityBefore,
        perplexity,
        steps: step,
        seconds,
        trainTokens: train.blocks * blockLength,
        validationTokens: validation.blocks * blockLength,
        blockLength,
        chunkedDocuments: train.chunked,
        curve,
        samples,
        stoppedEarly,
      };
    } finally {
      await session.release();
    }
  } finally {
    await lm.dispose();
  }
}

/** Three held-out openings (blocks at the start, middle and end), 8 tokens each. */
function defaultPrompts(lm: CausalLm, validation: PackedCorpus): string[] {
  const T = validation.blockLength;
  const picks = [...new Set([0, Math.floor(validation.blocks / 2), validation.blocks - 1])];
  return picks.map((b) => lm.tokenizer.decode(Array.from(validation.ids.subarray(b * T, b * T + 8)))).filter((p) => p.trim().length > 0);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Modules LoRA also trains in full by default. GPT-2: the tied embedding (`lm_head`, 2.1 M of
 * gpt2-tiny-news's 5.3 M weights) and the final LayerNorm — on a new domain (news → fortunes) the
 * adapters alone cannot move the vocabulary's vectors, and stayed 3× off full fine-tuning's
 * perplexity (tools/lora-sweep-fortunes.py; notes/lora-close.md). PEFT saves and loads them
 * (modules_to_save with ensure_weight_tying).
 */
function defaultModulesToSave(config: Record<string, any>): string[] {
  return config.model_type === 'gpt2' && config.tie_word_embeddings !== false ? ['lm_head', 'ln_f'] : [];
}

/** Default LoRA targets per architecture: PEFT's (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING) but for GPT-2. */
function defaultTargets(config: Record<string, any>): string[] {
  switch (config.model_type) {
    case 'gpt2':
      // PEFT's default is c_attn alone; every projection (attention, its output, the MLP's two) came
      // 8 points of perplexity closer to full fine-tuning on fortunes (tools/lora-sweep-fortunes.py).
      return ['c_attn', 'c_proj', 'c_fc'];
    case 'gpt_neox':
      return ['query_key_value'];
    default:
      return ['q_proj', 'v_proj'];
  }
}

function splitBlocks(corpus: PackedCorpus, at: number): [PackedCorpus, PackedCorpus] {
  const T = corpus.blockLength;
  const part = (from: number, to: number): PackedCorpus => ({ ...corpus, ids: corpus.ids.slice(from * T, to * T), targets: corpus.targets.slice(from * T, to * T), blocks: to - from });
  return [part(0, at), { ...part(at, corpus.blocks), chunked: 0 }];
}

/** input_ids / attention_mask / position_ids and the loss's targets for some blocks. */
export function blockFeeds(corpus: PackedCorpus, rows: number[]): { batch: Record<string, ort.Tensor>; targets: Record<string, ort.Tensor>; count: number } {
  const T = corpus.blockLength;
  const n = rows.length;
  const ids = new BigInt64Array(n * T);
  const next = new BigInt64Array(n * T);
  const weights = new Float32Array(n * T);
  let count = 0;
  rows.forEach((row, r) => {
    for (let i = 0; i < T; i++) {
      ids[r * T + i] = BigInt(corpus.ids[row * T + i]!);
      if (i + 1 < T && corpus.targets[row * T + i + 1]) {
        next[r * T + i] = BigInt(corpus.ids[row * T + i + 1]!);
        weights[r * T + i] = 1;
        count++;
      }
    }
  });
  for (let i = 0; i < weights.length; i++) weights[i]! /= Math.max(count, 1);
  return {
    batch: {
      input_ids: new ort.Tensor('int64', ids, [n, T]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n * T).fill(1n), [n, T]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n * T }, (_, i) => BigInt(i % T)), [n, T]),
    },
    targets: { [LM_TARGETS]: new ort.Tensor('int64', next, [n, T]), [LM_WEIGHTS]: new ort.Tensor('float32', weights, [n, T]) },
    count,
  };
}

/**
 * Gradient accumulation: micro-batch gradients averaged by their target counts (so the step equals one
 * large batch's), clipped by global norm, then torch's AdamW (src/train/adamw.ts) on float64 copies of
 * the weights, written back into the session's live weight tensors.
 */
class GradientAccumulator {
  private readonly sum: Float64Array;
  private readonly params: Float64Array;
  private readonly optimizer: AdamW;
  private readonly layout: { name: string; offset: number; size: number }[] = [];
  private count = 0;

  constructor(params: { name: string; dims: number[] }[], private readonly live: (name: string) => Float32Array, weightDecay: number, private readonly clip: number) {
    // AdamW decays [0, decayEnd): matrices first, then vectors, as the step graph decays rank ≥ 2 only.
    const ordered = [...params.filter((p) => p.dims.length >= 2), ...params.filter((p) => p.dims.length < 2)];
    let offset = 0;
    for (const p of ordered) {
      const size = p.dims.reduce((a, b) => a * b, 1);
      this.layout.push({ name: p.name, offset, size });
      offset += size;
    }
    const decayEnd = this.layout.filter((_, i) => ordered[i]!.dims.length >= 2).reduce((n, l) => n + l.size, 0);
    this.sum = new Float64Array(offset);
    this.params = new Float64Array(offset);
    for (const l of this.layout) this.params.set(live(l.name), l.offset);
    this.optimizer = new AdamW(offset, decayEnd, weightDecay);
  }

  add(gradients: Map<string, Float32Array>, count: number): void {
    for (const l of this.layout) {
      const g = gradients.get(l.name)!;
      for (let i = 0; i < l.size; i++) this.sum[l.offset + i]! += g[i]! * count;
    }
    this.count += count;
  }

  apply(rate: number): void {
    const scale = 1 / Math.max(this.count, 1);
    let norm = 0;
    for (let i = 0; i < this.sum.length; i++) {
      this.sum[i]! *= scale;
      norm += this.sum[i]! * this.sum[i]!;
    }
    // torch.nn.utils.clip_grad_norm_: factor max/(norm + 1e-6), capped at 1.
    const factor = Math.min(1, this.clip / (Math.sqrt(norm) + 1e-6));
    if (factor < 1) for (let i = 0; i < this.sum.length; i++) this.sum[i]! *= factor;
    this.optimizer.step(this.params, this.sum, rate);
    for (const l of this.layout) this.live(l.name).set(this.params.subarray(l.offset, l.offset + l.size));
    this.sum.fill(0);
    this.count = 0;
  }
}

/** Older exports have no position_ids input: drop what the graph does not take. */
function keepInputs(batch: Record<string, ort.Tensor>, session: TrainingSession): void {
  const names = new Set(session.graph.batchInputs.map((input) => input.name));
  for (const name of Object.keys(batch)) if (!names.has(name)) delete batch[name];
}

/** Zero noise for the LoRA dropout inputs (`lm-graph.ts` `dropoutNoise`): the evaluation graph is the training forward, and evaluates without dropout. */
export function noDropout(session: TrainingSession, rows: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of session.graph.batchInputs) {
    if (!input.name.startsWith('lora_dropout.')) continue;
    const dims = input.dims.map((size) => (size < 0 ? rows : size));
    feeds[input.name] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
  }
  return feeds;
}

/**
 * Mean negative log-likelihood of the held-out targets (the first `limit` blocks), with the session's
 * current weights. The evaluation graph returns each position's loss (lm-loss.ts): fetching the
 * logits instead and taking their log-softmax here made the end-of-run evaluation cost as much as
 * ~40 training steps (notes/lora-close.md has the measurement).
 */
export async function validationLoss(session: TrainingSession, corpus: PackedCorpus, batchSize: number, limit = corpus.blocks): Promise<number> {
  const T = corpus.blockLength;
  let nll = 0;
  let count = 0;
  const blocks = Math.min(limit, corpus.blocks);
  for (let start = 0; start < blocks; start += batchSize) {
    const rows = Array.from({ length: Math.min(batchSize, blocks - start) }, (_, i) => start + i);
    const { batch, targets } = blockFeeds(corpus, rows);
    keepInputs(batch, session);
    Object.assign(batch, noDropout(session, rows.length));
    const losses = (await session.evaluateLoss(batch, targets)).get(session.graph.evaluationLossOutputs[0]!)!;
    rows.forEach((row, r) => {
      for (let i = 0; i + 1 < T; i++) {
        if (!corpus.targets[row * T + i + 1]) continue;
        nll += losses[r * T + i]!;
        count++;
      }
    });
  }
  return nll / Math.max(count, 1);
}

/**
 * GPT-2's initialisation (transformers' _init_weights): matrices normal(0, 0.02), the residual
 * output projections normal(0, 0.02/√(2·layers)), LayerNorm scales 1, biases 0.
 */
function randomInitialisation(forward: LmTrainingForward, config: Record<string, any>, rng: Rng): Map<string, Float32Array> {
  const layers = config.n_layer ?? config.num_hidden_layers ?? 1;
  const weights = new Map<string, Float32Array>();
  for (const name of forward.baseWeights) {
    const init = forward.graph.initializers.get(name)!;
    const size = init.data.length;
    let values: Float32Array;
    if (init.dims.length >= 2) {
      const std = /c_proj\.weight$|o_proj\.weight$|down_proj\.weight$/.test(name) ? 0.02 / Math.sqrt(2 * layers) : 0.02;
      values = Float32Array.from({ length: size }, () => rng.normal() * std);
    } else values = new Float32Array(size).fill(/(ln_\w*|norm\w*)\.weight$/.test(name) ? 1 : 0);
    weights.set(name, values);
  }
  return weights;
}
