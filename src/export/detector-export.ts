/**
 * `headstart export <detector>`: one ONNX file taking uint8 RGB pixels [1, H, W, 3] at the
 * detector's input size and returning float32 [N, 6] rows (x1, y1, x2, y2, score, class) in the
 * input's pixels, best first — the layout's decoding and suppression built into the graph:
 *  - CenterNet: a 3×3 MaxPool keeps the cells equal to their neighbourhood's maximum (the peaks the
 *    library's `decodeCenterNet` finds), TopK takes the best `maxDetections` over every cell and
 *    class in the library's (cell, class) order, a cell's box is its point ± the predicted sides;
 *  - Ultralytics YOLO: pixels / 255 and NCHW in the graph, each anchor's best class (as
 *    `YoloLayout` does), NonMaxSuppression per class at the layout's IoU, then TopK over what is left.
 * Resizing stays outside (stretch or letterbox, `detectionPlacement` in src/web/format.ts), for the
 * reason the classifier export gives: ONNX's Resize cannot reproduce libvips' antialiased downscale.
 * Boxes are not clipped in the graph: clipping belongs to the photo's pixels, after the letterbox is
 * undone (`detectionsFromRows`).
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import sharp from 'sharp';
import { attr, encodeModel, OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import type { Detector } from '../detector/detector.js';
import type { DetectorGraphSpec, PreparedPixels } from '../detector/layout.js';
import { modelError, usageError } from '../util/errors.js';
import { VERSION } from '../version.js';
import { EXPORT_FORMAT_VERSION, metadataProps, type ExportedDetectionsOutput, type ExportedImageInput, type ExportMetadata } from '../web/format.js';
import { ExportedDetector } from './exported-detector.js';
import { prune, readBackboneGraph, referencedNames, tensorInfo, type BackboneGraph } from './onnx-export.js';

const { onnx } = onnxProto;

export interface DetectorExportOptions {
  /** Lowest score the file returns (default 0.25, as `detect`); must be above 0. */
  threshold?: number;
  /** At most this many boxes (default 100). */
  maxDetections?: number;
}

export interface DetectorExportResult {
  onnx: Uint8Array;
  metadata: ExportMetadata;
  /** The file against `Detector` on the same pixels right after exporting. */
  check: DetectorExportCheck;
}

export interface DetectorExportCheck {
  images: number;
  /** Both returned the same number of boxes, labels in the same order. */
  sameDetections: boolean;
  /** Largest |Δ| of box corners (photo pixels) and scores over matched rows. */
  maxBoxDifference: number;
  maxScoreDifference: number;
}

/** Boxes (photo pixels, up to thousands) are float32 in the graph: agreement is relative to their size. */
const CHECK_TOLERANCE = 1e-4;

