/**
 * `headstart export`: one self-contained ONNX file per trained model. The backbone's graph, pixel
 * scaling, feature pooling, the head (standardisation and calibration temperature folded in) and a
 * softmax are merged into one graph; labels, input geometry and provenance go into metadata_props.
 *
 * The file takes uint8 RGB pixels [batch, height, width, 3] at the backbone's size, not the
 * backbone's float tensor: scaling, normalisation and the NCHW transpose are then part of the model,
 * so any ONNX runtime in any language needs only to resize (the geometry is in the metadata) and read
 * out bytes — which is exactly what a canvas, PIL or sharp hand over. Resizing stays outside because
 * ONNX's Resize cannot reproduce libvips' antialiased downscaling, and a fixed input size lets every
 * runtime plan memory once. Text and audio exports take token or word ids, TF-IDF rows, or one
 * clip's samples; src/web/format.ts describes every input kind and the metadata that goes with it.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import sharp from 'sharp';
import { ImageBackbone } from '../backbones/image-backbone.js';
import { sifWeights } from '../backbones/text-pooling.js';
import type { TfidfBackbone } from '../backbones/text-tfidf.js';
import type { TransformerTextBackbone } from '../backbones/text-transformer.js';
import type { WordVectorBackbone } from '../backbones/text-word-vectors.js';
import type { SpeechEmbeddingBackbone } from '../backbones/audio-speech-embedding.js';
import type { Pooling } from '../backbones/onnx-session.js';
import { encodeModel, IR_VERSION, OnnxGraph, OPSET_VERSION } from '../backbones/tfjs/onnx-graph.js';
import type { Classifier } from '../classifier/classifier.js';
import type { LabelledItem } from '../data/dataset.js';
import { prepareImagePixels } from '../data/image-decode.js';
import { dataError, modelError, messageOf, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { sha256 } from '../util/hash.js';
import { Rng } from '../util/rng.js';
import { VERSION } from '../version.js';
import { EXPORT_FORMAT_VERSION, metadataProps, type ExportMetadata, type Provenance } from '../web/format.js';
import { ExportedModel, type PreparedInput } from './exported-model.js';
import { HeadGraphBuilder, MIN_EXPORT_OPSET } from './head-graph.js';
import { quantizeEmbeddings, quantizeWeights, type QuantizationReport } from './quantize.js';
import { calibrateRanges, checkCalibration, DEFAULT_CALIBRATION, type CalibrationSettings } from './calibrate.js';
import { HEAD_REFIT_COUNT, logitsGemm, refitHeadToInt8 } from './head-refit.js';
import { applyQuantization, equalizationPairs, equalizeChannels, planQuantization } from './quantize-static.js';

const { onnx } = onnxProto;

export const QUANTIZE_SCHEMES = ['int8', 'int8-weights'] as const;
export type QuantizeScheme = (typeof QUANTIZE_SCHEMES)[number];

export interface ExportOptions {
  /**
   * `int8`: static int8, activations calibrated on training inputs, run by integer kernels
   * (quantize-static.ts): faster and smaller. `int8-weights`: int8 weights dequantised to float at
   * run time (quantize.ts): smaller only, but exact float activations.
   */
  quantize?: QuantizeScheme;
  /** For `int8`: how activation ranges are calibrated, and on what. */
  calibration?: CalibrationOptions;
}

export interface CalibrationOptions extends Partial<CalibrationSettings> {
  /** Raw inputs to calibrate on; default `count` of the training inputs the manifest names (or of `data`). */
  inputs?: (Uint8Array | string)[];
  /** A dataset (as `train` reads it) whose training inputs to calibrate on, instead of the model's own. */
  data?: string;
  /** How many inputs, drawn with a fixed seed; default 48. */
  count?: number;
  /**
   * Refit the head's last linear map to the int8 features (head-refit.ts), on up to 256 training
   * inputs; default true.
   */
  refitHead?: boolean;
  /** Backbone nodes (by name) to leave in float, besides the export's own (pixel scaling, pooling, head). */
  floatNodes?: string[];
}

/** A few dozen inputs pin every activation's range; more change the scales by well under a step. */
export const DEFAULT_CALIBRATION_COUNT = 48;

/** How the exported file's probabilities compare with the library's on the same pixels. */
export interface ExportComparison {
  /** Inputs compared. */
  inputs: number;
  maxAbsDifference: number;
  /** Share of inputs where both give the same top label. */
  top1Agreement: number;
}

export interface ExportResult {
  onnx: Uint8Array;
  metadata: ExportMetadata;
  quantization: QuantizationReport | null;
  /** Measured on a few synthetic images (or texts) right after exporting. */
  check: ExportComparison;
}

/** An fp32 export further from the library than this is a bug, not rounding. */
const FP32_CHECK_TOLERANCE = 1e-4;

export async function exportClassifier(classifier: Classifier, options: ExportOptions = {}): Promise<ExportResult> {
  const backbone = classifier.backbone;
  if (backbone instanceof ImageBackbone) return exportImageClassifier(classifier, backbone, options);
  // Text code loads only for text models, as the modality adapters do.
  if (classifier.manifest.modality === 'audio') {
    const { SpeechEmbeddingBackbone } = await import('../backbones/audio-speech-embedding.js');
    if (backbone instanceof SpeechEmbeddingBackbone) return exportSpeechEmbeddingClassifier(classifier, backbone, options);
  }
  if (classifier.manifest.modality === 'text') {
    const [{ TransformerTextBackbone }, { WordVectorBackbone }, { TfidfBackbone }] = await Promise.all([
      import('../backbones/text-transformer.js'),
      import('../backbones/text-word-vectors.js'),
      import('../backbones/text-tfidf.js'),
    ]);
    if (backbone instanceof TransformerTextBackbone) return exportTextClassifier(classifier, backbone, options);
    if (backbone instanceof WordVectorBackbone) return exportWordVectorClassifier(classifier, backbone, options);
    if (backbone instanceof TfidfBackbone) return exportTfidfClassifier(classifier, backbone, options);
  }
  throw modelError(
    `cannot export this ${classifier.manifest.modality} model (backbone ${backbone.reference.id}): export covers image models, ` +
      `text models (transformers, word vectors, TF-IDF) and audio models on the speech-embedding backbone, whose input preparation ` +
      `is in the graph or in headstart/web. Whisper encoders compute their log-mel spectrogram with headstart's own code ` +
      `(an FFT in JavaScript), which the file does not carry`,
  );
}

