import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Reporter } from '../util/progress.js';
import { fineTuneLm, type LmFineTuneOptions, type LmFineTuneResult } from './fine-tune.js';

export interface LmCompareContender {
  name: string;
  perplexityBefore: number;
  perplexity: number;
  steps: number;
  seconds: number;
  /** Held-out perplexity (on the evaluation subset) against training tokens seen. */
  curve: { trainTokens: number; perplexity: number }[];
}

export interface LmCompareResult {
  base: string;
  data: string;
  contenders: [LmCompareContender, LmCompareContender];
}

/**
 * The head start of a pre-trained causal LM: fine-tuned from its weights against the same
 * architecture from random initialisation (GPT-2's init, lr 1e-3), same data, split, steps and
 * batch; held-out perplexity against training tokens for both.
 */
export async function compareLm(base: string, data: string, options: Omit<LmFineTuneOptions, 'out' | 'fromScratch' | 'report'> & { reporter?: Reporter } = {}): Promise<LmCompareResult> {
  const dir = await mkdtemp(join(tmpdir(), 'headstart-lm-compare-'));
  try {
    const run = (name: string, extra: Partial<LmFineTuneOptions>) =>
      fineTuneLm(base, data, { ...options, ...extra, out: join(dir, name), report: false, samplePrompts: [] }).then((r) => contender(name, r, options.batchSize ?? 8));
    // Early stopping would give the two different budgets.
    const pretrained = await run('pre-trained', { patience: Infinity });
    const scratch = await run('from scratch', { patience: Infinity, fromScratch: true, learningRate: options.learningRate ?? 1e-3 });
    return { base, data, contenders: [pretrained, scratch] };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function contender(name: string, result: LmFineTuneResult, batchSize: number): LmCompareContender {
  return {
    name,
    perplexityBefore: result.perplexityBefore,
    perplexity: result.perplexity,
    steps: result.steps,
    seconds: result.seconds,
    curve: result.curve.filter((p) => p.validationLoss !== undefined).map((p) => ({ trainTokens: p.step * batchSize * result.blockLength, perplexity: Math.exp(p.validationLoss!) })),
  };
}