export async function exportDetector(detector: Detector, options: DetectorExportOptions = {}): Promise<DetectorExportResult> {
  const threshold = options.threshold ?? 0.25;
  const maxDetections = options.maxDetections ?? 100;
  if (!(threshold > 0 && threshold <= 1)) throw usageError(`an exported detector needs a score threshold in (0, 1]; got ${threshold}`);
  if (!Number.isInteger(maxDetections) || maxDetections < 1) throw usageError(`--max-detections must be a positive integer; got ${maxDetections}`);
  const layout = detector.layout;
  const spec = layout.graphSpec?.();
  if (!spec || spec.kind === 'detr' || !layout.preparePixels) throw usageError(`cannot export a ${layout.kind} detector: export covers CenterNet (builtin:centernet and models fine-tuned from it) and Ultralytics YOLO files`);
  const origin = typeof spec.model === 'string' ? spec.model : detector.reference;
  const graph = await readBackboneGraph(spec.model, origin);
  const added = new OnnxGraph();
  for (const name of graph.taken) added.reserveName(name);
  const classes = detector.classes.length;
  const built = spec.kind === 'centernet' ? centerNetTail(added, graph.prefix, spec, classes, threshold, maxDetections) : yoloTail(added, graph.prefix, spec, classes, threshold, maxDetections);
  const outputName = added.nameTensor(built.detections, graph.taken.has('detections') ? `${graph.prefix}detections` : 'detections');
  added.output = { name: outputName, shape: [-1, 6] };
  const addedGraph = onnx.ModelProto.decode(encodeModel(added, 'headstart', '')).graph!;
  const addedNodes = addedGraph.node!;
  const g = graph.graph;
  g.node = prune([...addedNodes.slice(0, built.before), ...(g.node ?? []), ...addedNodes.slice(built.before)], outputName);
  const used = new Set(g.node.flatMap(referencedNames));
  g.initializer = [...(g.initializer ?? []), ...addedGraph.initializer!].filter((tensor) => used.has(tensor.name!));
  const produced = new Set(g.node.flatMap((node) => node.output ?? []));
  g.valueInfo = (g.valueInfo ?? []).filter((info) => produced.has(info.name!));
  const [height, width] = spec.kind === 'centernet' ? [spec.inputSize, spec.inputSize] : [spec.inputHeight, spec.inputWidth];
  g.input = [tensorInfo(built.pixels, onnx.TensorProto.DataType.UINT8, [1, height, width, 3])];
  g.output = [tensorInfo(outputName, onnx.TensorProto.DataType.FLOAT, ['detections', 6])];
  g.name = 'headstart_detector';
  ensureOpset(graph, 17);

  const input: ExportedImageInput = {
    kind: 'image', name: built.pixels, dtype: 'uint8', layout: 'NHWC', width, height,
    resize: spec.kind === 'centernet' ? 'stretch' : 'letterbox',
    interpolation: 'bilinear',
    background: spec.kind === 'centernet' ? [255, 255, 255] : [0, 0, 0],
    ...(spec.kind === 'centernet' ? {} : { padValue: 114 }),
  };
  const output: ExportedDetectionsOutput = {
    name: outputName, kind: 'detections', columns: ['x1', 'y1', 'x2', 'y2', 'score', 'class'], classes, threshold, maxDetections,
    decoding: spec.kind === 'centernet' ? { kind: 'centernet-peaks' } : { kind: 'nms', iou: spec.nmsIou, classAware: true },
  };
  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT_VERSION, modality: 'detection', labels: detector.classes, input, output,
    preprocessing: { layout: layout.kind, resize: input.resize, ...(spec.kind === 'centernet' ? { scale: '0-255' } : { scale: '0-1', padValue: 114 }) },
    provenance: null,
  };
  const model = graph.model;
  model.producerName = 'headstart';
  model.producerVersion = VERSION;
  model.docString = `headstart detector (${layout.kind}, ${classes} classes) from ${detector.reference}: uint8 RGB pixels in, [N, 6] boxes out`;
  const props = metadataProps(metadata);
  model.metadataProps = [...(model.metadataProps ?? []).filter((entry) => !(entry.key! in props)), ...Object.entries(props).map(([key, value]) => ({ key, value }))];
  const bytes = onnx.ModelProto.encode(model).finish();
  const check = await checkAgainstLibrary(detector, bytes, threshold, maxDetections);
  if (!check.sameDetections || check.maxBoxDifference > CHECK_TOLERANCE || check.maxScoreDifference > CHECK_TOLERANCE) {
    throw modelError(`the exported detector disagrees with the library (${JSON.stringify(check)}); please report this`, origin);
  }
  return { onnx: bytes, metadata, check };
}

interface Tail {
  /** The uint8 input's name. */
  pixels: string;
  /** How many of the added nodes come before the detector's own. */
  before: number;
  detections: string;
}

const int64 = (graph: OnnxGraph, hint: string, values: number[]) => graph.addInt64Initializer(hint, values);

