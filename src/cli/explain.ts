import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { readTextLines } from '../data/text-dataset.js';
import type { AudioExplanation } from '../explain/audio-explainer.js';
import { EXPLAIN_METHODS, type Explanation } from '../explain/explain.js';
import { explainExportedImage } from '../explain/exported.js';
import { AUTO_FIRST_STEPS, AUTO_TOLERANCE, DEFAULT_MAX_STEPS, type Completeness, type IntegrationSteps } from '../explain/integrated-gradients.js';
import type { ImageExplanation } from '../explain/image-explainer.js';
import { audioExplanationJson, detectionExplanationJson, type DetectionExplanationJson, highlightedText, imageExplanationJson, textExplanationJson, writeAudioOverlay, writeBoxOverlays, writeImageOverlay } from '../explain/output.js';
import { ExportedModel, isExportedModelFile } from '../export/exported-model.js';
import { Detector } from '../detector/detector.js';
import { DetectionExplainer } from '../explain/detection-grad-cam.js';
import { dataError, messageOf, usageError } from '../util/errors.js';
import { cacheDirOf, emit, hubOptionsOf, integer, positiveNumber, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface ExplainCliOptions extends GlobalOptions, HubCliOptions {
  method?: (typeof EXPLAIN_METHODS)[number];
  target?: string;
  out?: string;
  steps?: IntegrationSteps;
  maxSteps?: number;
  baseline?: 'black' | 'blurred';
  smoothgrad?: number;
  window?: number;
  file?: string;
  threshold?: number;
  maxDetections?: number;
}

export function explainCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('explain')
      .description('show why the model predicts what it does: a heat map over each image, a score per word, a score per moment of a clip')
      .argument('<model>', 'a model folder written by `headstart train`, an image model\'s ONNX file from `headstart export` (occlusion only), or a CenterNet detector (builtin:centernet, a detector folder: Grad-CAM per box)')
      .argument('[inputs...]', 'image or audio files; for text models, the texts themselves')
      .addOption(new Option('-m, --method <method>', 'images: gradcam (CNN default), attention-rollout (ViT default), integrated-gradients, saliency, occlusion; text: word-contributions, leave-one-out; audio: occlusion').choices(EXPLAIN_METHODS))
      .option('-t, --target <label>', 'explain this label instead of the predicted one')
      .option('-o, --out <dir>', 'write a PNG per input into this folder: the map over the photo, or the clip\'s waveform coloured by importance')
      .option('--steps <n|auto>', `integrated gradients: quadrature steps, or auto: from ${AUTO_FIRST_STEPS}, doubled until the attributions add up to f(x) − f(baseline) within ${AUTO_TOLERANCE * 100} % (images)`, (value: string) => (value === 'auto' ? 'auto' : integer('--steps', 1)(value)), 32)
      .option('--max-steps <n>', `integrated gradients with --steps auto: the most steps to double to`, integer('--max-steps', AUTO_FIRST_STEPS), DEFAULT_MAX_STEPS)
      .addOption(new Option('--baseline <kind>', 'integrated gradients: what the path starts from').choices(['black', 'blurred']).default('black'))
      .option('--smoothgrad <n>', 'saliency: average over n noisy copies (SmoothGrad)', integer('--smoothgrad', 0))
      .option('--window <size>', 'occlusion window: pixels of the input (images), seconds (audio)', positiveNumber('--window'))
      .option('-f, --file <lines.txt>', 'text models: explain each non-empty line of this file')
      .option('--threshold <score>', 'detectors: explain the boxes scoring at least this', positiveNumber('--threshold'), 0.25)
      .option('--max-detections <n>', 'detectors: explain at most this many boxes per image', integer('--max-detections', 1), 20),
  )).action(async (model: string, given: string[], options: ExplainCliOptions) => {
    const inputs = [...given, ...(options.file ? await readTextLines(options.file) : [])];
    if (inputs.length === 0) throw usageError('nothing to explain: give inputs (or --file with one text per line)');
    const exported = (await isExportedModelFile(model)) ? await ExportedModel.load(model) : undefined;
    if (!exported && (await Detector.isDetectorReference(model))) return explainDetections(model, inputs, options);
    const classifier = exported ? undefined : await Classifier.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
    const modality = classifier?.manifest.modality ?? 'image';
    const window = options.window === undefined ? undefined : modality === 'audio' ? options.window : Math.round(options.window);
    const settings = {
      method: options.method,
      target: options.target,
      steps: options.steps,
      maxSteps: options.maxSteps,
      baseline: options.baseline,
      smoothGrad: options.smoothgrad,
      ...(modality === 'audio' ? { seconds: { window } } : { window }),
    };
    try {
      const results: { input: string; explanation: Explanation; picture?: string }[] = [];
      for (const input of inputs) {
        const bytes = modality === 'text' ? undefined : await readFile(input).catch((error: unknown) => {
          throw dataError(`cannot read: ${messageOf(error)}`, input, error);
        });
        const explanation = exported ? await explainExportedImage(exported, bytes!, { ...settings, method: settings.method as ImageExplanation['method'] | undefined, source: input }) : await classifier!.explain(bytes ?? input, settings);
        let picture: string | undefined;
        if (options.out && explanation.modality === 'image') picture = await writeImageOverlay(options.out, input, bytes!, explanation);
        if (options.out && explanation.modality === 'audio') picture = await writeAudioOverlay(options.out, input, explanation);
        results.push({ input, explanation, picture });
      }
      emit(
        options,
        results.map(({ input, explanation: e }) => (e.modality === 'image' ? imageExplanationJson(input, e) : e.modality === 'text' ? textExplanationJson(input, e) : audioExplanationJson(input, e))),
        () => results.map(({ input, explanation, picture }) => describe(input, explanation) + (picture ? `\n  picture: ${picture}` : '')).join('\n'),
      );
    } finally {
      await classifier?.dispose();
      await exported?.release();
    }
  });
}