/** The backbone graph, decoded, with what every export needs to know about it. */
export interface BackboneGraph {
  model: OnnxTypes.ModelProto;
  graph: OnnxTypes.IGraphProto;
  opset: number;
  /** Graph inputs that are not initializers. */
  inputs: OnnxTypes.IValueInfoProto[];
  /** Every name in use, and the prefix for everything the export adds. */
  taken: Set<string>;
  prefix: string;
  /** The pooled features the head reads (set by `assemble`). */
  features?: string;
  /** Name prefixes of backbone nodes that are preprocessing, which static int8 leaves float (the mel spectrogram). */
  floatPrefixes?: string[];
}

export async function readBackboneGraph(source: string | Uint8Array, origin: string): Promise<BackboneGraph> {
  const model = onnx.ModelProto.decode(typeof source === 'string' ? await readFile(source) : source);
  const graph = model.graph;
  if (!graph) throw modelError('the backbone ONNX file has no graph', origin);
  await inlineExternalData(graph, typeof source === 'string' ? dirname(source) : undefined, origin);
  const opset = defaultOpset(model);
  if (opset < MIN_EXPORT_OPSET) {
    throw modelError(`the backbone graph uses ONNX opset ${opset}; export needs opset ${MIN_EXPORT_OPSET} or newer (convert it with onnx.version_converter)`, origin);
  }
  const initializerNames = new Set((graph.initializer ?? []).map((tensor) => tensor.name));
  const taken = namesIn(graph);
  return { model, graph, opset, inputs: (graph.input ?? []).filter((input) => !initializerNames.has(input.name)), taken, prefix: freePrefix(taken) };
}

/**
 * A backbone with no graph (word vectors, TF-IDF): everything the file computes is added by the
 * export, in the opset the export's own graphs are written in.
 */
function noBackboneGraph(): BackboneGraph {
  const model = onnx.ModelProto.create({ irVersion: IR_VERSION, opsetImport: [{ domain: '', version: OPSET_VERSION }], graph: { node: [], initializer: [], input: [], output: [] } });
  return { model, graph: model.graph!, opset: OPSET_VERSION, inputs: [], taken: new Set(), prefix: 'headstart/' };
}

/**
 * Splices the nodes `added` built around the backbone's graph: the first `before` of them feed the
 * backbone, the rest read its output (or `before` puts the added nodes in order itself, for
 * backbones of several graphs); ends in a softmax named `probabilities`. Drops what the output
 * does not need, sets the graph's inputs and output, and quantises if asked.
 */
function assemble(
  backbone: BackboneGraph,
  added: OnnxGraph,
  builder: HeadGraphBuilder,
  before: number | ((addedNodes: OnnxTypes.INodeProto[], backboneNodes: OnnxTypes.INodeProto[]) => OnnxTypes.INodeProto[]),
  features: string,
  classifier: Classifier,
  inputs: OnnxTypes.IValueInfoProto[],
  options: ExportOptions,
): { outputName: string; quantization: QuantizationReport | null } {
  const { graph, taken } = backbone;
  backbone.features = features;
  const temperature = classifier.manifest.calibration?.temperature ?? 1;
  const probabilities = builder.softmax(builder.head(features, classifier.head.state(), temperature));
  const outputName = taken.has('probabilities') ? probabilities : added.nameTensor(probabilities, 'probabilities');
  const numClasses = classifier.labels.length;
  added.output = { name: outputName, shape: [-1, numClasses] };
  const addedGraph = onnx.ModelProto.decode(encodeModel(added, 'headstart', '')).graph!;

  const addedNodes = addedGraph.node!;
  const ordered = typeof before === 'number' ? [...addedNodes.slice(0, before), ...(graph.node ?? []), ...addedNodes.slice(before)] : before(addedNodes, graph.node ?? []);
  graph.node = prune(ordered, outputName);
  const used = new Set(graph.node.flatMap(referencedNames));
  graph.initializer = [...(graph.initializer ?? []), ...addedGraph.initializer!].filter((tensor) => used.has(tensor.name!));
  const produced = new Set(graph.node.flatMap((node) => node.output ?? []));
  graph.valueInfo = (graph.valueInfo ?? []).filter((info) => produced.has(info.name!));
  graph.input = inputs;
  graph.output = [tensorInfo(outputName, onnx.TensorProto.DataType.FLOAT, ['batch', numClasses])];
  graph.name = 'headstart_classifier';
  return { outputName, quantization: options.quantize === 'int8-weights' ? quantizeWeights(graph) : null };
}

function provenanceOf(classifier: Classifier, quantization: QuantizationReport | null): Provenance {
  const { reference } = classifier.backbone;
  const head = classifier.head.state();
  return {
    headstartVersion: VERSION,
    exportedAt: new Date().toISOString(),
    trainedAt: classifier.manifest.createdAt,
    backbone: { id: reference.id, sha256: reference.sha256, featureOutput: reference.featureOutput, featureDim: reference.featureDim },
    head: { type: head.type, config: head.config },
    temperature: classifier.manifest.calibration?.temperature ?? 1,
    validationAccuracy: classifier.metrics.validation?.accuracy ?? null,
    quantization: quantization && { scheme: quantization.scheme, tensors: quantization.tensors },
  };
}

