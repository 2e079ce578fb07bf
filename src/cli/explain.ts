import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { EXPLAIN_METHODS } from '../explain/explain.js';
import { explainExportedImage } from '../explain/exported.js';
import { imageExplanationJson, writeImageOverlay } from '../explain/output.js';
import { ExportedModel, isExportedModelFile } from '../export/exported-model.js';
import type { ImageExplanation } from '../explain/image-explainer.js';
import { dataError, messageOf, usageError } from '../util/errors.js';
import { cacheDirOf, emit, hubOptionsOf, integer, positiveNumber, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface ExplainCliOptions extends GlobalOptions, HubCliOptions {
  method?: (typeof EXPLAIN_METHODS)[number];
  target?: string;
  out?: string;
  steps?: number;
  baseline?: 'black' | 'blurred';
  smoothgrad?: number;
  window?: number;
}

export function explainCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('explain')
      .description('show why the model predicts what it does: a heat map over each image')
      .argument('<model>', 'a model folder written by `headstart train`, or an ONNX file from `headstart export` (occlusion only)')
      .argument('<inputs...>', 'image files')
      .addOption(new Option('-m, --method <method>', 'attribution method (default: gradcam for CNNs, attention-rollout for ViTs; occlusion for exported files and k-NN heads)').choices(EXPLAIN_METHODS))
      .option('-t, --target <label>', 'explain this label instead of the predicted one')
      .option('-o, --out <dir>', 'write a PNG overlay of each map on its photo into this folder')
      .option('--steps <n>', 'integrated gradients: quadrature steps', integer('--steps', 1), 32)
      .addOption(new Option('--baseline <kind>', 'integrated gradients: what the path starts from').choices(['black', 'blurred']).default('black'))
      .option('--smoothgrad <n>', 'saliency: average over n noisy copies (SmoothGrad)', integer('--smoothgrad', 0))
      .option('--window <px>', 'occlusion: window side in input pixels', positiveNumber('--window')),
  )).action(async (model: string, inputs: string[], options: ExplainCliOptions) => {
    if (inputs.length === 0) throw usageError('nothing to explain: give image files');
    const settings = { method: options.method, target: options.target, steps: options.steps, baseline: options.baseline, smoothGrad: options.smoothgrad, window: options.window && Math.round(options.window) };
    const exported = (await isExportedModelFile(model)) ? await ExportedModel.load(model) : undefined;
    const classifier = exported ? undefined : await Classifier.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
    if (classifier && classifier.manifest.modality !== 'image') throw usageError(`explain covers image models; ${model} is a ${classifier.manifest.modality} model`);
    try {
      const results: { input: string; explanation: ImageExplanation; overlay?: string }[] = [];
      for (const input of inputs) {
        const bytes = await readFile(input).catch((error: unknown) => {
          throw dataError(`cannot read: ${messageOf(error)}`, input, error);
        });
        const explanation = exported ? await explainExportedImage(exported, bytes, { ...settings, source: input }) : ((await classifier!.explain(bytes, settings)) as ImageExplanation);
        const overlay = options.out ? await writeImageOverlay(options.out, input, bytes, explanation) : undefined;
        results.push({ input, explanation, overlay });
      }
      emit(
        options,
        results.map(({ input, explanation }) => imageExplanationJson(input, explanation)),
        () =>
          results
            .map(({ input, explanation: e, overlay }) =>
              `${input}\n  ${e.label} ${(e.probability * 100).toFixed(1)}%  ${e.method}, peak at (${e.peak.x}, ${e.peak.y}) of ${e.map.width}×${e.map.height}` +
              (e.completeness ? `\n  attributions sum to ${e.completeness.sum.toFixed(4)}, f(x) − f(baseline) = ${e.completeness.expected.toFixed(4)} (${(e.completeness.relativeError * 100).toFixed(2)} % apart)` : '') +
              (overlay ? `\n  overlay: ${overlay}` : ''),
            )
            .join('\n'),
      );
    } finally {
      await classifier?.dispose();
      await exported?.release();
    }
  });
}