/** Per-box Grad-CAM: each detection the detector makes (as `headstart detect` gives them), with its own map. */
async function explainDetections(model: string, inputs: string[], options: ExplainCliOptions): Promise<void> {
  if (options.method && options.method !== 'gradcam') throw usageError(`detectors are explained per box with --method gradcam; got --method ${options.method}`);
  const detector = await Detector.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
  let explainer: DetectionExplainer | undefined;
  try {
    explainer = await DetectionExplainer.forDetector(detector);
    const results: { input: string; json: DetectionExplanationJson; pictures: string[] }[] = [];
    for (const input of inputs) {
      const bytes = await readFile(input).catch((error: unknown) => {
        throw dataError(`cannot read: ${messageOf(error)}`, input, error);
      });
      const boxes = await explainer.explain(bytes, { threshold: options.threshold, maxDetections: options.maxDetections, source: input });
      const pictures = options.out ? await writeBoxOverlays(options.out, input, bytes, boxes, detector.classes) : [];
      results.push({ input, json: detectionExplanationJson(input, boxes, detector.classes), pictures });
    }
    emit(
      options,
      results.map((r) => r.json),
      () =>
        results
          .map(({ input, json, pictures }) =>
            [input, ...json.detections.map((d, k) => `  ${d.label} ${(d.score * 100).toFixed(1)}%  box [${d.box.map((v) => v.toFixed(0)).join(', ')}]  Grad-CAM peak (${d.peak.x}, ${d.peak.y})${pictures[k] ? `\n    picture: ${pictures[k]}` : ''}`)].join('\n'),
          )
          .join('\n'),
    );
  } finally {
    await explainer?.release();
    await detector.dispose();
  }
}

function describe(input: string, e: Explanation): string {
  const head = `${input}\n  ${e.label} ${(e.probability * 100).toFixed(1)}%  ${e.method}`;
  if (e.modality === 'text') return `${head}, ${e.unit === 'logit' ? 'contribution to the logit' : 'probability lost without the word'}\n  ${highlightedText(e)}`;
  if (e.modality === 'audio') return `${head}\n  ${strongestWindows(e)}`;
  return (
    `${head}, peak at (${e.peak.x}, ${e.peak.y}) of ${e.map.width}×${e.map.height}` +
    (e.completeness ? `\n  ${completenessLine(e.completeness)}` : '')
  );
}

function completenessLine(c: Completeness): string {
  const line = `attributions sum to ${c.sum.toFixed(4)}, f(x) − f(baseline) = ${c.expected.toFixed(4)} (${(c.relativeError * 100).toFixed(2)} % apart) with ${c.steps} steps (${c.rule})`;
  if (c.capped) return `${line}\n  --steps auto stopped at the cap (--max-steps): the gap is still above ${AUTO_TOLERANCE * 100} %; raise --max-steps for a complete attribution`;
  return c.capped === false ? `${line}, auto: within ${AUTO_TOLERANCE * 100} %` : line;
}

function strongestWindows(e: AudioExplanation): string {
  const top = [...e.windows].sort((a, b) => b.score - a.score).slice(0, 3);
  return `most important: ${top.map((w) => `${w.start.toFixed(2)}–${w.end.toFixed(2)} s (−${(w.score * 100).toFixed(1)} % when silenced)`).join(', ')}`;
}