/** Metadata in, bytes out (statically quantised if asked), then the self-check against the library on `probes`. */
async function finish(
  classifier: Classifier,
  backbone: BackboneGraph,
  metadata: ExportMetadata,
  weightQuantization: QuantizationReport | null,
  probes: (Uint8Array | string)[],
  origin: string,
  options: ExportOptions,
): Promise<ExportResult> {
  const { model } = backbone;
  model.producerName = 'headstart';
  model.producerVersion = VERSION;
  const takes = { image: 'uint8 RGB pixels', text: 'token ids and attention mask', words: 'word ids and mask', tfidf: 'TF-IDF rows', audio: `${metadata.input.kind === 'audio' ? metadata.input.sampleRate : ''} Hz mono samples` }[metadata.input.kind];
  model.docString = `headstart ${metadata.modality} classifier (${classifier.labels.join(', ')}) on ${classifier.backbone.reference.id}: ${takes} in, probabilities out`;
  const encode = () => {
    const props = metadataProps(metadata);
    model.metadataProps = [
      ...(model.metadataProps ?? []).filter((entry) => !(entry.key! in props)),
      ...Object.entries(props).map(([key, value]) => ({ key, value })),
    ];
    return onnx.ModelProto.encode(model).finish();
  };
  let bytes = encode();
  let quantization = weightQuantization;
  if (options.quantize === 'int8') {
    quantization = await quantizeStatically(classifier, model, bytes, backbone, options.calibration ?? {}, origin);
    metadata.provenance = provenanceOf(classifier, quantization);
    bytes = encode();
  }

  const check = await compareWithLibrary(classifier, bytes, probes);
  if (!quantization && !(check.maxAbsDifference <= FP32_CHECK_TOLERANCE)) {
    throw modelError(`the exported graph disagrees with the library (max probability difference ${check.maxAbsDifference}); please report this`, origin);
  }
  return { onnx: bytes, metadata, quantization, check };
}

/**
 * Static int8 in place on `model` (whose float encoding is `fp32`): plans what to quantise (the
 * backbone's nodes, not those the export added under `prefix`: pixel scaling, pooling, head),
 * calibrates those activations on the float file run as a consumer runs it, and rewrites.
 */
async function quantizeStatically(
  classifier: Classifier,
  model: OnnxTypes.ModelProto,
  fp32: Uint8Array,
  { prefix, features, floatPrefixes = [] }: BackboneGraph,
  options: CalibrationOptions,
  origin: string,
): Promise<QuantizationReport> {
  const settings: CalibrationSettings = { method: options.method ?? DEFAULT_CALIBRATION.method, percentile: options.percentile ?? DEFAULT_CALIBRATION.percentile };
  checkCalibration(settings);
  const graph = model.graph!;
  const floatNodes = new Set(options.floatNodes ?? []);
  const plan = planQuantization(graph, (node) => floatNodes.has(node.name ?? '') || [prefix, ...floatPrefixes].some((p) => (node.name ?? '').startsWith(p)));
  if (plan.ops.length === 0) {
    throw usageError(
      `--quantize int8 found nothing to run on integer kernels in this ${classifier.manifest.modality} model (backbone ${classifier.backbone.reference.id}): ` +
        `its graph is table look-ups and the head, which stay float; use --quantize int8-weights to store its tables as int8`,
    );
  }
  const inputs = await calibrationInputs(classifier, options);
  const prepared: PreparedInput[] = [];
  const pairs = equalizationPairs(graph, plan);
  // First the per-channel ranges between convolution pairs, to equalise their channels (exact in
  // float); then the float file, so equalised, with every planned tensor as an extra output.
  const first = await ExportedModel.load(instrument(fp32, pairs.map((pair) => pair.tensor)));
  let equalized = 0;
  try {
    prepared.push(...(await preparedInputs(classifier, first, inputs)));
    if (prepared.length === 0) throw dataError('none of the calibration inputs could be read', origin);
    if (pairs.length > 0) {
      const ranges = new Map(pairs.map((pair) => [pair.tensor, new Float64Array(pair.channels)]));
      for (const input of prepared) {
        const values = await first.outputsFor(input, pairs.map((pair) => pair.tensor));
        for (const { tensor, channels } of pairs) {
          // One input at a time, NCHW: channel c is the c-th contiguous block.
          const block = values[tensor]!.length / channels;
          const range = ranges.get(tensor)!;
          values[tensor]!.forEach((v, i) => {
            const c = Math.floor(i / block);
            if (Math.abs(v) > range[c]!) range[c] = Math.abs(v);
          });
        }
      }
      equalized = equalizeChannels(graph, pairs, ranges);
    }
  } finally {
    await first.release();
  }
  const measured = plan.tensors.filter((tensor) => !plan.sameRangeAs.has(tensor));
  const float = equalized > 0 ? onnx.ModelProto.encode(model).finish() : fp32;
  const logits = options.refitHead === false ? undefined : logitsGemm(graph)?.output?.[0];
  const extra = [features, logits].filter((name): name is string => !!name && !measured.includes(name));
  const runner = await ExportedModel.load(instrument(float, [...measured, ...extra]));
  try {
    const ranges = await calibrateRanges({ inputs: prepared.length, run: (i, tensors) => runner.outputsFor(prepared[i]!, tensors) }, measured, settings);
    const report = applyQuantization(graph, plan, ranges, { ...settings, inputs: prepared.length });
    report.equalized = equalized;
    quantizeEmbeddings(graph, report);
    if (features) await correctFeatureBias(model, features, prepared, runner, prefix);
    const gemm = logits ? logitsGemm(graph) : undefined;
    if (gemm) {
      // The training data when the manifest (or `data`) names it, even if explicit calibration inputs were given: 48 are too few to refit a head on.
      const known = options.data !== undefined || typeof (classifier.manifest.training?.data as { origin?: unknown } | undefined)?.origin === 'string';
      const refitInputs = await preparedInputs(classifier, runner, await calibrationInputs(classifier, { ...options, ...(known ? { inputs: undefined } : {}), count: Math.max(HEAD_REFIT_COUNT, options.count ?? 0) }));
      const refit = await refitHeadToInt8(model, gemm, refitInputs, runner);
      if (refit) report.headRefit = refit;
    }
    return report;
  } finally {
    await runner.release();
  }
}

/** The inputs as the file takes them; an unreadable training input calibrates nothing, the others still do. */
async function preparedInputs(classifier: Classifier, model: ExportedModel, inputs: (Uint8Array | string)[]): Promise<PreparedInput[]> {
  const prepared: PreparedInput[] = [];
  for (const input of inputs) {
    try {
      prepared.push(await prepareForExport(classifier, model, input));
    } catch {
      // Unreadable or undecodable: left out.
    }
  }
  return prepared;
}

