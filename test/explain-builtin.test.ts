/**
 * Integrated gradients on builtin:mobilenet-v2-1.0 (the TF.js graph headstart converts: depthwise
 * convolutions, ReLU6 as Clip, TF "SAME" pads made explicit and asymmetric, BatchNorm folded into
 * the convolutions). The attribution graph's input gradient is checked against float64 autograd of
 * that very ONNX graph (tools/explain-builtin-reference.py), at two points of integrated
 * gradients' path; then completeness within 1 % with `steps: 'auto'`, which doubles the steps
 * until it gets there (this backbone needs hundreds), and which stops early on α = 0.35.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageBackbone } from '../src/backbones/image-backbone.js';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { prepareImage } from '../src/data/image-decode.js';
import { buildAttributionModel } from '../src/explain/attribution-model.js';
import { GradientRunner } from '../src/explain/gradient-runner.js';
import { AUTO_TOLERANCE, integratedGradients, type Completeness } from '../src/explain/integrated-gradients.js';
import { HYMENOPTERA, SHARED } from './helpers/images.js';
import { pattern, patternHead } from './helpers/pattern-head.js';

const REFERENCE = fileURLToPath(new URL('./fixtures/explain/builtin-mobilenet-gradients.json', import.meta.url));
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const BEE_PHOTO = join(HYMENOPTERA, 'val/bees/1032546534_06907fe3b3.jpg');

interface PointReference {
  alpha: number;
  logits: number[];
  gradNorm: number;
  gradDotPattern: number;
  indices: number[];
  grad: number[];
  torchFloat32: { normRelativeError: number; dotError: number; sampledRelativeError: number };
}

const relativeL2 = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < theirs.length; i++) {
    error += (ours[i]! - theirs[i]!) ** 2;
    norm += theirs[i]! ** 2;
  }
  return Math.sqrt(error / norm);
};

describe('explain: integrated gradients on builtin:mobilenet-v2-1.0', () => {
  let backbone: ImageBackbone;
  let runner: GradientRunner;

  beforeAll(async () => {
    backbone = await openImageBackbone('builtin:mobilenet-v2-1.0', { cacheDir: await mkdtemp(join(tmpdir(), 'headstart-explain-builtin-')), threads: 2 });
    runner = await GradientRunner.create(await buildAttributionModel(backbone, patternHead(backbone.reference.featureDim), 1), 'input', 2);
  }, 120_000);

  afterAll(async () => {
    await runner?.release();
    await backbone?.dispose();
  });

  it('input gradients match float64 autograd of the same graph within 1e-4 (or PyTorch float32 floor)', async () => {
    const reference = JSON.parse(await readFile(REFERENCE, 'utf8')) as { target: number; points: PointReference[] };
    const x = Float32Array.from(pattern(224 * 224 * 3), (v) => (v + 1) / 2);
    const batch = new Float32Array(reference.points.length * x.length);
    reference.points.forEach((point, n) => x.forEach((v, i) => (batch[n * x.length + i] = Math.fround(point.alpha * v))));
    const { logits, gradient } = await runner.run(batch, reference.points.map(() => reference.target));
    const probe = pattern(x.length, 1, 17);
    reference.points.forEach((point, n) => {
      expect(relativeL2(logits.subarray(2 * n, 2 * n + 2), point.logits)).toBeLessThan(1e-5);
      const grad = gradient!.subarray(n * x.length, (n + 1) * x.length);
      let norm = 0;
      let dot = 0;
      for (let i = 0; i < grad.length; i++) {
        norm += grad[i]! ** 2;
        dot += grad[i]! * probe[i]!;
      }
      const floor = point.torchFloat32;
      expect(Math.abs(Math.sqrt(norm) - point.gradNorm) / point.gradNorm).toBeLessThan(Math.max(1e-4, 3 * floor.normRelativeError));
      expect(Math.abs(dot - point.gradDotPattern)).toBeLessThan(Math.max(1e-4 * Math.abs(point.gradDotPattern), 3 * floor.dotError));
      expect(relativeL2(point.indices.map((i) => grad[i]!), point.grad)).toBeLessThan(Math.max(1e-4, 3 * floor.sampledRelativeError));
    });
  }, 60_000);

  it("completeness within 1 % with --steps auto on a photo (32 Gauss–Legendre steps are far off: printed); the steps used are recorded, and a cap that is too low says so", async () => {
    const values = await prepareImage(await readFile(BEE_PHOTO), backbone.preprocessing, BEE_PHOTO);
    const input = { values, width: 224, height: 224, layout: backbone.preprocessing.layout };
    const print = (what: string, c: Completeness, seconds: number) =>
      console.log(`builtin:mobilenet-v2-1.0, ${what}: ${c.steps} steps (${c.rule}${c.capped ? ', capped' : ''}), Σ = ${c.sum.toFixed(5)}, f(x) − f(x′) = ${c.expected.toFixed(5)}, ${(100 * c.relativeError).toFixed(2)} % apart, ${seconds.toFixed(1)} s`);
    const timed = async (options: Parameters<typeof integratedGradients>[3]) => {
      const started = performance.now();
      const { completeness } = await integratedGradients(runner, input, 0, options);
      return { completeness, seconds: (performance.now() - started) / 1000 };
    };
    const fixed = await timed({ steps: 32, blackValues: [0, 0, 0] });
    print('32 steps', fixed.completeness, fixed.seconds);
    expect(Math.abs(fixed.completeness.expected)).toBeGreaterThan(0.1);
    expect(fixed.completeness).toMatchObject({ steps: 32, rule: 'gauss-legendre' });
    expect(fixed.completeness.capped).toBeUndefined();

    const auto = await timed({ steps: 'auto', blackValues: [0, 0, 0] });
    print('auto', auto.completeness, auto.seconds);
    expect(auto.completeness.relativeError).toBeLessThanOrEqual(AUTO_TOLERANCE);
    expect(auto.completeness).toMatchObject({ rule: 'trapezoid', capped: false });
    expect([64, 128, 256, 512, 1024]).toContain(auto.completeness.steps);
    // The same f(x) − f(x′), whichever rule integrates the path.
    expect(auto.completeness.expected).toBeCloseTo(fixed.completeness.expected, 5);

    const capped = await timed({ steps: 'auto', maxSteps: 64, blackValues: [0, 0, 0] });
    print('auto, --max-steps 64', capped.completeness, capped.seconds);
    expect(capped.completeness.steps).toBe(64);
    expect(capped.completeness.capped).toBe(capped.completeness.relativeError > AUTO_TOLERANCE);
    if (auto.completeness.steps > 64) expect(capped.completeness.capped).toBe(true);
  }, 300_000);
});

describe('explain: --steps auto on a smooth network (mobilenet-v2-0.35)', () => {
  it('stops early, within 1 %', async () => {
    const backbone = await openImageBackbone(MOBILENET_035, { cacheDir: await mkdtemp(join(tmpdir(), 'headstart-explain-035-')), threads: 2 });
    const runner = await GradientRunner.create(await buildAttributionModel(backbone, patternHead(backbone.reference.featureDim), 1), 'input', 2);
    try {
      const pre = backbone.preprocessing;
      const values = await prepareImage(await readFile(BEE_PHOTO), pre, BEE_PHOTO);
      const input = { values, width: pre.width, height: pre.height, layout: pre.layout };
      const blackValues = [0, 1, 2].map((c) => -pre.mean[c]! / pre.std[c]!) as [number, number, number];
      const { completeness } = await integratedGradients(runner, input, 0, { steps: 'auto', blackValues });
      console.log(`mobilenet-v2-0.35, auto: ${completeness.steps} steps, ${(100 * completeness.relativeError).toFixed(3)} % apart`);
      expect(completeness.relativeError).toBeLessThanOrEqual(AUTO_TOLERANCE);
      expect(completeness.capped).toBe(false);
      expect(completeness.steps).toBeLessThan(1024);
    } finally {
      await runner.release();
      await backbone.dispose();
    }
  }, 180_000);
});
