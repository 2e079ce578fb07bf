import type { Command } from 'commander';
import { fineTuneLm } from '../generator/fine-tune.js';
import type { Reporter } from '../util/progress.js';
import { usageError } from '../util/errors.js';
import { emit, hubOptionsOf, integer, positiveNumber, type GlobalOptions, type HubCliOptions } from './common.js';

/** Default base model of `train --task generate` when no --backbone is given: none ships, so one must be named. */
export interface GenerateTrainOptions extends GlobalOptions, HubCliOptions {
  backbone?: string;
  out: string;
  valData?: string;
  valFraction?: number;
  lora?: number;
  loraAlpha?: number;
  loraTargets?: string[];
  loraModulesToSave?: string[];
  loraDropout?: number;
  blockLength?: number;
  maxSteps?: number;
  gradAccumulation?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  weightDecay?: number;
  patience?: number;
  seed: number;
}

/** The options only `--task generate` reads. */
export function withGenerateTrainOptions(command: Command): Command {
  return command
    .option('--lora <rank>', 'generate: train LoRA adapters of this rank instead of every weight', integer('--lora', 1))
    .option('--lora-alpha <alpha>', 'generate: LoRA scaling numerator (update × alpha/rank; default 2 × rank)', positiveNumber('--lora-alpha'))
    .option('--lora-targets <modules...>', 'generate: module names LoRA adapts (default: PEFT\'s for the architecture; GPT-2: c_attn c_proj c_fc, every projection)')
    .option('--lora-dropout <p>', 'generate: PEFT\'s lora_dropout, the share of each adapter\'s input zeroed while training (default 0)', positiveNumber('--lora-dropout', true))
    .option('--lora-modules-to-save <modules...>', 'generate: modules LoRA also trains in full, saved in the adapter (PEFT\'s modules_to_save; GPT-2 default: lm_head ln_f, i.e. the tied embedding and the last LayerNorm; "none" for adapters only)')
    .option('--block-length <n>', 'generate: tokens per training block (default 128, at most the context)', integer('--block-length', 8))
    .option('--max-steps <n>', 'generate: stop after this many optimiser steps', integer('--max-steps', 1))
    .option('--grad-accumulation <n>', 'generate: forward passes of --batch-size blocks per optimiser step (default 1)', integer('--grad-accumulation', 1));
}

/** `headstart train <texts> --task generate`: fine-tunes a causal LM and writes its model folder. */
export async function trainGenerate(data: string, options: GenerateTrainOptions, reporter: Reporter): Promise<void> {
  if (!options.backbone) throw usageError('--task generate needs --backbone: a causal LM (a Hugging Face ONNX folder or hf:<owner>/<repo>, e.g. hf:onnx-community/gpt2)');
  const result = await fineTuneLm(options.backbone, data, {
    out: options.out,
    valData: options.valData,
    valShare: options.valFraction,
    lora: options.lora ? { rank: options.lora, alpha: options.loraAlpha, targetModules: options.loraTargets, modulesToSave: options.loraModulesToSave?.filter((m) => m !== 'none'), dropout: options.loraDropout } : undefined,
    blockLength: options.blockLength,
    maxSteps: options.maxSteps,
    gradAccumulation: options.gradAccumulation,
    epochs: options.epochs,
    learningRate: options.lr,
    batchSize: options.batchSize,
    weightDecay: options.weightDecay,
    patience: options.patience,
    seed: options.seed,
    hub: hubOptionsOf(options),
    reporter,
  });
  emit(options, { model: result.out, ...result, curve: undefined }, () =>
    [
      `held-out perplexity: ${result.perplexityBefore.toFixed(1)} before → ${result.perplexity.toFixed(1)} after ${result.steps} steps (${result.seconds.toFixed(0)} s${result.stoppedEarly ? ', stopped early' : ''})`,
      `${result.trainTokens} training tokens, ${result.validationTokens} held out; ${result.chunkedDocuments} documents longer than a block were split across blocks`,
      `model written to ${result.out}`,
    ].join('\n'),
  );
}