/** Adds a node with several outputs (OnnxGraph.addNode makes one). */
function multiOutput(graph: OnnxGraph, op: string, inputs: string[], outputs: string[], attributes: Record<string, ReturnType<typeof attr.int>> = {}): string[] {
  const names = outputs.map((hint) => graph.uniqueName(hint));
  graph.nodes.push({ name: graph.uniqueName(`${outputs[0]}/${op}`), op, inputs, outputs: names, attributes });
  return names;
}

/**
 * The rows ≥ `threshold` of a best-first score vector (TopK's output is sorted, so this keeps a
 * prefix): NonZero → gather, the graph's one dynamic size.
 */
function keepAbove(graph: OnnxGraph, p: string, scores: string, threshold: string): string {
  const mask = graph.addNode('GreaterOrEqual', [scores, threshold], {}, `${p}keep/mask`);
  const where = graph.addNode('NonZero', [mask], {}, `${p}keep/where`);
  return graph.addNode('Reshape', [where, int64(graph, `${p}keep/flat`, [-1])], {}, `${p}keep/rows`);
}

function centerNetTail(graph: OnnxGraph, p: string, spec: Extract<DetectorGraphSpec, { kind: 'centernet' }>, classes: number, threshold: number, maxDetections: number): Tail {
  const size = spec.inputSize;
  const grid = size / spec.stride;
  const pixels = graph.uniqueName('pixels');
  // The converted graph takes NHWC floats in 0–255: a Cast is all the scaling there is.
  graph.nodes.push({ name: graph.uniqueName(`${p}pixels/Cast`), op: 'Cast', inputs: [pixels], outputs: [spec.inputName], attributes: { to: attr.int(onnx.TensorProto.DataType.FLOAT) } });
  const before = graph.nodes.length;
  // Peaks: the heatmap [1, G, G, C] equals its 3×3 max-pool (MaxPool pads with −∞, like TF's SAME).
  const nchw = graph.addNode('Transpose', [spec.heatmapOutput], { perm: attr.ints([0, 3, 1, 2]) }, `${p}peaks/nchw`);
  const pooled = graph.addNode('MaxPool', [nchw], { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]), strides: attr.ints([1, 1]) }, `${p}peaks/pooled`);
  const pooledNhwc = graph.addNode('Transpose', [pooled], { perm: attr.ints([0, 2, 3, 1]) }, `${p}peaks/pooled_nhwc`);
  const isPeak = graph.addNode('Cast', [graph.addNode('Equal', [spec.heatmapOutput, pooledNhwc], {}, `${p}peaks/equal`)], { to: attr.int(onnx.TensorProto.DataType.FLOAT) }, `${p}peaks/is_peak`);
  const peakScores = graph.addNode('Mul', [spec.heatmapOutput, isPeak], {}, `${p}peaks/scores`);
  // Flattened in (cell, class) order: TopK breaks ties by the lower index, as the library's sort does.
  const flat = graph.addNode('Reshape', [peakScores, int64(graph, `${p}peaks/flat_shape`, [-1])], {}, `${p}peaks/flat`);
  const k = int64(graph, `${p}peaks/k`, [Math.min(maxDetections, grid * grid * classes)]);
  const [values, indices] = multiOutput(graph, 'TopK', [flat, k], [`${p}peaks/top_scores`, `${p}peaks/top_indices`], { axis: attr.int(0), largest: attr.int(1), sorted: attr.int(1) });
  const rows = keepAbove(graph, p, values!, graph.addScalar(`${p}threshold`, threshold));
  const scores = graph.addNode('Gather', [values!, rows], { axis: attr.int(0) }, `${p}scores`);
  const index = graph.addNode('Gather', [indices!, rows], { axis: attr.int(0) }, `${p}indices`);
  const classCount = int64(graph, `${p}classes`, [classes]);
  const label = graph.addNode('Mod', [index, classCount], {}, `${p}label`);
  const cell = graph.addNode('Div', [index, classCount], {}, `${p}cell`);
  const gridWidth = int64(graph, `${p}grid_width`, [grid]);
  const stride = graph.addScalar(`${p}stride`, spec.stride);
  const toFloat = (name: string, hint: string) => graph.addNode('Cast', [name], { to: attr.int(onnx.TensorProto.DataType.FLOAT) }, hint);
  const column = (name: string, hint: string) => graph.addNode('Unsqueeze', [name, int64(graph, `${hint}/axes`, [1])], {}, hint);
  const x = column(graph.addNode('Mul', [toFloat(graph.addNode('Mod', [cell, gridWidth], {}, `${p}cell_x`), `${p}cell_xf`), stride], {}, `${p}x`), `${p}x_col`);
  const y = column(graph.addNode('Mul', [toFloat(graph.addNode('Div', [cell, gridWidth], {}, `${p}cell_y`), `${p}cell_yf`), stride], {}, `${p}y`), `${p}y_col`);
  const sidesFlat = graph.addNode('Reshape', [spec.sidesOutput, int64(graph, `${p}sides/shape`, [grid * grid, 4])], {}, `${p}sides/flat`);
  const sides = graph.addNode('Gather', [sidesFlat, cell], { axis: attr.int(0) }, `${p}sides/picked`);
  const [left, top, right, bottom] = multiOutput(graph, 'Split', [sides], ['left', 'top', 'right', 'bottom'].map((s) => `${p}sides/${s}`), { axis: attr.int(1) });
  const x1 = graph.addNode('Sub', [x, left!], {}, `${p}x1`);
  const y1 = graph.addNode('Sub', [y, top!], {}, `${p}y1`);
  const x2 = graph.addNode('Add', [x, right!], {}, `${p}x2`);
  const y2 = graph.addNode('Add', [y, bottom!], {}, `${p}y2`);
  const detections = graph.addNode('Concat', [x1, y1, x2, y2, column(scores, `${p}score_col`), column(toFloat(label, `${p}label_f`), `${p}label_col`)], { axis: attr.int(1) }, `${p}detections`);
  return { pixels, before, detections };
}