/** A model's bytes with `tensors` added as float outputs, so a session can fetch them. */
function instrument(bytes: Uint8Array, tensors: string[]): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  model.graph!.output = [...model.graph!.output!, ...tensors.map(floatOutput)];
  return onnx.ModelProto.encode(model).finish();
}

const floatOutput = (name: string): OnnxTypes.IValueInfoProto => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });

/**
 * Empirical bias correction where the float head begins: rounding in every layer shifts the mean of
 * the pooled features a little, the same way for every input, and a linear head turns that shift into
 * a shift of every logit — decisions near the boundary all tip the same way. The mean difference
 * between the quantised and the float features over the calibration inputs is subtracted (one Sub
 * node), which leaves the quantisation noise but removes its bias (Nagel et al., "Data-free
 * quantization", 2019, §4.2, measured here rather than derived).
 */
async function correctFeatureBias(model: OnnxTypes.ModelProto, features: string, prepared: PreparedInput[], fp32: ExportedModel, prefix: string): Promise<void> {
  const graph = model.graph!;
  const probe = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  probe.graph!.output = [...probe.graph!.output!, floatOutput(features)];
  const quantized = await ExportedModel.load(onnx.ModelProto.encode(probe).finish());
  let sum: Float64Array | undefined;
  let rows = 0;
  try {
    for (const input of prepared) {
      const [exact, rounded] = [(await fp32.outputsFor(input, [features]))[features]!, (await quantized.outputsFor(input, [features]))[features]!];
      sum ??= new Float64Array(exact.length);
      for (let i = 0; i < exact.length; i++) sum[i]! += rounded[i]! - exact[i]!;
      rows++;
    }
  } finally {
    await quantized.release();
  }
  if (!sum || rows === 0) return;
  const shift = Float32Array.from(sum, (total) => total / rows);
  const taken = namesIn(graph);
  const fresh = (hint: string) => {
    let name = hint;
    for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
    taken.add(name);
    return name;
  };
  const shiftName = fresh(`${prefix}int8_feature_shift`);
  const corrected = fresh(`${features}_bias_corrected`);
  graph.initializer = [...(graph.initializer ?? []), { name: shiftName, dims: [1, shift.length], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(shift.buffer) }];
  const nodes = (graph.node ?? []).map((node) => ({ ...node, input: (node.input ?? []).map((name) => (name === features ? corrected : name)) }));
  const at = nodes.findIndex((node) => (node.output ?? []).includes(features));
  nodes.splice(at + 1, 0, { name: fresh(`${prefix}int8_bias_correction/Sub`), opType: 'Sub', input: [features, shiftName], output: [corrected], attribute: [] });
  graph.node = nodes;
}

/** The raw inputs to calibrate on: given, or drawn (seeded) from the training split of `data` or of the data the model was trained on. */
async function calibrationInputs(classifier: Classifier, options: CalibrationOptions): Promise<(Uint8Array | string)[]> {
  const count = options.count ?? DEFAULT_CALIBRATION_COUNT;
  if (!Number.isInteger(count) || count < 1) throw usageError(`the number of calibration inputs must be a positive integer; got ${count}`);
  if (options.inputs) {
    if (options.inputs.length === 0) throw usageError('static int8 quantisation needs at least one calibration input; none were given');
    return options.inputs.slice(0, count);
  }
  const origin = options.data ?? (classifier.manifest.training?.data as { origin?: unknown } | undefined)?.origin;
  if (typeof origin !== 'string') {
    throw usageError('--quantize int8 calibrates on the training data, and this model\'s manifest does not say where that is; pass --calibrate <data>');
  }
  let dataset;
  try {
    dataset = await classifier.adapter.readDataset(origin, {});
  } catch (error) {
    throw dataError(`--quantize int8 calibrates on the model's training data, which cannot be read (${messageOf(error)}); pass --calibrate <data>`, origin, error);
  }
  const items = new Rng(0).shuffle([...dataset.train]).slice(0, count);
  return Promise.all(items.map((item) => item.load()));
}

async function exportImageClassifier(classifier: Classifier, backbone: ImageBackbone, options: ExportOptions): Promise<ExportResult> {
  const { spec } = backbone;
  const graph = await readBackboneGraph(spec.model, spec.origin);
  if (graph.inputs.length !== 1) {
    throw modelError(`an image backbone graph must take exactly one input; this one takes ${graph.inputs.map((i) => i.name).join(', ') || 'none'}`, spec.origin);
  }
  const added = new OnnxGraph();
  const builder = new HeadGraphBuilder(added, graph.opset, graph.prefix);
  const pre = backbone.preprocessing;
  const pixelsName = graph.taken.has('pixels') ? `${graph.prefix}pixels` : 'pixels';
  const pixels = added.addInput(pixelsName, [-1, pre.height, pre.width, 3]);
  added.nameTensor(builder.pixelsToTensor(pixels, pre), backbone.inputName);
  const before = added.nodes.length;
  const features = builder.pool(backbone.outputName, backbone.pooling);
  const inputs = [tensorInfo(pixelsName, onnx.TensorProto.DataType.UINT8, ['batch', pre.height, pre.width, 3])];
  const { outputName, quantization } = assemble(graph, added, builder, before, features, classifier, inputs, options);
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION,
    modality: 'image',
    labels: classifier.labels,
    input: {
      kind: 'image',
      name: pixelsName,
      dtype: 'uint8',
      layout: 'NHWC',
      width: pre.width,
      height: pre.height,
      resize: pre.resize,
      ...(pre.shortestEdge === undefined ? {} : { shortestEdge: pre.shortestEdge }),
      interpolation: pre.interpolation,
      background: [255, 255, 255],
    },
    output: { name: outputName, kind: 'probabilities', classes: classifier.labels.length },
    preprocessing: pre,
    provenance: provenanceOf(classifier, quantization),
  };
  return finish(classifier, graph, metadata, quantization, await probeImages(), spec.origin, options);
}

