import { basename, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { isCausalLmFolder } from '../generator/causal-lm.js';
import { exportLmFolder } from '../generator/lm-export.js';
import { Detector } from '../detector/detector.js';
import { exportDetector } from '../export/detector-export.js';
import { EXPORT_FILE_GUARD } from '../export/exported-model.js';
import { CALIBRATION_METHODS, DEFAULT_CALIBRATION, type CalibrationMethod } from '../export/calibrate.js';
import { compareOnLabelled, DEFAULT_CALIBRATION_COUNT, exportClassifier, QUANTIZE_SCHEMES, type LabelledComparison, type QuantizeScheme } from '../export/onnx-export.js';
import { checkReplaceable, writeFileAtomic } from '../util/atomic.js';
import type { ExportedInput } from '../web/format.js';
import { usageError } from '../util/errors.js';
import { cacheDirOf, emit, integer, positiveNumber, hubOptionsOf, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface ExportCommandOptions extends GlobalOptions, HubCliOptions {
  format: 'onnx';
  out?: string;
  quantize?: QuantizeScheme;
  calibrate?: string;
  calibration: CalibrationMethod;
  percentile: number;
  calibrationCount: number;
  evaluate?: string;
  threshold?: number;
  maxDetections?: number;
}

export function exportCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('export')
      .description('write the model as one ONNX file (backbone + head + softmax, labels in its metadata) that runs without headstart')
      .argument('<model>', 'a model folder written by `headstart train` (a language model exports as a Hugging Face ONNX folder), or a detector (builtin:centernet, a YOLO .onnx)')
      .addOption(new Option('--format <format>', 'file format').choices(['onnx']).default('onnx'))
      .option('-o, --out <file>', 'where to write it (default: <model>.onnx, or <model>.int8.onnx)')
      .addOption(
        new Option(
          '--quantize <scheme>',
          'int8: weights and activations int8, run on integer kernels (faster and ~4× smaller); int8-weights: only the weights stored as int8 (~4× smaller, float speed; for onnxruntime-web downloads)',
        ).choices([...QUANTIZE_SCHEMES]),
      )
      .option('--calibrate <data>', 'for --quantize int8: a dataset whose training inputs set the activation scales (default: the data the model was trained on)')
      .addOption(new Option('--calibration <method>', 'for --quantize int8: how activation ranges are set').choices([...CALIBRATION_METHODS]).default(DEFAULT_CALIBRATION.method))
      .option('--percentile <p>', 'for --calibration percentile: the share of values the range holds, in %', positiveNumber('--percentile'), DEFAULT_CALIBRATION.percentile)
      .option('--calibration-count <n>', 'for --quantize int8: how many training inputs to calibrate on', integer('--calibration-count', 1), DEFAULT_CALIBRATION_COUNT)
      .option('--evaluate <data>', 'labelled data to compare the exported file with the library on (accuracy and its drop)')
      .option('--threshold <score>', 'detectors: the lowest score the file returns (default 0.25)', positiveNumber('--threshold'))
      .option('--max-detections <n>', 'detectors: at most this many boxes per image (default 100)', integer('--max-detections', 1)),
  )).action(async (model: string, options: ExportCommandOptions) => {
    if (options.calibrate && options.quantize !== 'int8') throw usageError('--calibrate sets the activation scales of --quantize int8; it does nothing without it');
    const reporter = reporterFor(options);
    if (await isCausalLmFolder(model)) {
      // A language model exports as a Hugging Face ONNX folder (LoRA merged), not one file.
      const written = await exportLmFolder(model, resolve(options.out ?? `${model.replace(/[\\/]+$/, '')}-onnx`));
      emit(options, written, () => `${written.out}: ${written.files.join(', ')} (Hugging Face ONNX layout; transformers.js and headstart generate load it)`);
      return;
    }
    if (await Detector.isDetectorReference(model)) {
      await exportDetectorCommand(model, options);
      return;
    }
    const out = resolve(options.out ?? `${model.replace(/[\\/]+$/, '')}${options.quantize ? `.${options.quantize}` : ''}.onnx`);
    // Before the work, so a path that would be refused is not found out only after the export.
    await checkReplaceable(out, 'file', EXPORT_FILE_GUARD);
    const classifier = await Classifier.load(model, { cacheDir: cacheDirOf(options), reporter, hub: hubOptionsOf(options) });
    try {
      const task = reporter.task(`exporting ${basename(model)}`, 1, 'models');
      const result = await exportClassifier(classifier, {
        quantize: options.quantize,
        calibration: { data: options.calibrate, method: options.calibration, percentile: options.percentile, count: options.calibrationCount },
      });
      await writeFileAtomic(out, result.onnx, { guard: EXPORT_FILE_GUARD });
      task.done(megabytes(result.onnx.byteLength));
      let evaluation: LabelledComparison | undefined;
      if (options.evaluate) {
        const { items } = await classifier.adapter.readLabelled(options.evaluate, classifier.labels);
        evaluation = await compareOnLabelled(classifier, result.onnx, items, reporter);
      }
      const { input, output } = result.metadata;
      emit(
        options,
        { file: out, bytes: result.onnx.byteLength, metadata: result.metadata, quantization: result.quantization, check: result.check, evaluation: evaluation ?? null },
        () =>
          [
            `${out} (${megabytes(result.onnx.byteLength)}, ${options.quantize === 'int8' ? 'int8' : options.quantize === 'int8-weights' ? 'int8 weights' : 'fp32'})`,
            `  input   ${describeInput(input)}`,
            `  output  ${output.name}: float32 [batch, ${output.classes}] probabilities of ${classifier.labels.join(', ')}`,
            `  check   max |Δp| against the library ${result.check.maxAbsDifference.toExponential(1)} on ${result.check.inputs} probe ${classifier.adapter.noun}`,
            ...(result.quantization
              ? [
                  `  int8    ${result.quantization.tensors} weight tensors, ${megabytes(result.quantization.floatBytes)} → ${megabytes(result.quantization.int8Bytes)}` +
                    (result.quantization.calibration
                      ? `; ${result.quantization.activations} activations, ${result.quantization.calibration.method} calibration on ${result.quantization.calibration.inputs} training ${classifier.adapter.noun}`
                      : '') +
                    (result.quantization.headRefit
                      ? result.quantization.headRefit.kept
                        ? `; head refitted to the int8 features on ${result.quantization.headRefit.inputs}`
                        : `; head refit not kept (predicts no better on held-out ${classifier.adapter.noun})`
                      : ''),
                ]
              : []),
            ...(evaluation
              ? [
                  `  ${options.evaluate} (${evaluation.inputs} ${classifier.adapter.noun}): accuracy ${evaluation.libraryAccuracy.toFixed(3)} library, ` +
                    `${evaluation.exportedAccuracy.toFixed(3)} exported (drop ${evaluation.accuracyDrop.toFixed(3)}); ` +
                    `same top-1 on ${(evaluation.top1Agreement * 100).toFixed(1)} %, max |Δp| ${evaluation.maxAbsDifference.toExponential(1)}`,
                ]
              : []),
          ].join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}

async function exportDetectorCommand(model: string, options: ExportCommandOptions): Promise<void> {
  if (options.quantize || options.evaluate) throw usageError('--quantize and --evaluate are for classifiers; a detector exports in fp32');
  const name = model.startsWith('builtin:') ? model.slice('builtin:'.length) : basename(model).replace(/\.onnx$/i, '.detector');
  const out = resolve(options.out ?? `${model.startsWith('builtin:') ? name : model.replace(/[\\/]+$/, '').replace(/\.onnx$/i, '.detector')}.onnx`);
  await checkReplaceable(out, 'file', EXPORT_FILE_GUARD);
  const reporter = reporterFor(options);
  const detector = await Detector.load(model, { cacheDir: cacheDirOf(options), reporter, hub: hubOptionsOf(options) });
  try {
    const task = reporter.task(`exporting ${name}`, 1, 'models');
    const result = await exportDetector(detector, { threshold: options.threshold, maxDetections: options.maxDetections });
    await writeFileAtomic(out, result.onnx, { guard: EXPORT_FILE_GUARD });
    task.done(megabytes(result.onnx.byteLength));
    const { input, output } = result.metadata;
    emit(options, { file: out, bytes: result.onnx.byteLength, metadata: result.metadata, check: result.check }, () =>
      [
        `${out} (${megabytes(result.onnx.byteLength)}, fp32, ${detector.classes.length} classes)`,
        `  input   ${input.kind === 'image' ? `${input.name}: uint8 [1, ${input.height}, ${input.width}, 3] RGB; ${input.resize === 'letterbox' ? `letterbox (aspect kept, padded with ${input.padValue})` : 'stretch'} to ${input.width}×${input.height}` : ''}`,
        `  output  ${output.name}: float32 [N, 6] (x1, y1, x2, y2, score, class) in input pixels, score ≥ ${output.kind === 'detections' ? output.threshold : ''}, at most ${output.kind === 'detections' ? output.maxDetections : ''}`,
        `  check   same boxes as the library on ${result.check.images} probe images; max relative |Δbox| ${result.check.maxBoxDifference.toExponential(1)}, max |Δscore| ${result.check.maxScoreDifference.toExponential(1)}`,
      ].join('\n'),
    );
  } finally {
    await detector.dispose();
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function describeInput(input: ExportedInput): string {
  switch (input.kind) {
    case 'image':
      return `${input.name}: uint8 [batch, ${input.height}, ${input.width}, 3] RGB; ${describeResize(input)}`;
    case 'text':
      return `${input.idsName}, ${input.maskName}: int64 [batch, tokens] from the embedded tokenizer, at most ${input.maxLength} tokens`;
    case 'words':
      return `${input.idsName}, ${input.maskName}: int64 [batch, words] from headstart's word tokeniser over the embedded vocabulary (${input.vocabularySize} words)`;
    case 'tfidf':
      return 'name' in input
        ? `${input.name}: float32 [batch, ${input.dim}] TF-IDF rows from the embedded fitted state`
        : `${input.indicesName} int64 [nnz, 2] (row, term), ${input.valuesName} float32 [nnz], ${input.shapeName} int64 [2]: the TF-IDF rows' non-zeros (COO, ${input.dim} terms) from the embedded fitted state`;
    case 'audio':
      return `${input.name}: float32 [1, samples] one mono clip at ${input.sampleRate} Hz in [-1, 1]`;
  }
}

function describeResize(input: { resize: string; shortestEdge?: number; width: number; height: number; interpolation: string }): string {
  if (input.resize === 'stretch') return `resize (${input.interpolation}) to ${input.width}×${input.height}`;
  if (input.resize === 'center-square-crop') return `centre crop to the aspect, resize (${input.interpolation}) to ${input.width}×${input.height}`;
  return `resize (${input.interpolation}) the shortest edge to ${input.shortestEdge}, centre crop ${input.width}×${input.height}`;
}
