/**
 * CenterNet's class branch given one output per user class. The builtin graph ends in two branches
 * reading the same stride-4 map (`features`): the class branch (3×3 depthwise → 1×1 conv to 80
 * channels → sigmoid → heatmap) and the box branch (3×3 depthwise → 1×1 conv to 4 sides). Retargeting
 * keeps the body and the box branch, and rebuilds the class branch's 1×1 conv with one row per user
 * class: the COCO class's row where a name matches (`person`, `dog`, VOC's `tvmonitor` → `tv`), else a
 * fresh row (small seeded normal weights, bias −2.19 = logit of 0.1, CenterNet's own heatmap prior).
 */
import type { OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { COCO_CLASSES } from './coco-classes.js';

/** Tensor names of the converted builtin graph (`builtinCenterNet`). */
export const CENTERNET_HEAD = {
  /** The stride-4 map both branches read, NCHW [n, 128, 128, 128]. */
  features: 'tower_0/CenternetHead/mul',
  classWeight: 'tower_0/CenternetHead/centernet_cls_output/BiasAdd/weights',
  classBias: 'tower_0/CenternetHead/centernet_cls_output/BiasAdd/bias',
  /** Class logits before the sigmoid, NCHW [n, classes, 128, 128]. */
  classLogits: 'tower_0/CenternetHead/centernet_cls_output/BiasAdd',
  /** Box sides in input pixels, NCHW [n, 4, 128, 128]. */
  sides: 'tower_0/mul',
  /** The weights of the two branches after `features`: what trains by default. */
  branchWeights: [
    'tower_0/CenternetHead/centernet_cls_output/separable_conv2d/depthwise/weights',
    'tower_0/CenternetHead/centernet_cls_output/BiasAdd/weights',
    'tower_0/CenternetHead/centernet_cls_output/BiasAdd/bias',
    'tower_0/CenternetHead/centernet_wh_output/separable_conv2d/depthwise/weights',
    'tower_0/CenternetHead/centernet_wh_output/BiasAdd/weights',
    'tower_0/CenternetHead/centernet_wh_output/BiasAdd/bias',
  ],
} as const;

/** CenterNet's heatmap bias at initialisation: sigmoid(−2.19) ≈ 0.1. */
export const FRESH_CLASS_BIAS = -2.19;
const FRESH_WEIGHT_STD = 0.01;

/** Pascal VOC's names for COCO classes. */
const ALIASES: Record<string, string> = {
  aeroplane: 'airplane', diningtable: 'dining table', motorbike: 'motorcycle', pottedplant: 'potted plant', sofa: 'couch', tvmonitor: 'tv',
  'tv monitor': 'tv', 'potted plant': 'potted plant', 'dining table': 'dining table', 'cellphone': 'cell phone', 'mobile phone': 'cell phone',
};

/** The COCO class index a user class name stands for, or -1. Case, `_` / `-` and VOC's spellings do not matter. */
export function cocoIndexOf(name: string): number {
  const plain = name.trim().toLowerCase().replace(/[_-]+/g, ' ').replace(/\s+/g, ' ');
  const canonical = ALIASES[plain] ?? ALIASES[plain.replace(/ /g, '')] ?? plain;
  return (COCO_CLASSES as readonly string[]).indexOf(canonical);
}

export interface RetargetResult {
  /** For each user class, the COCO class its row started from (null: fresh). */
  initialisedFrom: (string | null)[];
}

/**
 * Rewrites (in place) the class branch's 1×1 conv of a builtin-layout graph to `classes.length`
 * outputs and the heatmap output's declared shape. `scratch` starts every class fresh.
 */
export function retargetClasses(graph: OnnxGraph, classes: string[], seed: number, origin: string, options: { scratch?: boolean } = {}): RetargetResult {
  const weight = graph.initializers.get(CENTERNET_HEAD.classWeight);
  const bias = graph.initializers.get(CENTERNET_HEAD.classBias);
  if (weight?.dtype !== 'float32' || bias?.dtype !== 'float32' || weight.dims.length !== 4) throw modelError('not the builtin CenterNet layout: its class branch weights are missing', origin);
  const [sourceClasses, channels] = weight.dims as [number, number, number, number];
  if (sourceClasses !== COCO_CLASSES.length) throw modelError(`the class branch has ${sourceClasses} outputs, expected COCO's ${COCO_CLASSES.length}`, origin);
  const rng = new Rng(seed);
  const rows = new Float32Array(classes.length * channels);
  const biases = new Float32Array(classes.length);
  const initialisedFrom = classes.map((name, c) => {
    const from = options.scratch ? -1 : cocoIndexOf(name);
    if (from >= 0) {
      rows.set(weight.data.subarray(from * channels, (from + 1) * channels), c * channels);
      biases[c] = bias.data[from]!;
      return COCO_CLASSES[from]!;
    }
    for (let k = 0; k < channels; k++) rows[c * channels + k] = rng.normal() * FRESH_WEIGHT_STD;
    biases[c] = FRESH_CLASS_BIAS;
    return null;
  });
  graph.initializers.set(CENTERNET_HEAD.classWeight, { dtype: 'float32', dims: [classes.length, channels, 1, 1], data: rows });
  graph.initializers.set(CENTERNET_HEAD.classBias, { dtype: 'float32', dims: [classes.length], data: biases });
  for (const output of graph.outputs) {
    if (output.shape.length === 4 && output.shape[3] === sourceClasses) output.shape = [output.shape[0]!, output.shape[1]!, output.shape[2]!, classes.length];
  }
  return { initialisedFrom };
}