/**
 * A transformer text classifier: the graph takes `input_ids` and `attention_mask` (token_type_ids,
 * when the encoder has them, are zeros made inside), pools as the backbone does, and the file
 * carries the tokenizer, so a browser tokenises with @huggingface/tokenizers and needs nothing else.
 */
async function exportTextClassifier(classifier: Classifier, backbone: TransformerTextBackbone, options: ExportOptions): Promise<ExportResult> {
  const { spec, tokenizer } = backbone;
  const origin = typeof spec.model === 'string' ? spec.model : spec.id;
  const graph = await readBackboneGraph(spec.model, origin);
  const names = graph.inputs.map((input) => input.name!);
  const unknown = names.filter((name) => !['input_ids', 'attention_mask', 'token_type_ids'].includes(name));
  if (!names.includes('input_ids') || unknown.length > 0) {
    throw modelError(`a text encoder graph must take input_ids (and optionally attention_mask, token_type_ids); this one takes ${names.join(', ')}`, origin);
  }
  const tokenizerText = await readFile(join(spec.folder, 'tokenizer.json'), 'utf8');
  if (sha256(tokenizerText) !== tokenizer.sha256) throw modelError('tokenizer.json changed since the backbone was opened', spec.folder);
  const tokenizerConfig = await readFile(join(spec.folder, 'tokenizer_config.json'), 'utf8').then(JSON.parse, () => ({}));

  const added = new OnnxGraph();
  const builder = new HeadGraphBuilder(added, graph.opset, graph.prefix);
  // The graph keeps the encoder's own input names, so its nodes read them directly.
  const idsName = 'input_ids';
  const maskName = names.includes('attention_mask') || !graph.taken.has('attention_mask') ? 'attention_mask' : `${graph.prefix}attention_mask`;
  added.addInput(idsName, [-1, -1]);
  added.addInput(maskName, [-1, -1]);
  if (names.includes('token_type_ids')) added.nameTensor(builder.zerosLike(idsName), 'token_type_ids');
  const before = added.nodes.length;
  const { pooling, normalize } = backbone.preprocessing;
  const features = builder.poolTokens(backbone.outputName, maskName, pooling, normalize);
  const tokenInfo = (name: string) => tensorInfo(name, onnx.TensorProto.DataType.INT64, ['batch', 'tokens']);
  const { outputName, quantization } = assemble(graph, added, builder, before, features, classifier, [tokenInfo(idsName), tokenInfo(maskName)], options);
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION,
    modality: 'text',
    labels: classifier.labels,
    input: { kind: 'text', idsName, maskName, maxLength: tokenizer.maxLength, padId: tokenizer.padId, prefix: tokenizer.prefix, suffix: tokenizer.suffix },
    output: { name: outputName, kind: 'probabilities', classes: classifier.labels.length },
    preprocessing: backbone.preprocessing,
    provenance: provenanceOf(classifier, quantization),
    tokenizer: { tokenizer: JSON.parse(tokenizerText) as object, config: tokenizerConfig as object },
  };
  return finish(classifier, graph, metadata, quantization, PROBE_TEXTS, origin, options);
}

/**
 * A word-vector classifier: the file takes word ids and a mask and holds the whole vector table
 * (and the SIF weights), so any text gets the library's features — a table cut to the training
 * words would drop the words first seen in use. The vocabulary goes into the metadata and
 * consumers tokenise with headstart's own word tokeniser (src/web/word-tokens.ts).
 */
async function exportWordVectorClassifier(classifier: Classifier, backbone: WordVectorBackbone, options: ExportOptions): Promise<ExportResult> {
  const { table, preprocessing } = backbone;
  const graph = noBackboneGraph();
  const added = new OnnxGraph();
  const builder = new HeadGraphBuilder(added, graph.opset, graph.prefix);
  const idsName = added.addInput('input_ids', [-1, -1]);
  const maskName = added.addInput('attention_mask', [-1, -1]);
  const weights = preprocessing.pooling === 'mean' ? undefined : sifWeights(table.words.length, preprocessing.sifA);
  const features = builder.poolWords(idsName, maskName, table.vectors, table.dim, weights, preprocessing.pooling === 'sif+max+min', preprocessing.normalize);
  const tokenInfo = (name: string) => tensorInfo(name, onnx.TensorProto.DataType.INT64, ['batch', 'words']);
  const { outputName, quantization } = assemble(graph, added, builder, 0, features, classifier, [tokenInfo(idsName), tokenInfo(maskName)], options);
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION,
    modality: 'text',
    labels: classifier.labels,
    input: { kind: 'words', idsName, maskName, padId: 0, tokenizer: preprocessing.tokenizer, vocabularySize: table.words.length },
    output: { name: outputName, kind: 'probabilities', classes: classifier.labels.length },
    preprocessing,
    provenance: provenanceOf(classifier, quantization),
    vocabulary: table.words,
  };
  return finish(classifier, graph, metadata, quantization, PROBE_TEXTS, table.origin, options);
}

/**
 * A TF-IDF classifier: the graph takes the rows sparse (their non-zeros as a COO tensor), makes
 * them dense and applies the head; the fitted state (settings, terms, idf) goes into the metadata
 * and consumers compute the non-zeros with the library's featuriser (src/web/tfidf.ts). Sparse in,
 * because an uncapped vocabulary (AG News: 212,834 terms) would make every dense input row
 * 0.85 MB for a few hundred non-zeros.
 */