function yoloTail(graph: OnnxGraph, p: string, spec: Extract<DetectorGraphSpec, { kind: 'ultralytics-yolo' }>, classes: number, threshold: number, maxDetections: number): Tail {
  const pixels = graph.uniqueName('pixels');
  const asFloat = graph.uniqueName(`${p}pixels/float`);
  graph.nodes.push({ name: graph.uniqueName(`${p}pixels/Cast`), op: 'Cast', inputs: [pixels], outputs: [asFloat], attributes: { to: attr.int(onnx.TensorProto.DataType.FLOAT) } });
  const scaled = graph.addNode('Mul', [asFloat, graph.addScalar(`${p}pixels/scale`, 1 / 255)], {}, `${p}pixels/scaled`);
  graph.nodes.push({ name: graph.uniqueName(`${p}pixels/Transpose`), op: 'Transpose', inputs: [scaled], outputs: [spec.inputName], attributes: { perm: attr.ints([0, 3, 1, 2]) } });
  const before = graph.nodes.length;
  // output0 [1, 4 + C, N] → rows [N, 4 + C].
  const rowsOf = graph.addNode('Transpose', [graph.addNode('Squeeze', [spec.outputName, int64(graph, `${p}squeeze_axes`, [0])], {}, `${p}raw`)], { perm: attr.ints([1, 0]) }, `${p}rows`);
  const slice = (from: number, to: number, hint: string) => graph.addNode('Slice', [rowsOf, int64(graph, `${hint}/starts`, [from]), int64(graph, `${hint}/ends`, [to]), int64(graph, `${hint}/axes`, [1])], {}, hint);
  const [cx, cy, w, h] = [0, 1, 2, 3].map((i) => slice(i, i + 1, `${p}box_${i}`)) as [string, string, string, string];
  const scores = slice(4, 4 + classes, `${p}class_scores`);
  const half = graph.addScalar(`${p}half`, 0.5);
  const halfW = graph.addNode('Mul', [w, half], {}, `${p}half_w`);
  const halfH = graph.addNode('Mul', [h, half], {}, `${p}half_h`);
  const corners = graph.addNode('Concat', [graph.addNode('Sub', [cx, halfW], {}, `${p}x1`), graph.addNode('Sub', [cy, halfH], {}, `${p}y1`), graph.addNode('Add', [cx, halfW], {}, `${p}x2`), graph.addNode('Add', [cy, halfH], {}, `${p}y2`)], { axis: attr.int(1) }, `${p}corners`);
  // Each anchor competes only in its best class (ArgMax picks the first maximum, as the library's loop).
  const best = graph.addNode('ArgMax', [scores], { axis: attr.int(1), keepdims: attr.int(0) }, `${p}best_class`);
  const bestScore = graph.addNode('ReduceMax', [scores], { axes: attr.ints([1]), keepdims: attr.int(0) }, `${p}best_score`);
  const oneHot = graph.addNode('OneHot', [best, int64(graph, `${p}depth`, [classes]), graph.addFloatInitializer(`${p}one_hot_values`, [2], Float32Array.of(0, 1))], { axis: attr.int(1) }, `${p}one_hot`);
  const competing = graph.addNode('Mul', [scores, oneHot], {}, `${p}competing`);
  const nmsScores = graph.addNode('Unsqueeze', [graph.addNode('Transpose', [competing], { perm: attr.ints([1, 0]) }, `${p}scores_cn`), int64(graph, `${p}nms_axes`, [0])], {}, `${p}nms_scores`);
  const nmsBoxes = graph.addNode('Unsqueeze', [corners, int64(graph, `${p}nms_box_axes`, [0])], {}, `${p}nms_boxes`);
  // NonMaxSuppression drops scores ≤ its threshold; the library keeps scores ≥ `threshold`: the float32 just below it.
  const selected = graph.addNode('NonMaxSuppression', [
    nmsBoxes, nmsScores,
    int64(graph, `${p}nms_max`, [Math.min(spec.nmsMax, maxDetections)]),
    graph.addFloatInitializer(`${p}nms_iou`, [1], Float32Array.of(spec.nmsIou)),
    graph.addFloatInitializer(`${p}nms_threshold`, [1], Float32Array.of(float32Below(threshold))),
  ], { center_point_box: attr.int(0) }, `${p}selected`);
  const anchor = graph.addNode('Reshape', [graph.addNode('Slice', [selected, int64(graph, `${p}sel/starts`, [2]), int64(graph, `${p}sel/ends`, [3]), int64(graph, `${p}sel/axes`, [1])], {}, `${p}sel/anchor`), int64(graph, `${p}sel/flat`, [-1])], {}, `${p}anchors`);
  const keptScores = graph.addNode('Gather', [bestScore, anchor], { axis: attr.int(0) }, `${p}kept_scores`);
  // Best first over all classes, at most maxDetections.
  const k = graph.addNode('Min', [graph.addNode('Shape', [keptScores], {}, `${p}kept_count`), int64(graph, `${p}max_detections`, [Math.min(spec.nmsMax, maxDetections)])], {}, `${p}k`);
  const [topScores, order] = multiOutput(graph, 'TopK', [keptScores, k], [`${p}top_scores`, `${p}top_order`], { axis: attr.int(0), largest: attr.int(1), sorted: attr.int(1) });
  const anchors = graph.addNode('Gather', [anchor, order!], { axis: attr.int(0) }, `${p}top_anchors`);
  const boxes = graph.addNode('Gather', [corners, anchors], { axis: attr.int(0) }, `${p}top_boxes`);
  const label = graph.addNode('Cast', [graph.addNode('Gather', [best, anchors], { axis: attr.int(0) }, `${p}top_labels`)], { to: attr.int(onnx.TensorProto.DataType.FLOAT) }, `${p}top_labels_f`);
  const column = (name: string, hint: string) => graph.addNode('Unsqueeze', [name, int64(graph, `${hint}/axes`, [1])], {}, hint);
  const detections = graph.addNode('Concat', [boxes, column(topScores!, `${p}score_col`), column(label, `${p}label_col`)], { axis: attr.int(1) }, `${p}detections`);
  return { pixels, before, detections };
}

