/**
 * The embedded default detector: CenterNet with a MobileNetV3 body trained on COCO's 80 classes
 * (MB3-CenterNet, shipped as a TF.js graph model in the npm package @vladmandic/human, MIT), converted
 * once to ONNX and cached like the builtin backbones. Input 512×512 RGB in 0–255 (NHWC); outputs a
 * sigmoid heatmap `[128, 128, 80]` and box sides `[128, 128, 4]` (left, top, right, bottom distances in
 * input pixels from the cell's point, stride 4). The graph's own tail (max-pool, top-k, gather) is cut
 * off and done by `decodeCenterNet`, which also serves fine-tuned models with other class counts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readTfjsModelFolder, convertTfjsGraphOutputs } from '../backbones/tfjs/index.js';
import { cachedConversion } from '../backbones/resolve.js';
import { modelError } from '../util/errors.js';
import { hashJson, sha256 } from '../util/hash.js';
import type { Reporter } from '../util/progress.js';
import type { Box } from './boxes.js';
import type { Detection } from './coco-eval.js';

export const CENTERNET_INPUT_SIZE = 512;
export const CENTERNET_STRIDE = 4;
/** TF nodes the converted graph ends at: the sigmoid heatmap and the box sides (already ×16). */
export const CENTERNET_NODES = { heatmap: 'tower_0/keypoints', sides: 'tower_0/wh' } as const;
/** Bumped when the conversion of the same model changes. */
const CONVERSION_VERSION = 2;

export interface CenterNetGraph {
  /** The cached ONNX file. */
  model: string;
  origin: string;
  sha256: string;
  inputName: string;
  heatmapOutput: string;
  sidesOutput: string;
}

function humanPackageDir(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('@vladmandic/human');
  } catch (error) {
    throw modelError('the npm package "@vladmandic/human" is not installed; it ships the builtin detector (models/centernet.json)', undefined, error);
  }
  // Its exports do not include package.json: walk up from the entry point instead.
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === '@vladmandic/human') return dir;
  }
  throw modelError('cannot find the folder of the npm package "@vladmandic/human"', entry);
}

/** The builtin CenterNet as a cached ONNX file (converted on first use, ~1 s). */
export async function builtinCenterNet(options: { cacheDir: string; reporter?: Reporter }): Promise<CenterNetGraph> {
  const dir = humanPackageDir();
  const modelJson = join(dir, 'models', 'centernet.json');
  if (!existsSync(modelJson)) throw modelError('the builtin detector is missing from @vladmandic/human', modelJson);
  const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const key = hashJson({ source: '@vladmandic/human', version, model: 'centernet', nodes: CENTERNET_NODES, conversion: CONVERSION_VERSION });
  return cachedConversion<CenterNetGraph>(options, 'builtin-centernet', key, async () => {
    const source = await readTfjsModelFolder(modelJson);
    const converted = convertTfjsGraphOutputs(source, [CENTERNET_NODES.heatmap, CENTERNET_NODES.sides]);
    return {
      onnx: converted.onnx,
      info: {
        model: 'model.onnx',
        origin: modelJson,
        sha256: sha256(converted.onnx),
        inputName: converted.inputName,
        heatmapOutput: converted.outputs[0]!.name,
        sidesOutput: converted.outputs[1]!.name,
      },
    };
  });
}

export interface DecodeOptions {
  /** Lowest score kept. */
  threshold: number;
  maxDetections: number;
  /** From input pixels to the original image's: width / 512, height / 512. */
  scaleX: number;
  scaleY: number;
  /** Clip boxes to the original image. */
  width: number;
  height: number;
}

/**
 * CenterNet's decoding, as the graph's own tail does it: a cell is a detection when its score is the
 * maximum of its 3×3 neighbourhood (the max-pool that replaces NMS), the `maxDetections` best peaks
 * are kept, and the box is the cell's point (×stride) minus / plus the predicted sides.
 * `heatmap` is one image's `[gridH, gridW, classes]`, `sides` its `[gridH, gridW, 4]`.
 */
export function decodeCenterNet(heatmap: Float32Array, sides: Float32Array, gridH: number, gridW: number, classes: number, options: DecodeOptions): Detection[] {
  const peaks: { index: number; score: number }[] = [];
  for (let y = 0; y < gridH; y++) {
    for (let x = 0; x < gridW; x++) {
      const cell = (y * gridW + x) * classes;
      for (let c = 0; c < classes; c++) {
        const score = heatmap[cell + c]!;
        if (score < options.threshold || !isPeak(heatmap, x, y, c, gridH, gridW, classes, score)) continue;
        peaks.push({ index: cell + c, score });
      }
    }
  }
  peaks.sort((a, b) => b.score - a.score || a.index - b.index);
  return peaks.slice(0, options.maxDetections).map(({ index, score }) => {
    const label = index % classes;
    const cell = (index - label) / classes;
    const x = (cell % gridW) * CENTERNET_STRIDE;
    const y = Math.floor(cell / gridW) * CENTERNET_STRIDE;
    const s = sides.subarray(cell * 4, cell * 4 + 4);
    const box: Box = [
      clamp((x - s[0]!) * options.scaleX, options.width),
      clamp((y - s[1]!) * options.scaleY, options.height),
      clamp((x + s[2]!) * options.scaleX, options.width),
      clamp((y + s[3]!) * options.scaleY, options.height),
    ];
    return { label, score, box };
  });
}

/** TF's 3×3 max-pool with SAME padding keeps a cell whose value equals the neighbourhood's maximum. */
function isPeak(heatmap: Float32Array, x: number, y: number, c: number, gridH: number, gridW: number, classes: number, score: number): boolean {
  for (let dy = -1; dy <= 1; dy++) {
    const yy = y + dy;
    if (yy < 0 || yy >= gridH) continue;
    for (let dx = -1; dx <= 1; dx++) {
      const xx = x + dx;
      if (xx < 0 || xx >= gridW || (dx === 0 && dy === 0)) continue;
      if (heatmap[(yy * gridW + xx) * classes + c]! > score) return false;
    }
  }
  return true;
}

const clamp = (value: number, limit: number) => Math.min(limit, Math.max(0, value));
