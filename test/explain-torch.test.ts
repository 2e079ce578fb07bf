/**
 * Input gradients and Grad-CAM of headstart's attribution graphs against PyTorch autograd, on the
 * random-weight fixtures of ../shared/models under a linear head, from the numbers committed in
 * test/fixtures/explain (written by tools/explain-torch-reference.py, so CI needs no PyTorch).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { buildAttributionModel } from '../src/explain/attribution-model.js';
import { camOf } from '../src/explain/grad-cam.js';
import { GradientRunner } from '../src/explain/gradient-runner.js';
import type { HeadState } from '../src/heads/head.js';
import { SHARED, tempDir } from './helpers/images.js';

const REFERENCE = fileURLToPath(new URL('./fixtures/explain/torch-gradients.json', import.meta.url));

interface ExampleReference {
  target: number;
  gradNorm: number;
  gradDotPattern: number;
  indices: number[];
  grad: number[];
  gradCam?: number[];
  /** How far PyTorch's own float32 gradients are from these (float64) ones. */
  torchFloat32: { sampledRelativeError: number; normRelativeError: number; dotError: number };
}

interface Reference {
  classes: number;
  input: { shape: number[] };
  head: { weightPattern: { scale: number; offset: number } };
  models: Record<string, { dim: number; logits: number[]; examples: ExampleReference[] }>;
}

/** The script's pattern(): ((i·7919 + 13) mod 2003)/1001.5 − 1, in float64, then float32. */
function pattern(count: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: count }, (_, k) => ((((k + offset) * 7919 + 13) % 2003) / 1001.5 - 1) * scale);
}

const relativeL2 = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < theirs.length; i++) {
    error += (ours[i]! - theirs[i]!) ** 2;
    norm += theirs[i]! ** 2;
  }
  return Math.sqrt(error) / Math.sqrt(norm);
};

describe('explain: gradients against PyTorch autograd', async () => {
  const reference = JSON.parse(await readFile(REFERENCE, 'utf8')) as Reference;
  const cacheDir = await tempDir();

  for (const [name, expected] of Object.entries(reference.models)) {
    it(`${name}: input gradients within 1e-4 relative (or PyTorch's own float32 floor)${expected.examples[0]!.gradCam ? ', Grad-CAM within 1e-4' : ''}`, async () => {
      const backbone = await openImageBackbone(join(SHARED, 'models', name), { cacheDir, threads: 2 });
      const { classes, input, head } = reference;
      const state: HeadState = {
        type: 'linear',
        config: { dim: expected.dim, numClasses: classes, standardize: false },
        tensors: {
          weight: { shape: [classes, expected.dim], data: pattern(classes * expected.dim, head.weightPattern.scale, head.weightPattern.offset) },
          bias: { shape: [classes], data: new Float32Array(classes) },
        },
      };
      const model = await buildAttributionModel(backbone, state, 1);
      const pixels = pattern(input.shape.reduce((a, b) => a * b, 1));
      const targets = expected.examples.map((example) => example.target);
      const runner = await GradientRunner.create(model, 'input', 2);
      const { logits, gradient } = await runner.run(pixels, targets);
      await runner.release();
      expect(relativeL2(logits, expected.logits)).toBeLessThan(1e-5);
      const size = runner.inputSize;
      expected.examples.forEach((example, n) => {
        const grad = gradient!.subarray(n * size, (n + 1) * size);
        const probe = pattern(size, 1, 17);
        let norm = 0;
        let dot = 0;
        for (let i = 0; i < size; i++) {
          norm += grad[i]! ** 2;
          dot += grad[i]! * probe[i]!;
        }
        // 1e-4, or for ReLU networks the float32 floor: rounding moves pre-activations across zero, and
        // PyTorch's own float32 gradient is that far from the exact one (recorded by the script); 3× the
        // worst over this network's examples, since how ill-conditioned it is belongs to the network.
        const floor = {
          normRelativeError: Math.max(...expected.examples.map((e) => e.torchFloat32.normRelativeError)),
          dotError: Math.max(...expected.examples.map((e) => e.torchFloat32.dotError)),
          sampledRelativeError: Math.max(...expected.examples.map((e) => e.torchFloat32.sampledRelativeError)),
        };
        const errors = {
          norm: Math.abs(Math.sqrt(norm) - example.gradNorm) / example.gradNorm,
          dot: Math.abs(dot - example.gradDotPattern),
          sampled: relativeL2(example.indices.map((i) => grad[i]!), example.grad),
        };
        expect(errors.norm).toBeLessThan(Math.max(1e-4, 3 * floor.normRelativeError));
        expect(errors.dot).toBeLessThan(Math.max(1e-4 * Math.abs(example.gradDotPattern), 3 * floor.dotError));
        expect(errors.sampled).toBeLessThan(Math.max(1e-4, 3 * floor.sampledRelativeError));
      });

      if (expected.examples[0]!.gradCam) {
        expect(model.featureMap).toBeDefined();
        const cam = await GradientRunner.create(model, 'feature-map', 2);
        const result = await cam.run(pixels, targets);
        await cam.release();
        const fm = model.featureMap!;
        const mapSize = fm.channels * fm.width * fm.height;
        expected.examples.forEach((example, n) => {
          const grid = camOf(fm, result.activations!.subarray(n * mapSize, (n + 1) * mapSize), result.gradient!.subarray(n * mapSize, (n + 1) * mapSize));
          expect([grid.height, grid.width]).toEqual([7, 7]);
          expect(relativeL2(grid.values, example.gradCam!)).toBeLessThan(1e-4);
        });
      }
      await backbone.dispose();
    }, 60_000);
  }
});