/** The largest float32 below the smallest float32 ≥ `value`: `> it` is `≥ value` for float32 scores. */
export function float32Below(value: number): number {
  let f = Math.fround(value);
  if (f < value) f = nextFloat32(f, 1);
  return nextFloat32(f, -1);
}

function nextFloat32(value: number, direction: 1 | -1): number {
  const buffer = new Float32Array([value]);
  const bits = new Int32Array(buffer.buffer);
  if (value === 0) return direction > 0 ? 1.4e-45 : -1.4e-45;
  bits[0]! += (value > 0) === (direction > 0) ? 1 : -1;
  return buffer[0]!;
}

/** The export's ops (GreaterOrEqual, Split without sizes) need opset ≥ 12/13; our converter writes 17. */
function ensureOpset(graph: BackboneGraph, minimum: number): void {
  if (graph.opset < minimum) throw modelError(`the detector graph uses ONNX opset ${graph.opset}; export needs ${minimum} or newer`);
}

/** A few synthetic photos (two shapes and sizes, so stretch and letterbox both move), plus any `extra`. */
async function probePhotos(): Promise<Uint8Array[]> {
  const photo = (width: number, height: number, seed: number) => {
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const blob = Math.hypot(x - width * 0.4, y - height * 0.5) < Math.min(width, height) * 0.25;
      data[i] = blob ? 200 : (x * 7 + seed * 31) % 256;
      data[i + 1] = blob ? 60 : (y * 5 + seed * 17) % 256;
      data[i + 2] = blob ? 40 : ((x + y) * 3) % 256;
    }
    return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
  };
  return Promise.all([photo(320, 240, 1), photo(200, 360, 2)]);
}

