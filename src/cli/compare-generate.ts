import { compareLm } from '../generator/compare.js';
import { usageError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { emit, hubOptionsOf, type GlobalOptions, type HubCliOptions } from './common.js';

/** `headstart compare <texts> --task generate --backbone <lm>`: pre-trained vs random initialisation, same budget. */
export async function compareGenerate(data: string, options: GlobalOptions & HubCliOptions & { backbone?: string; seed: number; maxSteps?: number }, reporter: Reporter): Promise<void> {
  if (!options.backbone) throw usageError('--task generate needs --backbone: the pre-trained causal LM to compare with its architecture from scratch');
  const result = await compareLm(options.backbone, data, { seed: options.seed, maxSteps: options.maxSteps, hub: hubOptionsOf(options), reporter });
  emit(options, result, () =>
    [
      'held-out perplexity against training tokens',
      ...result.contenders.map((c) => `  ${c.name.padEnd(12)} ${c.perplexityBefore.toFixed(0).padStart(7)} → ${c.perplexity.toFixed(1).padStart(7)}  ${c.curve.map((p) => `${p.trainTokens}:${p.perplexity.toFixed(0)}`).join(' ')}`),
    ].join('\n'),
  );
}