async function exportTfidfClassifier(classifier: Classifier, backbone: TfidfBackbone, options: ExportOptions): Promise<ExportResult> {
  const { state } = backbone.map;
  const graph = noBackboneGraph();
  const added = new OnnxGraph();
  const builder = new HeadGraphBuilder(added, graph.opset, graph.prefix);
  const dim = state.terms.length;
  const indicesName = added.addInput('tfidf_indices', [-1, 2], 'int64');
  const valuesName = added.addInput('tfidf_values', [-1]);
  const shapeName = added.addInput('tfidf_shape', [2], 'int64');
  const rows = builder.sparseToDense(indicesName, valuesName, shapeName, dim);
  const inputs = [
    tensorInfo(indicesName, onnx.TensorProto.DataType.INT64, ['nnz', 2]),
    tensorInfo(valuesName, onnx.TensorProto.DataType.FLOAT, ['nnz']),
    tensorInfo(shapeName, onnx.TensorProto.DataType.INT64, [2]),
  ];
  const { outputName, quantization } = assemble(graph, added, builder, 0, rows, classifier, inputs, options);
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION,
    modality: 'text',
    labels: classifier.labels,
    input: { kind: 'tfidf', indicesName, valuesName, shapeName, dim },
    output: { name: outputName, kind: 'probabilities', classes: classifier.labels.length },
    // The state itself is under headstart.tfidf; once is enough.
    preprocessing: { kind: 'tfidf', settings: state.settings },
    provenance: provenanceOf(classifier, quantization),
    tfidf: state,
  };
  return finish(classifier, graph, metadata, quantization, PROBE_TEXTS, 'tfidf', options);
}

/**
 * An audio classifier on the speech-embedding backbone: the file takes one 16 kHz mono clip
 * [1, samples] and holds both of the backbone's graphs — mel spectrogram, then the embedding of
 * 76-frame windows — with the windowing between them and the pooling after them done in the graph
 * exactly as SpeechEmbeddingBackbone does it. Decoding and resampling stay outside (any WAV reader
 * does them; headstart's resampler is named in the metadata).
 */
async function exportSpeechEmbeddingClassifier(classifier: Classifier, backbone: SpeechEmbeddingBackbone, options: ExportOptions): Promise<ExportResult> {
  const { spec, preprocessing } = backbone;
  const { SPEECH_EMBEDDING } = await import('../backbones/audio-speech-embedding.js');
  const mel = await readBackboneGraph(spec.melModel, spec.melModel);
  const embedding = await readBackboneGraph(spec.embeddingModel, spec.embeddingModel);
  for (const [graph, origin] of [[mel, spec.melModel], [embedding, spec.embeddingModel]] as const) {
    if (graph.inputs.length !== 1 || (graph.graph.output ?? []).length < 1) throw modelError('a speech-embedding graph must take one input and give one output', origin);
  }
  // Both graphs go into one: their names are prefixed so they cannot clash.
  prefixNames(mel.graph, 'mel/', spec.melModel);
  prefixNames(embedding.graph, 'embedding/', spec.embeddingModel);
  const melNodes = mel.graph.node ?? [];
  const embeddingNodes = embedding.graph.node ?? [];
  const melInput = mel.inputs[0]!.name!;
  const melOutput = mel.graph.output![0]!.name!;
  const embeddingInput = embedding.inputs[0]!.name!;
  const embeddingOutput = embedding.graph.output![0]!.name!;
  const merged = mel;
  merged.graph.node = [];
  merged.graph.initializer = [...(mel.graph.initializer ?? []), ...(embedding.graph.initializer ?? [])];
  merged.graph.valueInfo = [...(mel.graph.valueInfo ?? []), ...(embedding.graph.valueInfo ?? [])];
  merged.model.opsetImport = mergeOpsets(mel.model, embedding.model);
  merged.taken = new Set([...mel.taken, ...embedding.taken, ...namesIn(mel.graph), ...namesIn(embedding.graph)]);
  merged.prefix = freePrefix(merged.taken);
  // The log-mel front end is preprocessing: its dynamic range (power spectra) does not survive 8 bits.
  merged.floatPrefixes = ['mel/'];

  const added = new OnnxGraph();
  const builder = new HeadGraphBuilder(added, Math.min(mel.opset, embedding.opset), merged.prefix);
  const samplesName = merged.taken.has('samples') ? `${merged.prefix}samples` : 'samples';
  const samples = added.addInput(samplesName, [1, -1]);
  added.nameTensor(builder.samplesToMelInput(samples, SPEECH_EMBEDDING.int16Scale, SPEECH_EMBEDDING.fftSize), melInput);
  const melEnd = added.nodes.length;
  added.nameTensor(builder.speechWindows(melOutput, SPEECH_EMBEDDING), embeddingInput);
  const embeddingEnd = added.nodes.length;
  const features = builder.poolWindows(embeddingOutput, SPEECH_EMBEDDING.embeddingDim, preprocessing.pooling);
  const order = (nodes: OnnxTypes.INodeProto[]) => [...nodes.slice(0, melEnd), ...melNodes, ...nodes.slice(melEnd, embeddingEnd), ...embeddingNodes, ...nodes.slice(embeddingEnd)];
  const inputs = [tensorInfo(samplesName, onnx.TensorProto.DataType.FLOAT, [1, 'samples'])];
  const { outputName, quantization } = assemble(merged, added, builder, order, features, classifier, inputs, options);
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION,
    modality: 'audio',
    labels: classifier.labels,
    input: { kind: 'audio', name: samplesName, sampleRate: preprocessing.sampleRate, resampler: preprocessing.resampler, batch: 1 },
    output: { name: outputName, kind: 'probabilities', classes: classifier.labels.length },
    preprocessing,
    provenance: provenanceOf(classifier, quantization),
  };
  return finish(classifier, merged, metadata, quantization, await probeClips(), spec.embeddingModel, options);
}

/** Seeded clips for the audio self-check: shorter than one STFT frame, shorter than a window, a few seconds; 8 kHz (resampled) and 16 kHz. */
async function probeClips(): Promise<Uint8Array[]> {
  // The same default import wav.ts uses: it is what resolves to wavefile's CommonJS build under every loader.
  const { WaveFile } = (await import('../data/wav.js')).wavefileModule;
  const rng = new Rng(11);
  return [
    [8_000, 0.02],
    [16_000, 0.5],
    [16_000, 2.3],
    [8_000, 1.2],
  ].map(([rate, seconds], k) => {
    const samples = Array.from({ length: Math.round(rate! * seconds!) }, (_, i) => 0.3 * Math.sin((2 * Math.PI * (220 + 180 * k) * i) / rate!) + 0.05 * rng.normal());
    const wav = new WaveFile();
    wav.fromScratch(1, rate!, '32f', samples);
    return wav.toBuffer();
  });
}