/** Runs the file and the library on the same prepared pixels and compares rows. */
export async function checkAgainstLibrary(detector: Detector, bytes: Uint8Array, threshold: number, maxDetections: number, photos?: Uint8Array[]): Promise<DetectorExportCheck> {
  const images = photos ?? (await probePhotos());
  const exported = await ExportedDetector.load(bytes, 1);
  const check: DetectorExportCheck = { images: images.length, sameDetections: true, maxBoxDifference: 0, maxScoreDifference: 0 };
  try {
    for (const photo of images) {
      const prepared: PreparedPixels = await detector.layout.preparePixels!(photo);
      const ours = await exported.detectPixels(prepared.pixels, prepared, prepared.width, prepared.height);
      const library = (await detector.detectMany([photo], { threshold, maxDetections }))[0]!.detections;
      compareDetections(ours, library, check);
    }
  } finally {
    await exported.release();
  }
  return check;
}

/** Folds one image's comparison into `check`; box differences relative to max(1, |corner|). */
export function compareDetections(
  ours: { label: string; score: number; box: number[] }[],
  library: { label: string; score: number; box: number[] }[],
  check: DetectorExportCheck,
): void {
  if (ours.length !== library.length || ours.some((d, i) => d.label !== library[i]!.label)) check.sameDetections = false;
  for (let i = 0; i < Math.min(ours.length, library.length); i++) {
    check.maxScoreDifference = Math.max(check.maxScoreDifference, Math.abs(ours[i]!.score - library[i]!.score));
    for (let j = 0; j < 4; j++) {
      const [a, b] = [ours[i]!.box[j]!, library[i]!.box[j]!];
      check.maxBoxDifference = Math.max(check.maxBoxDifference, Math.abs(a - b) / Math.max(1, Math.abs(b)));
    }
  }
}
