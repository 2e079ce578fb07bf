import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { convertTfjsGraphOutputs, readTfjsModelFolder } from '../src/backbones/tfjs/index.js';
import { CENTERNET_NODES } from '../src/detector/centernet.js';
import { loadGraphReference, syntheticImages, tf, useWasmBackend } from './helpers/tfjs-reference.js';

const CENTERNET = join(new URL('../node_modules/@vladmandic/human/models/', import.meta.url).pathname, 'centernet.json');

describe('TF.js → ONNX: a graph cut at several nodes (the builtin detector)', () => {
  it('CenterNet\'s heatmap and box sides (through ResizeBilinear upsampling) equal TF.js\'s', async () => {
    await useWasmBackend();
    const source = await readTfjsModelFolder(CENTERNET);
    const converted = convertTfjsGraphOutputs(source, [CENTERNET_NODES.heatmap, CENTERNET_NODES.sides]);
    expect(converted.inputShape).toEqual([-1, 512, 512, 3]);
    expect(converted.outputs.map((o) => o.shape)).toEqual([[-1, 128, 128, 80], [-1, 128, 128, 4]]);
    const pixels = syntheticImages(1, 512, 512, 3, 0, 255, 3);
    const session = await ort.InferenceSession.create(converted.onnx);
    const ours = await session.run({ [converted.inputName]: new ort.Tensor('float32', pixels, [1, 512, 512, 3]) });
    const model = await loadGraphReference(source);
    const input = tf.tensor4d(pixels, [1, 512, 512, 3]);
    const theirs = model.execute(input, [CENTERNET_NODES.heatmap, CENTERNET_NODES.sides]) as tf.Tensor[];
    for (const [i, output] of converted.outputs.entries()) {
      const expected = await theirs[i]!.data();
      const actual = ours[output.name]!.data as Float32Array;
      expect(actual.length).toBe(expected.length);
      let worst = 0;
      let scale = 0;
      for (let k = 0; k < actual.length; k++) {
        worst = Math.max(worst, Math.abs(actual[k]! - expected[k]!));
        scale = Math.max(scale, Math.abs(expected[k]!));
      }
      // float32 through ~90 convolutions in two runtimes: agreement to 1e-4 of the output's range.
      expect(worst, output.node).toBeLessThan(1e-4 * Math.max(1, scale));
    }
    tf.dispose([input, ...theirs]);
    await session.release();
  }, 120_000);
});