/** The union of two models' opset imports, each domain at the newer version. */
function mergeOpsets(a: OnnxTypes.IModelProto, b: OnnxTypes.IModelProto): OnnxTypes.IOperatorSetIdProto[] {
  const versions = new Map<string, number>();
  for (const entry of [...(a.opsetImport ?? []), ...(b.opsetImport ?? [])]) {
    const domain = entry.domain === 'ai.onnx' ? '' : entry.domain ?? '';
    versions.set(domain, Math.max(versions.get(domain) ?? 0, Number(entry.version ?? 0)));
  }
  return [...versions].map(([domain, version]) => ({ domain, version }));
}

/** Prefixes every tensor and node name of a graph, so it can share one graph with another. */
function prefixNames(graph: OnnxTypes.IGraphProto, prefix: string, origin: string): void {
  // An empty name is an omitted optional input, not a tensor.
  const rename = (name: string | null | undefined) => (name ? `${prefix}${name}` : '');
  for (const node of graph.node ?? []) {
    if ((node.attribute ?? []).some((attribute) => attribute.g || attribute.graphs?.length)) throw modelError('a graph with subgraphs (If, Loop) cannot be merged into an export', origin);
    node.name = rename(node.name);
    node.input = (node.input ?? []).map(rename);
    node.output = (node.output ?? []).map(rename);
  }
  for (const tensor of graph.initializer ?? []) tensor.name = rename(tensor.name);
  for (const list of [graph.input, graph.output, graph.valueInfo]) for (const value of list ?? []) value.name = rename(value.name);
}

/** Texts for the export's self-check: short, long (truncated), accented, empty of letters, unknown words, empty. */
const PROBE_TEXTS = [
  'A short sentence.',
  'The quick brown fox jumps over the lazy dog, again and again, until the dog finally gets up and leaves. '.repeat(12),
  'Café déjà vu — naïve résumé',
  '1234 !!! ???',
  'qzxwv blorptangle frumious',
  '',
];

/** Runs the exported file and the library on the same inputs (image bytes, or texts) and compares probabilities. */
export async function compareWithLibrary(classifier: Classifier, exported: Uint8Array, inputs: (Uint8Array | string)[]): Promise<ExportComparison> {
  const model = await ExportedModel.load(exported);
  try {
    const ours = await exportedProbabilities(model, classifier, inputs);
    const library = await classifier.predictProbabilities(inputs);
    return summarise(ours, library, classifier.labels.length);
  } finally {
    await model.release();
  }
}

/**
 * What the exported model is fed for one input, prepared as the library prepares it: decoded
 * pixels, or token ids; word-vector and TF-IDF exports take the text itself, featurised from the
 * file's metadata as a consumer would (so the check covers the embedded vocabulary / state too).
 */
async function prepareForExport(classifier: Classifier, model: ExportedModel, input: Uint8Array | string): Promise<Uint8Array | Float32Array | number[] | string> {
  if (classifier.backbone instanceof ImageBackbone) {
    if (typeof input === 'string') throw modelError('an image export compares on image bytes, not paths or texts');
    return prepareImagePixels(input, classifier.backbone.preprocessing);
  }
  const kind = model.metadata.input.kind;
  if (kind === 'audio') {
    if (typeof input === 'string') throw modelError('an audio export compares on WAV bytes');
    // Audio code loads only for audio models, as the modality adapters do.
    const { decodeAudio } = await import('../data/audio-decode.js');
    return decodeAudio(input, model.metadata.input.sampleRate);
  }
  if (kind !== 'text') {
    if (typeof input !== 'string') throw modelError('a text export compares on texts');
    return input;
  }
  return ((await classifier.backbone.prepare(input)) as { ids: number[] }).ids;
}

async function runExported(model: ExportedModel, prepared: (Uint8Array | Float32Array | number[] | string)[]): Promise<Float32Array> {
  switch (model.metadata.input.kind) {
    case 'audio':
      return model.probabilitiesOfSamples(prepared as Float32Array[]);
    case 'image':
      return model.probabilities(prepared as Uint8Array[]);
    case 'text':
      return model.probabilitiesOfTokens(prepared as number[][]);
    default:
      return model.probabilitiesOfTexts(prepared as string[]);
  }
}

async function exportedProbabilities(model: ExportedModel, classifier: Classifier, inputs: (Uint8Array | string)[]): Promise<Float32Array> {
  return runExported(model, await Promise.all(inputs.map((input) => prepareForExport(classifier, model, input))));
}

export interface LabelledComparison extends ExportComparison {
  libraryAccuracy: number;
  exportedAccuracy: number;
  /** libraryAccuracy − exportedAccuracy. */
  accuracyDrop: number;
  skipped: number;
}

/**
 * Accuracy of the library and of the exported file on a labelled set (the int8 accuracy drop),
 * both on the same prepared inputs; inputs that cannot be read or decoded are skipped by both.
 */
export async function compareOnLabelled(
  classifier: Classifier,
  exported: Uint8Array,
  items: LabelledItem<Uint8Array | string>[],
  reporter: Reporter = silentReporter,
): Promise<LabelledComparison> {
  const model = await ExportedModel.load(exported);
  const k = classifier.labels.length;
  const task = reporter.task('comparing exported model', items.length, classifier.adapter.noun);
  let correctLibrary = 0;
  let correctExported = 0;
  let agree = 0;
  let maxAbsDifference = 0;
  let compared = 0;
  let skipped = 0;
  try {
    for (let start = 0; start < items.length; start += 16) {
      const batch = items.slice(start, start + 16);
      const loaded = await Promise.all(
        batch.map(async (item) => {
          try {
            const input = await item.load();
            return { item, input, prepared: await prepareForExport(classifier, model, input) };
          } catch {
            // Unreadable or undecodable: skipped on both sides.
            skipped++;
            return undefined;
          }
        }),
      );
      const usable = loaded.filter((entry) => entry !== undefined);
      task.tick(batch.length);
      if (usable.length === 0) continue;
      const ours = await runExported(model, usable.map((entry) => entry.prepared));
      const library = await classifier.predictProbabilities(usable.map((entry) => entry.input));
      usable.forEach((entry, i) => {
        const a = argmax(ours, i, k);
        const b = argmax(library, i, k);
        if (a === entry.item.label) correctExported++;
        if (b === entry.item.label) correctLibrary++;
        if (a === b) agree++;
        for (let c = 0; c < k; c++) maxAbsDifference = Math.max(maxAbsDifference, Math.abs(ours[i * k + c]! - library[i * k + c]!));
      });
      compared += usable.length;
    }
  } finally {
    task.done();
    await model.release();
  }
  if (compared === 0) throw modelError('none of the labelled inputs could be read');
  return {
    inputs: compared,
    skipped,
    maxAbsDifference,
    top1Agreement: agree / compared,
    libraryAccuracy: correctLibrary / compared,
    exportedAccuracy: correctExported / compared,
    accuracyDrop: (correctLibrary - correctExported) / compared,
  };
}

function summarise(ours: Float32Array, library: Float32Array, k: number): ExportComparison {
  const inputs = library.length / k;
  let maxAbsDifference = 0;
  let agree = 0;
  for (let i = 0; i < inputs; i++) {
    if (argmax(ours, i, k) === argmax(library, i, k)) agree++;
    for (let c = 0; c < k; c++) maxAbsDifference = Math.max(maxAbsDifference, Math.abs(ours[i * k + c]! - library[i * k + c]!));
  }
  return { inputs, maxAbsDifference, top1Agreement: agree / inputs };
}

function argmax(rows: Float32Array, row: number, k: number): number {
  let best = 0;
  for (let c = 1; c < k; c++) if (rows[row * k + c]! > rows[row * k + best]!) best = c;
  return best;
}

/** Seeded noise images of assorted sizes and aspects, so the check covers cropping and every channel. */
async function probeImages(): Promise<Uint8Array[]> {
  const rng = new Rng(7);
  const sizes = [
    [320, 240],
    [181, 293],
    [256, 256],
  ] as const;
  return Promise.all(
    sizes.map(([width, height]) => {
      const raw = Buffer.alloc(width * height * 3);
      // Smooth gradients plus noise: features in a realistic range rather than saturated ones.
      for (let i = 0; i < raw.length; i++) raw[i] = Math.min(255, ((i % (width * 3)) / 3 / width) * 160 + rng.int(96));
      return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
    }),
  );
}

/** `name` or `name (pooling)`, as ImageBackbone records its feature output. */
function parseFeatureOutput(featureOutput: string): { output: string; pooling: Pooling } {
  const match = /^(.*) \((spatial-mean|first-token|token-mean)\)$/.exec(featureOutput);
  return match ? { output: match[1]!, pooling: match[2] as Pooling } : { output: featureOutput, pooling: 'none' };
}

function defaultOpset(model: OnnxTypes.IModelProto): number {
  const entry = (model.opsetImport ?? []).find((opset) => !opset.domain || opset.domain === 'ai.onnx');
  return Number(entry?.version ?? 0);
}

/** Every name a graph uses (tensors, nodes), subgraphs included. */
function namesIn(graph: OnnxTypes.IGraphProto, names = new Set<string>()): Set<string> {
  for (const list of [graph.input, graph.output, graph.valueInfo]) for (const value of list ?? []) names.add(value.name!);
  for (const tensor of graph.initializer ?? []) names.add(tensor.name!);
  for (const node of graph.node ?? []) {
    names.add(node.name ?? '');
    for (const name of [...(node.input ?? []), ...(node.output ?? [])]) names.add(name);
    for (const attribute of node.attribute ?? []) for (const sub of [attribute.g, ...(attribute.graphs ?? [])]) if (sub) namesIn(sub, names);
  }
  return names;
}

/** A prefix no existing name starts with, for everything the export adds. */
function freePrefix(taken: Set<string>): string {
  for (let i = 1; ; i++) {
    const prefix = i === 1 ? 'headstart/' : `headstart_${i}/`;
    if (![...taken].some((name) => name.startsWith(prefix))) return prefix;
  }
}

/** A node's inputs plus every outer name its subgraphs (If/Loop bodies) may read. */
export function referencedNames(node: OnnxTypes.INodeProto): string[] {
  const names = [...(node.input ?? [])];
  for (const attribute of node.attribute ?? []) {
    for (const sub of [attribute.g, ...(attribute.graphs ?? [])]) {
      if (sub) for (const inner of sub.node ?? []) names.push(...referencedNames(inner));
    }
  }
  return names;
}

/** The nodes `output` depends on, in their original (topological) order; the backbone's unused heads go. */
export function prune(nodes: OnnxTypes.INodeProto[], output: string): OnnxTypes.INodeProto[] {
  const needed = new Set([output]);
  const kept: OnnxTypes.INodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!(node.output ?? []).some((name) => needed.has(name))) continue;
    kept.push(node);
    for (const name of referencedNames(node)) needed.add(name);
  }
  return kept.reverse();
}

/** Weights kept in side files (`model.onnx_data`, large Hugging Face exports) are pulled into the one file. */
async function inlineExternalData(graph: OnnxTypes.IGraphProto, dir: string | undefined, origin: string): Promise<void> {
  const files = new Map<string, Promise<Buffer>>();
  for (const tensor of graph.initializer ?? []) {
    if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const entry = (key: string) => tensor.externalData?.find((e) => e.key === key)?.value ?? undefined;
    const location = entry('location');
    if (!dir || !location || location.includes('..')) throw modelError(`weight "${tensor.name}" lives in an external file that cannot be found`, origin);
    const path = join(dir, location);
    if (!files.has(path)) {
      files.set(path, readFile(path).catch((error) => { throw modelError(`cannot read external weights: ${messageOf(error)}`, path, error); }));
    }
    const data = await files.get(path)!;
    const offset = Number(entry('offset') ?? 0);
    const length = Number(entry('length') ?? data.length - offset);
    tensor.rawData = data.subarray(offset, offset + length);
    tensor.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    tensor.externalData = [];
  }
}

export function tensorInfo(name: string, elemType: number, shape: (number | string)[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: shape.map((size) => (typeof size === 'string' ? { dimParam: size } : { dimValue: size })) } } },
  };
}
